"""Evaluator hook (`Evaluator(module_path=...)`): the ranker's tensorflow_text ops in every process.

The ranker's SavedModel tokenizes inside the graph with tensorflow_text ops, which exist only in
a process that imported tensorflow_text. `freshrank run` imports it before the in-process
DirectRunner, so the local pipeline does not use this module. Elsewhere the model is loaded where
nothing did: the Evaluator's own container under Kubeflow, and the Beam workers of a cluster
runner (Flink, Spark, Dataflow, a multi-process DirectRunner). TFX imports this module in the
Evaluator's process (registering the ops there), and `custom_eval_shared_model` wraps TFMA's
model loader so each Beam worker imports tensorflow_text right before it loads the model.
"""
import functools

import tensorflow_model_analysis as tfma
import tensorflow_text  # noqa: F401  (registers the ops in the Evaluator's process)


def _load_with_text_ops(construct_fn):
    import tensorflow_text  # noqa: F401, F811  (a Beam worker: register before loading)

    return construct_fn()


def custom_eval_shared_model(eval_saved_model_path, model_name, eval_config, **kwargs):
    shared = tfma.default_eval_shared_model(
        eval_saved_model_path=eval_saved_model_path, model_name=model_name, eval_config=eval_config, **kwargs
    )
    loader = shared.model_loader
    loader.construct_fn = functools.partial(_load_with_text_ops, loader.construct_fn)
    return shared
