"""The same pipeline for Kubeflow Pipelines (V2 engine) and Vertex AI Pipelines: compile and submit.

`compile_pipeline(config, image, out)` runs `create_pipeline` with `orchestrator="kubeflow"` and
KubeflowV2DagRunner (pipeline spec schema 2.1, which KFP 2.x backends and Vertex both accept):

- the rolling window survives because it is a component (SpanWindow), not a span Resolver (the
  V2 compiler rejects those); its index lives under HOME (gs://... there);
- the warm start survives because LatestBlessedModelStrategy is the one resolver the V2
  compiler supports: it becomes two ML Metadata queries (latest blessing -> its model) that feed
  the Trainer's `base_model` and the Evaluator's `baseline_model`;
- the span and the window are runtime parameters: `span_range` (ExampleGen's RangeConfig as
  JSON, "" = the newest span; `freshrank submit --span DAY` writes it) and `window` (int);
- hourly spans (`--interval hour`, or an hourly `--span 2026-11-01T13`): SpanReady stages the hour
  under HOME/ingest/<span number>/ and ExampleGen reads it there with the `{SPAN}` spec, as a local
  run does (tfx_pipeline/hourly_ingest.py); `span_range` carries the hour's number;
- every step runs IMAGE (see the Dockerfile) with the pipeline's Beam options as arguments.

The output format follows the file name: `.json` is the PipelineJob TFX writes (pipelineSpec +
runtimeConfig; Vertex takes it), `.yaml`/`.yml` the bare PipelineSpec that `kfp` uploads.
"""
from __future__ import annotations

import dataclasses
import datetime
import json
import os
import tempfile
from typing import TYPE_CHECKING, Any

from tfx_pipeline.config import KUBEFLOW, PipelineConfig

if TYPE_CHECKING:
    from tfx_pipeline.pipeline import Platform
    from tfx_pipeline.spans import Span

# Where the Dockerfile puts the source (and so the curated schema) inside the image.
IMAGE_SOURCE_DIR = "/freshrank"
IMAGE_SCHEMA_FILE = f"{IMAGE_SOURCE_DIR}/schemas/schema.pbtxt"
YAML_SUFFIXES = (".yaml", ".yml")


@dataclasses.dataclass
class TrainerResources:
    """What the Trainer's step asks the cluster for (KFP: the pod; Vertex: the step's machine)."""

    cpu: float | None = None
    memory_gb: float | None = None
    accelerator_type: str | None = None  # e.g. NVIDIA_TESLA_T4 (Vertex) / nvidia.com/gpu (KFP)
    accelerator_count: int = 0

    def __bool__(self) -> bool:
        return bool(self.cpu or self.memory_gb or self.accelerator_type)

    def to_proto(self):
        from kfp.pipeline_spec import pipeline_spec_pb2

        spec = pipeline_spec_pb2.PipelineDeploymentConfig.PipelineContainerSpec.ResourceSpec()
        if self.cpu:
            spec.cpu_limit = float(self.cpu)
        if self.memory_gb:
            spec.memory_limit = float(self.memory_gb)
        if self.accelerator_type:
            if self.accelerator_count < 1:
                raise ValueError("an accelerator type needs a count >= 1")
            spec.accelerator.type = self.accelerator_type
            spec.accelerator.count = int(self.accelerator_count)
        return spec


def parse_accelerator(text: str | None) -> tuple[str | None, int]:
    """'NVIDIA_TESLA_T4:2' -> ('NVIDIA_TESLA_T4', 2); 'NVIDIA_TESLA_T4' -> (…, 1)."""
    if not text:
        return None, 0
    kind, _, count = text.partition(":")
    try:
        number = int(count) if count else 1
    except ValueError:
        raise ValueError(f"accelerator {text!r}: want TYPE or TYPE:COUNT") from None
    if not kind or number < 1:
        raise ValueError(f"accelerator {text!r}: want TYPE or TYPE:COUNT with COUNT >= 1")
    return kind, number


def kubeflow_config(config: PipelineConfig, image: str) -> PipelineConfig:
    """The config as compiled: Kubeflow orchestration, the image's schema, Vertex pools on IMAGE."""
    vertex = config.vertex_training
    if vertex:
        vertex = json.loads(json.dumps(vertex))
        for pool in vertex.get("worker_pool_specs", []):
            if pool:  # an empty pool ({}) is a placeholder Vertex needs between used pools
                pool.setdefault("container_spec", {}).setdefault("image_uri", image)
    from tfx_pipeline.spans import HOUR

    # An hourly span reaches ExampleGen through SpanReady's staged copy (tfx_pipeline/components/span_ready.py).
    hourly = {"ingest_root": f"{config.home}/ingest"} if config.interval == HOUR else {}
    return dataclasses.replace(
        config, orchestrator=KUBEFLOW, schema_file=config.schema_file or IMAGE_SCHEMA_FILE, vertex_training=vertex,
        **hourly,
    )


def parameter_defaults(config: PipelineConfig) -> dict[str, Any]:
    from tfx_pipeline.pipeline import SPAN_RANGE_PARAMETER, WINDOW_PARAMETER, span_range_json

    return {SPAN_RANGE_PARAMETER: span_range_json(config.span), WINDOW_PARAMETER: config.window}


