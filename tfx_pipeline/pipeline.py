"""`create_pipeline(config)`: the pure description of one continuous-training run.

ExampleGen (one span) -> StatisticsGen -> ImportSchemaGen -> ExampleValidator -> SpanWindow
(data gate + rolling window + IPS-weighted test split) -> Trainer (warm-started from the latest
blessed model) -> Evaluator (against that same model as baseline, on the window's test split,
inverse-propensity weighted: tfx_pipeline/evaluation.py) -> Pusher (only when blessed;
AtomicPusher, so a version appears in the serving directory whole).

What differs between where it runs is a `Platform`, chosen by the runners as in TFX's penguin
template (local_runner.py / kubeflow_runner.py): the local run pins the span, takes the window as
a number and uses sqlite ML Metadata (`local_runner.local_platform`); the compiled Kubeflow
pipeline makes the span and the window runtime parameters (`span_range`, `window`), puts a
SpanReady step before ExampleGen to refuse a half-landed span, has the Evaluator register the
ranker's ops itself and uses the orchestrator's ML Metadata (`kubeflow.kubeflow_platform`). See
BUILD.md.
"""
from __future__ import annotations

import dataclasses
import datetime
import json
from collections.abc import Callable
from typing import Any

# TFX's modules themselves, not the `tfx.v1` facade: importing that also imports its Google
# Cloud extensions (google.cloud.aiplatform), about 5 s of CPU at every run's start that a local
# run never uses (docs/freshness.md). Same classes, same pipeline.
from tfx.components import CsvExampleGen, Evaluator, ExampleValidator, StatisticsGen, Trainer
from tfx.components.schema_gen.import_schema_gen.component import ImportSchemaGen
from tfx.dsl.components.common.resolver import Resolver
from tfx.dsl.input_resolution.strategies.latest_blessed_model_strategy import LatestBlessedModelStrategy
from tfx.orchestration import pipeline as tfx_pipeline_lib
from tfx.proto import example_gen_pb2, trainer_pb2
from tfx.types.channel import Channel
from tfx.types.standard_artifacts import Model, ModelBlessing

from schemas import SCHEMA_PATH
from tfx_pipeline import beam, tfx_package
from tfx_pipeline.components.atomic_pusher import AtomicPusher
from tfx_pipeline.components.span_window import SpanWindow
from tfx_pipeline.config import HELD_OUT_PAGES, KUBEFLOW, PipelineConfig
from tfx_pipeline.evaluation import EVAL_SPLIT, eval_config
from tfx_pipeline.spans import HOUR, HOURLY_INGEST_PATTERN, SPAN_PATTERN, Span, span_number
from trainer.task import CUSTOM_CONFIG_KEY

TRAINER_RUN_FN = "trainer.task.run_fn"
EVALUATOR_MODULE = "tfx_pipeline.evaluator_module"
# Runtime parameters of the compiled pipeline.
SPAN_RANGE_PARAMETER = "span_range"
WINDOW_PARAMETER = "window"


def span_range_json(day: Span | datetime.date | None) -> str:
    """ExampleGen's RangeConfig pinning one span, as the JSON its driver parses; "" = newest span."""
    if day is None:
        return ""
    span = span_number(day)
    return json.dumps({"static_range": {"start_span_number": span, "end_span_number": span}})


@dataclasses.dataclass
class Platform:
    """What a runner decides about the pipeline it runs."""

    range_config: Any  # ExampleGen's RangeConfig, or a runtime parameter carrying it as JSON
    window_size: Any  # SpanWindow's window: a number, or a runtime parameter
    metadata_connection_config: Any  # None: the orchestrator's ML Metadata
    evaluator_hook: bool  # the Evaluator registers the ranker's tensorflow_text ops itself
    # Components that must run before ExampleGen (given the range config), e.g. SpanReady.
    before_ingest: Callable[[PipelineConfig, Any], list] = lambda config, range_config: []


def platform_for(config: PipelineConfig) -> Platform:
    """The runner's platform for `config.orchestrator`."""
    if config.orchestrator == KUBEFLOW:
        from tfx_pipeline.kubeflow import kubeflow_platform

        return kubeflow_platform(config)
    from tfx_pipeline.local_runner import local_platform

    return local_platform(config)


