"""`freshrank tensorboard`: every Trainer run of a home as one TensorBoard run per span.

Two small Trainer-style log directories are written by a real Keras fit with the Keras
TensorBoard callback (as trainer/task.py configures it) plus an hparams run; TensorBoard's own
EventMultiplexer then loads them through the command's logdir mapping, the way
`--logdir_spec` does, and must find the scalars of both spans.
"""
from __future__ import annotations

import json

import numpy as np
import pytest
from click.testing import CliRunner

from freshrank import tensorboard_cmd

SPANS = {"2026-11-01": 7, "2026-11-02": 15}  # span -> Trainer execution id


def _train_logs(logdir, seed: int) -> None:
    import tensorflow as tf
    import tf_keras as keras
    from tensorboard.plugins.hparams import api as hp

    from trainer.model import skip_autograph

    keras.utils.set_random_seed(seed)
    x = np.random.rand(64, 4).astype("float32")
    y = (x.sum(axis=1) > 2).astype("float32")
    # As the Trainer does: Keras' step functions traced without AutoGraph (20+ s saved).
    model = skip_autograph(keras.Sequential([keras.layers.Dense(4, activation="relu"), keras.layers.Dense(1)]))
    model.compile(optimizer="adam", loss=keras.losses.BinaryCrossentropy(from_logits=True),
                  metrics=[keras.metrics.AUC(name="auc", from_logits=True)])
    callback = keras.callbacks.TensorBoard(log_dir=str(logdir), update_freq=50, profile_batch=0, write_graph=False)
    model.fit(x, y, validation_data=(x, y), epochs=2, batch_size=16, callbacks=[callback], verbose=0)
    with tf.summary.create_file_writer(str(logdir / "hparams")).as_default():
        hp.hparams({"learning_rate": 0.001, "warm_started": seed > 0})
        tf.summary.scalar("best_val_auc", 0.5 + seed / 10, step=0)


def _pipeline_dirs(home, execution: int):
    trainer = home / "pipeline" / "Trainer"
    return trainer / "model" / str(execution), trainer / "model_run" / str(execution)


@pytest.fixture(scope="module")
def home(tmp_path_factory):
    home = tmp_path_factory.mktemp("home")
    records = []
    for seed, (span, execution) in enumerate(SPANS.items()):
        model_dir, run_dir = _pipeline_dirs(home, execution)
        model_dir.mkdir(parents=True)
        _train_logs(run_dir, seed)
        records.append({"span": span, "status": "pushed", "model_uri": str(model_dir)})
    # A rejected span (no model) and a torn last line are skipped.
    records.append({"span": "2026-11-03", "status": "rejected_data", "model_uri": None})
    (home / "runs.jsonl").write_text("".join(json.dumps(r) + "\n" for r in records) + '{"span": "2026-11')
    return home


def test_event_reader_finds_scalars_for_both_spans(home):
    from tensorboard.backend.event_processing import event_multiplexer

    names = tensorboard_cmd.run_names(tensorboard_cmd.trainer_runs(str(home)))
    assert names == {f"span_{span}": str(_pipeline_dirs(home, execution)[1]) for span, execution in SPANS.items()}

    # What TensorBoard does with --logdir_spec NAME:PATH,... (tensorboard/backend/event_processing/data_ingester.py).
    mux = event_multiplexer.EventMultiplexer()
    for name, logdir in names.items():
        mux.AddRunsFromDirectory(logdir, name)
    mux.Reload()
    runs = mux.Runs()
    for span in SPANS:
        for sub in ("train", "validation"):
            run = f"span_{span}/{sub}"
            assert "epoch_loss" in runs[run]["tensors"], run
            assert mux.SummaryMetadata(run, "epoch_loss").plugin_data.plugin_name == "scalars"
            losses = [float(np.asarray(tensor_event.tensor_proto.float_val or [0])[0])
                      for tensor_event in mux.Tensors(run, "epoch_loss")]
            assert len(losses) == 2 and all(np.isfinite(losses)), (run, losses)
        assert "epoch_auc" in runs[f"span_{span}/validation"]["tensors"]
        hparams_run = f"span_{span}/hparams"
        assert "best_val_auc" in runs[hparams_run]["tensors"]
        assert "_hparams_/session_start_info" in runs[hparams_run]["tensors"]


