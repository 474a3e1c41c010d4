"""The Evaluator hook (tfx_pipeline/evaluator_module.py) registers the ranker's ops where TFMA loads it.

A Beam worker, or the Evaluator's own Kubeflow container, never imported tensorflow_text: a
fresh process plays that worker, receives the pickled model loader the way Beam ships it, and
must load a SavedModel that uses a tensorflow_text op.
"""
from __future__ import annotations

import subprocess
import sys
import textwrap

from tests.helpers import REPO, subprocess_env


def test_evaluator_hook_registers_text_ops_where_the_model_is_loaded(tmp_path):
    """A Beam worker that never imported tensorflow_text loads the ranker-like model through the hook."""
    import tensorflow as tf
    import tensorflow_model_analysis as tfma
    import tensorflow_text
    from apache_beam.internal import pickler

    from tfx_pipeline import evaluator_module

    class Folder(tf.Module):
        @tf.function(input_signature=[tf.TensorSpec([None], tf.string)])
        def fold(self, text):
            return {"folded": tensorflow_text.case_fold_utf8(text)}

    module = Folder()
    model_dir = str(tmp_path / "model")
    tf.saved_model.save(module, model_dir, signatures={"serving_default": module.fold})
    shared = evaluator_module.custom_eval_shared_model(
        eval_saved_model_path=model_dir, model_name="", add_metrics_callbacks=None,
        eval_config=tfma.EvalConfig(model_specs=[tfma.ModelSpec(signature_name="serving_default")]),
    )
    (tmp_path / "construct_fn.pkl").write_bytes(pickler.dumps(shared.model_loader.construct_fn))

    worker = textwrap.dedent(f"""
        import sys
        import tensorflow as tf
        try:
            tf.saved_model.load({model_dir!r})
            sys.exit("loaded without tensorflow_text: the check proves nothing")
        except Exception as error:
            assert "CaseFoldUTF8" in str(error), error
        from apache_beam.internal import pickler
        construct_fn = pickler.loads(open({str(tmp_path / "construct_fn.pkl")!r}, "rb").read())
        model = construct_fn()
        out = model.signatures["serving_default"](text=tf.constant(["ÄBC"]))["folded"].numpy()[0]
        assert out.decode() == "äbc", out
        print("ok")
    """)
    done = subprocess.run([sys.executable, "-c", worker], cwd=REPO, env=subprocess_env(), capture_output=True,
                          text=True, timeout=120)
    assert done.returncode == 0 and done.stdout.strip().endswith("ok"), done.stderr[-3000:]