def create_pipeline(config: PipelineConfig, platform: Platform | None = None) -> tfx_pipeline_lib.Pipeline:
    platform = platform or platform_for(config)
    beam_args = config.beam_pipeline_args or default_beam_args()
    tfx_package.skip_sdist_for_in_process_beam()  # no 49 MB TFX sdist per in-process Beam component and run
    range_config, window_size = platform.range_config, platform.window_size
    # An hourly span reaches ExampleGen staged under its span number (tfx_pipeline/hourly_ingest.py).
    hourly = {"interval": HOUR} if config.interval == HOUR else {}
    example_gen = CsvExampleGen(
        input_base=config.ingest_root or config.data_root,
        input_config=example_gen_pb2.Input(splits=[example_gen_pb2.Input.Split(
            name="all", pattern=HOURLY_INGEST_PATTERN if hourly else SPAN_PATTERN)]),
        output_config=example_gen_pb2.Output(
            split_config=example_gen_pb2.SplitConfig(
                splits=[
                    example_gen_pb2.SplitConfig.Split(name="train", hash_buckets=14),
                    example_gen_pb2.SplitConfig.Split(name="eval", hash_buckets=3),
                    example_gen_pb2.SplitConfig.Split(name=EVAL_SPLIT, hash_buckets=3),
                ],
                # A result page never straddles splits: ranking metrics need whole pages.
                partition_feature_name="request_id",
            )
        ),
        range_config=range_config,
    )
    schema_gen = ImportSchemaGen(schema_file=config.schema_file or str(SCHEMA_PATH))
    statistics_gen = StatisticsGen(
        examples=example_gen.outputs["examples"], schema=schema_gen.outputs["schema"]
    )
    example_validator = ExampleValidator(
        statistics=statistics_gen.outputs["statistics"], schema=schema_gen.outputs["schema"]
    )
    window = SpanWindow(
        examples=example_gen.outputs["examples"],
        statistics=statistics_gen.outputs["statistics"],
        schema=schema_gen.outputs["schema"],
        index_dir=config.span_index_dir,
        window_size=window_size,
        replay_fraction=config.train.replay_fraction,
        reuse_holdout=int(config.train.reuse_holdout),
        bless_on_eval_pages=int(config.bless_pages == HELD_OUT_PAGES),
        seed=config.train.seed,
        label_position_check=int(config.label_position_check),
        **hourly,
    )
    window.add_upstream_node(example_validator)

    latest_blessed = Resolver(
        strategy_class=LatestBlessedModelStrategy,
        model=Channel(type=Model),
        model_blessing=Channel(type=ModelBlessing),
    ).with_id("latest_blessed_model")

    trainer_class, custom_config = Trainer, {CUSTOM_CONFIG_KEY: config.train.to_json()}
    if config.vertex_training:
        trainer_class, custom_config = _vertex_trainer(config, custom_config)
    trainer = trainer_class(
        run_fn=TRAINER_RUN_FN,
        examples=window.outputs["window"],
        schema=schema_gen.outputs["schema"],
        base_model=None if config.from_scratch else latest_blessed.outputs["model"],
        train_args=trainer_pb2.TrainArgs(splits=["train"]),
        eval_args=trainer_pb2.EvalArgs(splits=["eval"]),
        custom_config=custom_config,
    )
    # The model's tensorflow_text ops must be registered where TFMA loads it: the local run does
    # that in its own process; a compiled step or a cluster runner's workers need the hook.
    needs_hook = platform.evaluator_hook or not beam.runs_in_process(beam_args)
    evaluator = Evaluator(
        # The window's `test` split: the newest span's test (or eval and test) pages with their IPS weights.
        examples=window.outputs["window"],
        example_splits=[EVAL_SPLIT],
        model=trainer.outputs["model"],
        baseline_model=latest_blessed.outputs["model"],
        eval_config=eval_config(config.min_auc, config.bless_tolerance, config.bless_weighting),
        **({"module_path": EVALUATOR_MODULE} if needs_hook else {}),
    )
    # TFX's Pusher, but a version appears in the serving directory whole (one rename), so a run
    # killed mid-push never leaves a partial version for TF Serving to load.
    pusher = AtomicPusher(
        model=trainer.outputs["model"],
        model_blessing=evaluator.outputs["blessing"],
        base_directory=config.serving_dir,
    ).with_id("Pusher")
    components = [
        example_gen, schema_gen, statistics_gen, example_validator, window,
        latest_blessed, trainer, evaluator, pusher,
    ]
    first = platform.before_ingest(config, range_config)
    for component in first:
        example_gen.add_upstream_node(component)
    return tfx_pipeline_lib.Pipeline(
        pipeline_name=config.pipeline_name,
        pipeline_root=config.pipeline_root,
        components=[*first, *components],
        metadata_connection_config=platform.metadata_connection_config,
        beam_pipeline_args=beam_args,
        enable_cache=False,
    )


def default_beam_args() -> list[str]:
    # In-memory DirectRunner: one process, so tensorflow_text ops registered here stay registered.
    return list(beam.IN_MEMORY_DIRECT)


def _vertex_trainer(config: PipelineConfig, custom_config: dict):
    """The Trainer as a Vertex AI custom job: worker pools (GPUs, several workers, TPUs) with TF_CONFIG.

    Vertex sets TF_CONFIG in every replica (chief = the first pool), which is what
    `distribution: multi_worker` reads; the chief exports the model.
    """
    from tfx.extensions.google_cloud_ai_platform import constants as vertex_constants
    from tfx.extensions.google_cloud_ai_platform.trainer import executor as vertex_executor
    from tfx.extensions.google_cloud_ai_platform.trainer.component import Trainer as VertexTrainer

    settings = dict(config.vertex_training)
    region = settings.pop("region", None)
    if not region or not settings.get("project") or not settings.get("worker_pool_specs"):
        raise ValueError("vertex_training needs 'project', 'region' and 'worker_pool_specs'")
    return VertexTrainer, {
        **custom_config,
        vertex_constants.ENABLE_VERTEX_KEY: True,
        vertex_constants.VERTEX_REGION_KEY: region,
        vertex_executor.TRAINING_ARGS_KEY: settings,
    }