def test_print_only_and_the_program_tensorboard_would_run(home):
    from freshrank.cli import main

    result = CliRunner().invoke(main, ["tensorboard", "--home", str(home), "--port", "6123", "--print-only"])
    assert result.exit_code == 0, result.output
    out = json.loads(result.stdout)
    assert sorted(out["runs"]) == [f"span_{span}" for span in SPANS]
    spec = out["argv"][out["argv"].index("--logdir_spec") + 1]
    assert spec == ",".join(f"{name}:{path}" for name, path in out["runs"].items())

    board = tensorboard_cmd.make_program(spec, 6123, "localhost")  # configured, not served
    assert board.flags.logdir_spec == spec and board.flags.port == 6123 and not board.flags.logdir


def test_runs_from_ml_metadata_and_a_span_trained_twice(tmp_path):
    """Without runs.jsonl the spans come from ML Metadata: the Trainer's input window carries the span."""
    from ml_metadata import metadata_store
    from ml_metadata.proto import metadata_store_pb2 as mlmd

    from tfx_pipeline.spans import span_number

    home = tmp_path / "home"
    home.mkdir()
    connection = mlmd.ConnectionConfig()
    connection.sqlite.filename_uri = str(home / "metadata.sqlite")
    connection.sqlite.connection_mode = mlmd.SqliteMetadataSourceConfig.READWRITE_OPENCREATE
    store = metadata_store.MetadataStore(connection)
    trainer_type = store.put_execution_type(mlmd.ExecutionType(name="tfx.components.trainer.component.Trainer"))
    examples_type = store.put_artifact_type(mlmd.ArtifactType(name="Examples", properties={"span": mlmd.INT}))
    run_type = store.put_artifact_type(mlmd.ArtifactType(name="ModelRun"))
    node_type = store.put_context_type(mlmd.ContextType(name="node"))
    (node,) = store.put_contexts([mlmd.Context(type_id=node_type, name="freshrank.Trainer")])

    import datetime

    logdirs = []
    for i, day in enumerate(["2026-11-01", "2026-11-02", "2026-11-02"]):
        logdir = home / "pipeline" / "Trainer" / "model_run" / str(100 + i)
        (logdir / "train").mkdir(parents=True)
        logdirs.append(logdir)
        window = mlmd.Artifact(type_id=examples_type, uri=str(home / f"window{i}"))
        window.properties["span"].int_value = span_number(datetime.date.fromisoformat(day))
        run = mlmd.Artifact(type_id=run_type, uri=str(logdir))
        step = mlmd.Event.Path.Step
        events = [
            (window, mlmd.Event(type=mlmd.Event.INPUT, path=mlmd.Event.Path(steps=[step(key="examples"), step(index=0)]))),
            (run, mlmd.Event(type=mlmd.Event.OUTPUT, path=mlmd.Event.Path(steps=[step(key="model_run"), step(index=0)]))),
        ]
        execution = mlmd.Execution(type_id=trainer_type, last_known_state=mlmd.Execution.COMPLETE)
        store.put_execution(execution, events, [mlmd.Context(id=node, type_id=node_type, name="freshrank.Trainer")])
    del store

    runs = tensorboard_cmd.trainer_runs(str(home))
    assert [(r.span, r.logdir) for r in runs] == list(zip(["2026-11-01", "2026-11-02", "2026-11-02"],
                                                          map(str, logdirs), strict=True))
    names = tensorboard_cmd.run_names(runs)
    assert list(names) == ["span_2026-11-01", f"span_2026-11-02_{runs[1].execution_id}",
                           f"span_2026-11-02_{runs[2].execution_id}"]


def test_empty_home_is_a_usage_error(tmp_path):
    from freshrank.cli import main

    result = CliRunner().invoke(main, ["tensorboard", "--home", str(tmp_path), "--print-only"])
    assert result.exit_code == 2 and "no Trainer logs" in result.output
