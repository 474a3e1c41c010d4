"""`freshrank compile --target kubeflow`: the compiled pipeline, read back with kfp's own protos.

Every step, its image, its command and its parameters; the runtime parameters (span, window);
the warm start (LatestBlessedModelStrategy -> two ML Metadata queries) and the window component;
the .yaml form that `kfp` uploads and the parameter values Vertex builds; `freshrank submit`.
"""
from __future__ import annotations

import datetime
import json

import pytest
from click.testing import CliRunner
from google.protobuf import json_format
from kfp.pipeline_spec import pipeline_spec_pb2

from tfx_pipeline import kubeflow
from tfx_pipeline.pipeline import span_range_json
from tfx_pipeline.spans import span_number

IMAGE = "europe-docker.pkg.dev/shop/ml/freshrank:0.1.0"
DATA = "gs://shop-landing/search"
HOME = "gs://shop-ml/freshrank"
SPAN = datetime.date(2026, 11, 2)
TFX_ENTRYPOINT = ["python", "-m", "tfx.orchestration.kubeflow.v2.container.kubeflow_v2_run_executor"]
DATAFLOW = ["--project=shop", "--region=europe-west4", "--temp_location=gs://shop-ml/tmp"]

# step -> executor class each container runs
EXECUTORS = {
    "SpanReady": "tfx_pipeline.components.span_ready.SpanReady_Executor",
    "CsvExampleGen": "tfx.components.example_gen.csv_example_gen.executor.Executor",
    "ImportSchemaGen": "tfx.components.schema_gen.import_schema_gen.executor.Executor",
    "StatisticsGen": "tfx.components.statistics_gen.executor.Executor",
    "ExampleValidator": "tfx.components.example_validator.executor.Executor",
    "SpanWindow": "tfx_pipeline.components.span_window.SpanWindow_Executor",
    "Trainer": "tfx.components.trainer.executor.GenericExecutor",
    "Evaluator": "tfx.components.evaluator.executor.Executor",
    "Pusher": "tfx_pipeline.components.atomic_pusher.AtomicPusher_Executor",
}
RESOLVERS = {"latest_blessed_model-model-blessing-resolver", "latest_blessed_model-model-resolver"}
BEAM_STEPS = ("CsvExampleGen", "StatisticsGen", "Evaluator")


def _load(path) -> tuple[dict, pipeline_spec_pb2.PipelineJob, pipeline_spec_pb2.PipelineSpec]:
    raw = json.loads(path.read_text())
    job = json_format.ParseDict(raw, pipeline_spec_pb2.PipelineJob())  # strict: unknown fields fail
    spec = json_format.ParseDict(json_format.MessageToDict(job.pipeline_spec), pipeline_spec_pb2.PipelineSpec())
    return raw, job, spec


def _constant(task: pipeline_spec_pb2.PipelineTaskSpec, name: str):
    value = task.inputs.parameters[name].runtime_value.constant
    return json_format.MessageToDict(value)


@pytest.fixture(scope="module")
def compiled(tmp_path_factory):
    """The CLI's compile with the span, window, Beam, distribution and resource settings."""
    from freshrank.cli import main

    out = tmp_path_factory.mktemp("kfp") / "pipeline.json"
    args = ["compile", "--target", "kubeflow", "--image", IMAGE, "--data", DATA, "--home", HOME,
            "--out", str(out), "--span", SPAN.isoformat(), "--window", "5", "--distribution", "mirrored",
            "--trainer-accelerator", "NVIDIA_TESLA_T4:2", "--trainer-cpu", "8", "--trainer-memory-gb", "32",
            "--beam-runner", "dataflow"] + [f"--beam-arg={a}" for a in DATAFLOW]
    result = CliRunner().invoke(main, args, catch_exceptions=False)
    assert result.exit_code == 0, result.output
    assert result.stdout.strip().splitlines()[-1] == str(out)
    return _load(out)


