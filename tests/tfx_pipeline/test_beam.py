"""Beam options: `--beam-runner` / `--beam-arg` reach every Beam component, locally and compiled.

The local check compiles the pipeline to TFX's IR, the form LocalDagRunner executes, and
resolves each node's Beam arguments the way its BeamExecutorOperator does; the compiled check
reads the Kubeflow container arguments. The Evaluator hook that cluster workers need is tested
in test_evaluator_module.py.
"""
from __future__ import annotations

import datetime

import pytest
from click.testing import CliRunner

from tfx_pipeline import beam

SPAN = datetime.date(2026, 11, 2)
BEAM_NODES = {"CsvExampleGen", "StatisticsGen", "Evaluator"}
FLINK = ["--flink_master=flink-jobmanager:8081", "--parallelism=8"]


def test_direct_is_the_default_and_unchanged():
    from tfx_pipeline.pipeline import default_beam_args

    assert beam.pipeline_args() == default_beam_args() == ["--direct_running_mode=in_memory", "--direct_num_workers=1"]
    assert beam.runs_in_process(beam.pipeline_args())
    # Pass-through options come last, so they win over the defaults (Beam keeps the last value).
    args = beam.pipeline_args("direct", ["--direct_running_mode=multi_processing", "--direct_num_workers=4"])
    assert args[-2:] == ["--direct_running_mode=multi_processing", "--direct_num_workers=4"]
    assert not beam.runs_in_process(args)


@pytest.mark.parametrize("runner, expected", [
    ("flink", ["--runner=FlinkRunner", "--environment_type=DOCKER", "--environment_config=img:1"]),
    ("spark", ["--runner=SparkRunner", "--environment_type=DOCKER", "--environment_config=img:1"]),
])
def test_cluster_runners_get_the_worker_image(runner, expected):
    args = beam.pipeline_args(runner, FLINK, worker_image="img:1")
    assert args == expected + FLINK
    assert not beam.runs_in_process(args)
    # An explicit worker environment is left alone.
    own = ["--environment_type=EXTERNAL", "--environment_config=localhost:50000"]
    assert beam.pipeline_args(runner, own, worker_image="img:1") == [expected[0], *own]


def test_dataflow_and_portable_check_their_required_options():
    with pytest.raises(beam.BeamOptionsError, match="--project.*--region.*--temp_location"):
        beam.pipeline_args("dataflow", [])
    args = beam.pipeline_args("dataflow", ["--project=p", "--region", "europe-west4", "--temp_location=gs://b/t"],
                              worker_image="img:1")
    assert args[:2] == ["--runner=DataflowRunner", "--sdk_container_image=img:1"]
    assert beam.option_value(args, "region") == "europe-west4"
    with pytest.raises(beam.BeamOptionsError, match="job_endpoint"):
        beam.pipeline_args("portable")
    with pytest.raises(beam.BeamOptionsError, match="--beam-runner"):
        beam.pipeline_args("flink", ["--runner=DataflowRunner"])
    with pytest.raises(beam.BeamOptionsError, match="unknown Beam runner"):
        beam.pipeline_args("samza")


def _local_beam_args(config) -> dict[str, list[str]]:
    """node id -> Beam arguments as LocalDagRunner's BeamExecutorOperator resolves them."""
    from tfx.dsl.compiler import compiler, placeholder_utils
    from tfx.orchestration.portable.data_types import ExecutionInfo
    from tfx.proto.orchestration import executable_spec_pb2, pipeline_pb2

    from tfx_pipeline.pipeline import create_pipeline

    ir = compiler.Compiler().compile(create_pipeline(config))
    deployment = pipeline_pb2.IntermediateDeploymentConfig()
    ir.deployment_config.Unpack(deployment)
    context = placeholder_utils.ResolutionContext(exec_info=ExecutionInfo())
    found = {}
    for node, spec in deployment.executor_specs.items():
        beam_spec = executable_spec_pb2.BeamExecutableSpec()
        if spec.Unpack(beam_spec):
            found[node] = [placeholder_utils.resolve_placeholder_expression(p, context)
                           for p in beam_spec.beam_pipeline_args_placeholders]
    return found


def _evaluator_module_path(config):
    from tfx_pipeline.pipeline import create_pipeline

    evaluator = next(c for c in create_pipeline(config).components if c.id == "Evaluator")
    return evaluator.exec_properties.get("module_path")


def test_beam_options_reach_the_local_components(tmp_path):
    from tfx_pipeline.config import PipelineConfig

    default = PipelineConfig(data_root=str(tmp_path / "data"), home=str(tmp_path / "home"), span=SPAN)
    found = _local_beam_args(default)
    assert set(found) == BEAM_NODES
    assert all(args == list(beam.IN_MEMORY_DIRECT) for args in found.values())
    assert _evaluator_module_path(default) is None  # the local run registers the ops itself

    flink = beam.pipeline_args("flink", FLINK, worker_image="img:1")
    config = PipelineConfig(data_root=str(tmp_path / "data"), home=str(tmp_path / "home"), span=SPAN,
                            beam_pipeline_args=flink)
    found = _local_beam_args(config)
    assert set(found) == BEAM_NODES
    assert all(args == flink for args in found.values())
    assert _evaluator_module_path(config) == "tfx_pipeline.evaluator_module"  # workers need the hook


def test_beam_options_reach_the_compiled_components(tmp_path):
    import json

    from tfx_pipeline import kubeflow
    from tfx_pipeline.config import KUBEFLOW, PipelineConfig

    flink = beam.pipeline_args("flink", FLINK, worker_image="img:1")
    config = PipelineConfig(data_root="gs://b/data", home="gs://b/home", span=None, orchestrator=KUBEFLOW,
                            beam_pipeline_args=flink)
    job = kubeflow.compile_pipeline(config, "img:1", str(tmp_path / "p.json"))
    executors = job["pipelineSpec"]["deploymentSpec"]["executors"]
    for node in BEAM_NODES:
        assert executors[f"{node}_executor"]["container"]["args"][-len(flink):] == flink, node
    assert json.loads((tmp_path / "p.json").read_text())["pipelineSpec"]["deploymentSpec"] == \
        job["pipelineSpec"]["deploymentSpec"]


def _land(root, day: str) -> None:
    folder = root / day
    folder.mkdir(parents=True)
    (folder / "part-00000.csv").write_text("a\n1\n")
    (folder / "_SUCCESS").write_text("")


def test_run_forwards_beam_options_into_the_pipeline_config(tmp_path, monkeypatch):
    from freshrank import cli

    _land(tmp_path / "data", SPAN.isoformat())
    seen = []
    monkeypatch.setattr(cli, "_run", lambda config: seen.append(config) or 0)
    base = ["run", "--data", str(tmp_path / "data"), "--home", str(tmp_path / "home")]
    result = CliRunner().invoke(cli.main, base)
    assert result.exit_code == 0, result.output
    assert seen[-1].beam_pipeline_args == list(beam.IN_MEMORY_DIRECT)

    result = CliRunner().invoke(cli.main, base + ["--beam-runner", "flink", "--beam-arg=--flink_master=jm:8081",
                                                  "--beam-arg", "--parallelism=4"])
    assert result.exit_code == 0, result.output
    assert seen[-1].beam_pipeline_args == ["--runner=FlinkRunner", "--flink_master=jm:8081", "--parallelism=4"]

    result = CliRunner().invoke(cli.main, base + ["--beam-runner", "dataflow"])
    assert result.exit_code == 2 and "--temp_location" in result.output
    assert len(seen) == 2