def kubeflow_platform(config: PipelineConfig) -> Platform:
    """Kubeflow Pipelines / Vertex: the span and the window are runtime parameters (KFP V2 passes
    only str/int/float, and ExampleGen's driver there reads range_config as RangeConfig JSON, so the
    span travels as that JSON, "" = the newest span); SpanReady refuses a half-landed span first;
    the Evaluator step registers the ranker's ops itself; ML Metadata is the orchestrator's."""
    from tfx import v1 as tfx

    from tfx_pipeline.components.span_ready import SpanReady
    from tfx_pipeline.pipeline import SPAN_RANGE_PARAMETER, WINDOW_PARAMETER, Platform, span_range_json
    from tfx_pipeline.spans import HOUR, SPAN_PATTERN

    def span_ready(config: PipelineConfig, range_config) -> list:
        hourly = {"interval": HOUR, "staging_root": f"{config.home}/ingest"} if config.interval == HOUR else {}
        return [SpanReady(input_base=config.data_root, pattern=SPAN_PATTERN, span_range=range_config,
                          quarantine_root=f"{config.home}/quarantine", **hourly)]

    return Platform(
        range_config=tfx.dsl.experimental.RuntimeParameter(
            name=SPAN_RANGE_PARAMETER, ptype=str, default=span_range_json(config.span)),
        window_size=tfx.dsl.experimental.RuntimeParameter(name=WINDOW_PARAMETER, ptype=int, default=config.window),
        metadata_connection_config=None,
        evaluator_hook=True,
        before_ingest=span_ready,
    )


def compile_pipeline(
    config: PipelineConfig,
    image: str,
    out: str,
    trainer_resources: TrainerResources | None = None,
) -> dict[str, Any]:
    """Compiles the pipeline for IMAGE into OUT; returns the PipelineJob (as a dict)."""
    from tfx.orchestration.kubeflow.v2 import kubeflow_v2_dag_runner as kfp_v2

    from tfx_pipeline.pipeline import create_pipeline

    if not image:
        raise ValueError("an image is required (build it from the Dockerfile and push it)")
    config = kubeflow_config(config, image)
    pipeline = create_pipeline(config, kubeflow_platform(config))
    if trainer_resources:
        trainer = next(c for c in pipeline.components if c.id == "Trainer")
        trainer.with_platform_config(trainer_resources.to_proto())
    defaults = parameter_defaults(config)
    runner = kfp_v2.KubeflowV2DagRunner(
        config=kfp_v2.KubeflowV2DagRunnerConfig(default_image=image, use_pipeline_spec_2_1=True),
        output_dir=tempfile.gettempdir(),
        output_filename="unused.json",
    )
    job = runner.run(pipeline, parameter_values=defaults, write_out=False)
    spec = job["pipelineSpec"]
    # Defaults also inside the spec, so a bare PipelineSpec (KFP upload) runs without arguments.
    for name, value in defaults.items():
        parameter = spec["root"]["inputDefinitions"]["parameters"][name]
        parameter["defaultValue"] = value
        parameter["isOptional"] = True
    spec["defaultPipelineRoot"] = config.pipeline_root
    write_package(job, out)
    return job


def write_package(job: dict[str, Any], out: str) -> None:
    import tensorflow as tf

    parent = os.path.dirname(out)
    if parent:
        tf.io.gfile.makedirs(parent)
    if out.endswith(YAML_SUFFIXES):
        import yaml

        text = yaml.safe_dump(job["pipelineSpec"], sort_keys=True)
    else:
        text = json.dumps(job, indent=2, sort_keys=True)
    with tf.io.gfile.GFile(out, "w") as f:
        f.write(text)


def load_package(path: str) -> dict[str, Any]:
    """A compiled package as a PipelineJob dict (a bare PipelineSpec gets an empty runtimeConfig)."""
    import yaml

    with open(path, encoding="utf-8") as f:
        doc = yaml.safe_load(f)  # JSON is YAML
    if "pipelineSpec" not in doc:
        doc = {"pipelineSpec": doc, "runtimeConfig": {}}
    return doc


def run_parameters(span: Span | datetime.date | None = None, newest: bool = False, window: int | None = None) -> dict:
    """The runtime parameter values for one run; what is not given keeps the compiled default."""
    from tfx_pipeline.pipeline import SPAN_RANGE_PARAMETER, WINDOW_PARAMETER, span_range_json

    params: dict[str, Any] = {}
    if span is not None and newest:
        raise ValueError("give a span or ask for the newest one, not both")
    if span is not None or newest:
        params[SPAN_RANGE_PARAMETER] = span_range_json(span)
    if window is not None:
        if window < 1:
            raise ValueError(f"window must be >= 1, got {window}")
        params[WINDOW_PARAMETER] = int(window)
    return params


def submit_kfp(package: str, host: str, params: dict, experiment: str, run_name: str | None = None,
               namespace: str | None = None) -> str:
    """Starts a run on a Kubeflow Pipelines 2.x backend; returns the run id."""
    import kfp

    if not package.endswith(YAML_SUFFIXES):
        # kfp uploads a bare PipelineSpec in YAML: convert a PipelineJob JSON on the fly.
        job = load_package(package)
        handle, package = tempfile.mkstemp(suffix=".yaml", prefix="freshrank-pipeline-")
        os.close(handle)
        write_package(job, package)
    client = kfp.Client(host=host, **({"namespace": namespace} if namespace else {}))
    run = client.create_run_from_pipeline_package(
        package, arguments=params, run_name=run_name, experiment_name=experiment, enable_caching=False
    )
    return run.run_id


def submit_vertex(package: str, project: str, region: str, params: dict, pipeline_root: str | None = None,
                  service_account: str | None = None, display_name: str | None = None) -> str:
    """Submits a Vertex AI PipelineJob; returns its resource name."""
    from google.cloud import aiplatform

    job = aiplatform.PipelineJob(
        display_name=display_name or "freshrank",
        template_path=package,
        pipeline_root=pipeline_root,
        parameter_values=params,
        enable_caching=False,
        project=project,
        location=region,
    )
    job.submit(service_account=service_account)
    return job.resource_name