def test_every_step_runs_the_image_with_its_executor(compiled):
    _, _, spec = compiled
    assert spec.schema_version == "2.1.0"
    tasks = spec.root.dag.tasks
    assert set(tasks) == set(EXECUTORS) | RESOLVERS
    executors = spec.deployment_spec.fields["executors"]
    for name, task in tasks.items():
        component = spec.components[task.component_ref.name]
        executor = executors.struct_value.fields[component.executor_label].struct_value
        as_dict = json_format.MessageToDict(executor)
        if name in RESOLVERS:
            assert "resolver" in as_dict, name
            continue
        container = as_dict["container"]
        assert container["image"] == IMAGE, name
        assert container["command"] == TFX_ENTRYPOINT, name
        args = container["args"]
        assert args[args.index("--executor_class_path") + 1] == EXECUTORS[name], name
    example_gen = json_format.MessageToDict(executors.struct_value.fields["CsvExampleGen_executor"].struct_value)
    driver = example_gen["container"]["lifecycle"]["preCacheCheck"]["command"]
    assert driver[-1] == "tfx.orchestration.kubeflow.v2.file_based_example_gen.driver"


def test_span_and_window_are_runtime_parameters(compiled):
    raw, job, spec = compiled
    inputs = spec.root.input_definitions.parameters
    assert set(inputs) == {"span_range", "window"}
    assert inputs["span_range"].parameter_type == pipeline_spec_pb2.ParameterType.STRING
    assert inputs["window"].parameter_type == pipeline_spec_pb2.ParameterType.NUMBER_INTEGER
    span_default = json.loads(inputs["span_range"].default_value.string_value)
    assert span_default == {"static_range": {"start_span_number": span_number(SPAN), "end_span_number": span_number(SPAN)}}
    assert inputs["window"].default_value.number_value == 5
    assert inputs["span_range"].is_optional and inputs["window"].is_optional
    assert raw["runtimeConfig"]["parameterValues"] == {"span_range": span_range_json(SPAN), "window": 5}
    assert raw["runtimeConfig"]["gcsOutputDirectory"] == spec.default_pipeline_root == f"{HOME}/pipeline"

    tasks = spec.root.dag.tasks
    assert tasks["CsvExampleGen"].inputs.parameters["range_config"].component_input_parameter == "span_range"
    assert tasks["SpanReady"].inputs.parameters["span_range"].component_input_parameter == "span_range"
    assert tasks["SpanWindow"].inputs.parameters["window_size"].component_input_parameter == "window"
    # The gate runs before anything is ingested.
    assert "SpanReady" in tasks["CsvExampleGen"].dependent_tasks


def test_step_parameters(compiled):
    _, _, spec = compiled
    tasks = spec.root.dag.tasks
    example_gen = tasks["CsvExampleGen"]
    assert _constant(example_gen, "input_base") == DATA
    assert json.loads(_constant(example_gen, "input_config"))["splits"][0]["pattern"] == "{YYYY}-{MM}-{DD}/*.csv"
    split = json.loads(_constant(example_gen, "output_config"))["split_config"]
    assert split["partition_feature_name"] == "request_id"
    assert [s["name"] for s in split["splits"]] == ["train", "eval", "test"]
    assert _constant(tasks["SpanReady"], "input_base") == DATA
    assert _constant(tasks["SpanReady"], "quarantine_root") == f"{HOME}/quarantine"
    assert _constant(tasks["ImportSchemaGen"], "schema_file") == kubeflow.IMAGE_SCHEMA_FILE
    assert _constant(tasks["SpanWindow"], "index_dir") == f"{HOME}/span_index"

    trainer = tasks["Trainer"]
    assert _constant(trainer, "run_fn") == "trainer.task.run_fn"
    train = json.loads(json.loads(_constant(trainer, "custom_config"))["freshrank_train_config"])
    assert train["distribution"] == "mirrored"
    assert trainer.inputs.artifacts["examples"].task_output_artifact.producer_task == "SpanWindow"
    assert trainer.inputs.artifacts["examples"].task_output_artifact.output_artifact_key == "window"
    # The warm start survived: base_model comes from the latest-blessed-model query.
    assert trainer.inputs.artifacts["base_model"].task_output_artifact.producer_task == "latest_blessed_model-model-resolver"

    evaluator = tasks["Evaluator"]
    assert evaluator.inputs.artifacts["baseline_model"].task_output_artifact.producer_task == (
        "latest_blessed_model-model-resolver")
    assert _constant(evaluator, "module_path") == "tfx_pipeline.evaluator_module"
    thresholds = json.loads(_constant(evaluator, "eval_config"))
    assert thresholds["model_specs"][0]["signature_name"] == "regress"
    assert thresholds["model_specs"][0]["example_weight_key"] == "ips_weight"
    # Blessing reads the window's test split (IPS-weighted), not ExampleGen's.
    assert evaluator.inputs.artifacts["examples"].task_output_artifact.producer_task == "SpanWindow"
    assert json.loads(_constant(evaluator, "example_splits")) == ["test"]

    assert _constant(tasks["Pusher"], "base_directory") == f"{HOME}/serving/ranker"

    executors = json_format.MessageToDict(spec.deployment_spec)["executors"]
    resources = executors["Trainer_executor"]["container"]["resources"]
    assert resources["accelerator"] == {"type": "NVIDIA_TESLA_T4", "count": "2"}
    assert resources["cpuLimit"] == 8 and resources["memoryLimit"] == 32
    resolver = executors["latest_blessed_model-model-blessing-resolver_executor"]["resolver"]
    assert 'schema_title="tfx.ModelBlessing"' in resolver["outputArtifactQueries"]["model_blessing"]["filter"]


def test_beam_options_reach_every_beam_step(compiled):
    _, _, spec = compiled
    executors = json_format.MessageToDict(spec.deployment_spec)["executors"]
    expected = ["--runner=DataflowRunner", f"--sdk_container_image={IMAGE}", *DATAFLOW]
    for step in BEAM_STEPS:
        args = executors[f"{step}_executor"]["container"]["args"]
        assert args[-len(expected):] == expected, step
    driver_args = executors["CsvExampleGen_executor"]["container"]["lifecycle"]["preCacheCheck"]["args"]
    assert driver_args[-len(expected):] == expected


def test_yaml_package_is_what_kfp_uploads_and_vertex_takes_the_json(tmp_path):
    from google.cloud.aiplatform.utils import pipeline_utils
    from kfp.client import client as kfp_client

    from tfx_pipeline.config import KUBEFLOW, PipelineConfig

    config = PipelineConfig(data_root=DATA, home=HOME, span=None, orchestrator=KUBEFLOW)
    out = tmp_path / "pipeline.yaml"
    job = kubeflow.compile_pipeline(config, IMAGE, str(out))
    doc = kfp_client._extract_pipeline_yaml(str(out))  # noqa: SLF001 - what create_run_from_pipeline_package does
    params = doc.pipeline_spec.root.input_definitions.parameters
    assert params["span_range"].default_value.string_value == ""  # the newest span
    assert params["window"].default_value.number_value == 7
    assert set(doc.pipeline_spec.root.dag.tasks) == set(EXECUTORS) | RESOLVERS

    # Vertex: the PipelineJob JSON with a run's parameter values, as aiplatform.PipelineJob builds it.
    values = kubeflow.run_parameters(span=SPAN, window=3)
    builder = pipeline_utils.PipelineRuntimeConfigBuilder.from_job_spec_json(job)
    builder.update_runtime_parameters(values)
    runtime = builder.build()
    assert runtime["parameterValues"] == {"span_range": span_range_json(SPAN), "window": 3}
    assert runtime["gcsOutputDirectory"] == f"{HOME}/pipeline"


def test_vertex_training_runs_the_trainer_as_a_custom_job(tmp_path):
    from tfx_pipeline.config import KUBEFLOW, PipelineConfig
    from trainer.config import TrainConfig

    pools = [{"machine_spec": {"machine_type": "n1-standard-8"}, "replica_count": 1},
             {"machine_spec": {"machine_type": "n1-standard-8"}, "replica_count": 3}]
    config = PipelineConfig(
        data_root=DATA, home=HOME, span=SPAN, orchestrator=KUBEFLOW, train=TrainConfig(distribution="multi_worker"),
        vertex_training={"project": "shop", "region": "europe-west4", "worker_pool_specs": pools},
    )
    out = tmp_path / "pipeline.json"
    kubeflow.compile_pipeline(config, IMAGE, str(out))
    _, _, spec = _load(out)
    trainer = spec.root.dag.tasks["Trainer"]
    custom = json.loads(_constant(trainer, "custom_config"))
    assert custom["ai_platform_enable_vertex"] is True
    assert custom["ai_platform_vertex_region"] == "europe-west4"
    job_pools = custom["ai_platform_training_args"]["worker_pool_specs"]
    assert [p["container_spec"]["image_uri"] for p in job_pools] == [IMAGE, IMAGE]
    assert [p["replica_count"] for p in job_pools] == [1, 3]
    assert json.loads(custom["freshrank_train_config"])["distribution"] == "multi_worker"
    executor = json_format.MessageToDict(spec.deployment_spec)["executors"]["Trainer_executor"]["container"]
    path = executor["args"][executor["args"].index("--executor_class_path") + 1]
    assert path == "tfx.extensions.google_cloud_ai_platform.trainer.executor.GenericExecutor"


def test_compile_usage_errors():
    from freshrank.cli import main

    base = ["compile", "--image", IMAGE, "--data", DATA, "--home", HOME, "--out", "/tmp/unused.json"]
    result = CliRunner().invoke(main, base + ["--beam-runner", "dataflow"])
    assert result.exit_code == 2 and "--project" in result.output
    result = CliRunner().invoke(main, base + ["--trainer-accelerator", "T4:0"])
    assert result.exit_code == 2 and "COUNT" in result.output
    result = CliRunner().invoke(main, ["compile", "--data", DATA, "--home", HOME])
    assert result.exit_code == 2 and "--image" in result.output


def test_submit_turns_a_date_into_the_span_parameter(tmp_path):
    from freshrank.cli import main

    package = tmp_path / "pipeline.json"
    package.write_text("{}")
    result = CliRunner().invoke(main, ["submit", str(package), "--kfp-host", "http://kfp:8080", "--span",
                                       "2026-11-03", "--window", "4", "--dry-run"])
    assert result.exit_code == 0, result.output
    plan = json.loads(result.stdout)
    assert plan["parameter_values"] == {"span_range": span_range_json(datetime.date(2026, 11, 3)), "window": 4}
    assert plan["kfp_host"] == "http://kfp:8080"
    result = CliRunner().invoke(main, ["submit", str(package), "--vertex-project", "shop", "--vertex-region",
                                       "europe-west4", "--newest", "--dry-run"])
    assert json.loads(result.stdout)["parameter_values"] == {"span_range": ""}
    result = CliRunner().invoke(main, ["submit", str(package), "--dry-run"])
    assert result.exit_code == 2
    result = CliRunner().invoke(main, ["submit", str(package), "--kfp-host", "h", "--span", "2026-11-03",
                                       "--newest", "--dry-run"])
    assert result.exit_code == 2


def _land(root, day: str, complete: bool) -> None:
    folder = root / day
    folder.mkdir(parents=True)
    (folder / "part-00000.csv").write_text("a\n1\n")
    if complete:
        (folder / "_SUCCESS").write_text("")


def test_span_ready_resolves_like_example_gen_and_refuses_half_landed_spans(tmp_path):
    from tfx_pipeline.components.span_ready import SpanNotReady, resolve_landed_span
    from tfx_pipeline.spans import SPAN_PATTERN

    _land(tmp_path, "2026-11-01", complete=True)
    _land(tmp_path, "2026-11-02", complete=False)
    pinned = span_range_json(datetime.date(2026, 11, 1))
    span, folder = resolve_landed_span(str(tmp_path), SPAN_PATTERN, pinned)
    assert span == span_number(datetime.date(2026, 11, 1)) and folder.endswith("2026-11-01")
    with pytest.raises(SpanNotReady, match="2026-11-02 has no _SUCCESS"):
        resolve_landed_span(str(tmp_path), SPAN_PATTERN, "")  # newest = the half-landed one
    (tmp_path / "2026-11-02" / "_SUCCESS").write_text("")
    assert resolve_landed_span(str(tmp_path), SPAN_PATTERN, "")[0] == span_number(datetime.date(2026, 11, 2))


def test_run_parameters_and_accelerators():
    assert kubeflow.run_parameters() == {}
    assert kubeflow.run_parameters(newest=True) == {"span_range": ""}
    with pytest.raises(ValueError):
        kubeflow.run_parameters(window=0)
    assert kubeflow.parse_accelerator("nvidia.com/gpu:4") == ("nvidia.com/gpu", 4)
    assert kubeflow.parse_accelerator("TPU_V3") == ("TPU_V3", 1)
    with pytest.raises(ValueError):
        kubeflow.parse_accelerator("T4:x")


def test_dockerfile_builds_the_image_the_compile_assumes():
    """No Docker engine here: check the Dockerfile against what the compiled pipeline relies on."""
    import re

    from tests.helpers import REPO

    dockerfile = (REPO / "Dockerfile").read_text()
    assert f"WORKDIR {kubeflow.IMAGE_SOURCE_DIR}\n" in dockerfile
    assert f"test -f {kubeflow.IMAGE_SCHEMA_FILE}" in dockerfile
    setup = (REPO / "setup.py").read_text()
    beam_pin = re.search(r'"apache-beam\[gcp\]==([\d.]+)"', setup).group(1)
    assert f"ARG BEAM_VERSION={beam_pin}\n" in dockerfile
    assert "FROM apache/beam_python3.10_sdk:${BEAM_VERSION}" in dockerfile  # python3.10: TFX 1.16's Python
    assert "pip install ." in dockerfile and "COPY setup.py" in dockerfile
    for module in ("tfx_pipeline.evaluator_module", "trainer.task"):
        assert module in dockerfile
    ignored = (REPO / ".dockerignore").read_text().split()
    assert ".venv" in ignored and ".git" in ignored


def test_submit_hands_kfp_a_pipeline_spec_and_vertex_the_job(compiled, tmp_path, monkeypatch):
    """The clients are replaced: what they would send is checked, with kfp's own package reader."""
    import kfp
    from google.cloud import aiplatform
    from kfp.client import client as kfp_client

    raw, _, _ = compiled
    package = tmp_path / "pipeline.json"
    package.write_text(json.dumps(raw))
    params = kubeflow.run_parameters(span=SPAN, window=3)
    calls = {}

    class FakeKfp:
        def __init__(self, host=None, **kwargs):
            calls["kfp_host"] = host

        def create_run_from_pipeline_package(self, pipeline_file, arguments=None, **kwargs):
            calls["kfp_doc"] = kfp_client._extract_pipeline_yaml(pipeline_file)  # noqa: SLF001
            calls["kfp_arguments"], calls["kfp_kwargs"] = arguments, kwargs
            return type("Run", (), {"run_id": "run-1"})()

    class FakeJob:
        def __init__(self, **kwargs):
            calls["vertex"] = kwargs
            self.resource_name = "projects/shop/locations/europe-west4/pipelineJobs/freshrank-1"

        def submit(self, service_account=None):
            calls["vertex_service_account"] = service_account

    monkeypatch.setattr(kfp, "Client", FakeKfp)
    monkeypatch.setattr(aiplatform, "PipelineJob", FakeJob)
    assert kubeflow.submit_kfp(str(package), "http://kfp:8080", params, "freshrank", "daily") == "run-1"
    assert calls["kfp_host"] == "http://kfp:8080" and calls["kfp_arguments"] == params
    assert calls["kfp_kwargs"]["enable_caching"] is False and calls["kfp_kwargs"]["experiment_name"] == "freshrank"
    assert "Trainer" in calls["kfp_doc"].pipeline_spec.root.dag.tasks

    ref = kubeflow.submit_vertex(str(package), "shop", "europe-west4", params, service_account="sa@shop")
    assert ref.endswith("freshrank-1")
    assert calls["vertex"]["template_path"] == str(package) and calls["vertex"]["parameter_values"] == params
    assert calls["vertex"]["project"] == "shop" and calls["vertex"]["location"] == "europe-west4"
    assert calls["vertex_service_account"] == "sa@shop"


def test_an_hourly_pipeline_stages_the_hour_for_example_gen(tmp_path):
    """`--span 2026-11-02T13`: span_range carries the hour's number, SpanReady stages the hour under
    HOME/ingest and ExampleGen reads it there with the {SPAN} spec; the daily parameters stay the same."""
    from freshrank.cli import main
    from tfx_pipeline.spans import HOURLY_INGEST_PATTERN, parse_span

    hour = parse_span("2026-11-02T13")
    out = tmp_path / "hourly.json"
    result = CliRunner().invoke(main, ["compile", "--image", IMAGE, "--data", DATA, "--home", HOME, "--out", str(out),
                                       "--span", "2026-11-02T13"], catch_exceptions=False)
    assert result.exit_code == 0, result.output
    raw, _, spec = _load(out)
    assert raw["runtimeConfig"]["parameterValues"]["span_range"] == span_range_json(hour)
    assert json.loads(span_range_json(hour))["static_range"]["start_span_number"] == hour.number
    tasks = spec.root.dag.tasks
    assert _constant(tasks["SpanReady"], "interval") == "hour"
    assert _constant(tasks["SpanReady"], "staging_root") == f"{HOME}/ingest"
    assert _constant(tasks["SpanReady"], "input_base") == DATA
    assert _constant(tasks["CsvExampleGen"], "input_base") == f"{HOME}/ingest"
    assert json.loads(_constant(tasks["CsvExampleGen"], "input_config"))["splits"][0]["pattern"] == HOURLY_INGEST_PATTERN
    assert _constant(tasks["SpanWindow"], "interval") == "hour"
    assert tasks["CsvExampleGen"].inputs.parameters["range_config"].component_input_parameter == "span_range"

    wrong = CliRunner().invoke(main, ["compile", "--image", IMAGE, "--data", DATA, "--home", HOME, "--out",
                                      str(tmp_path / "x.json"), "--span", "2026-11-02T13", "--interval", "day"])
    assert wrong.exit_code == 2 and "span 2026-11-02T13 is hourly but --interval is day" in wrong.output


def test_span_ready_resolves_and_stages_an_hour(tmp_path):
    from tfx.components.example_gen import input_processor
    from tfx.proto import example_gen_pb2

    from tfx_pipeline.components.span_ready import SpanNotReady, resolve_landed_hour, stage_hour
    from tfx_pipeline.spans import HOURLY_INGEST_PATTERN, parse_span

    data, staging = tmp_path / "data", tmp_path / "home" / "ingest"
    _land(data, "2026-11-01/13", complete=True)
    _land(data, "2026-11-01/14", complete=False)
    thirteen = parse_span("2026-11-01T13")
    assert resolve_landed_hour(str(data), "") == thirteen  # the newest complete hour
    assert resolve_landed_hour(str(data), span_range_json(thirteen)) == thirteen
    with pytest.raises(SpanNotReady, match=r"span 2026-11-01T14 .* has no _SUCCESS"):
        resolve_landed_hour(str(data), span_range_json(parse_span("2026-11-01T14")))
    staged = stage_hour(str(data), thirteen, str(staging), str(tmp_path / "home" / "quarantine"))
    assert staged == str(staging / str(thirteen.number) / "2026-11-01T13")
    processor = input_processor.FileBasedInputProcessor(
        str(staging), [example_gen_pb2.Input.Split(name="all", pattern=HOURLY_INGEST_PATTERN)], None)
    assert processor.resolve_span_and_version()[0] == thirteen.number
