"""`create_pipeline(config)`: the pure description of one continuous-training run.

ExampleGen (one span) -> StatisticsGen -> ImportSchemaGen -> ExampleValidator -> SpanWindow
(data gate + rolling window + IPS-weighted test split) -> Trainer (warm-started from the latest
blessed model) -> Evaluator (against that same model as baseline, on the window's test split,
inverse-propensity weighted: tfx_pipeline/evaluation.py) -> Pusher (only when blessed;
AtomicPusher, so a version appears in the serving directory whole).

The same function describes the compiled Kubeflow pipeline (`config.orchestrator == "kubeflow"`):
there the span and the window are runtime parameters (`span_range`, `window`), a SpanReady step
refuses a half-landed span, the Evaluator registers the ranker's ops itself, and ML Metadata is
the orchestrator's. See tfx_pipeline/kubeflow.py and BUILD.md.
"""
from __future__ import annotations

import datetime
import json

from tfx import v1 as tfx
from tfx.orchestration import pipeline as tfx_pipeline_lib
from tfx.proto import range_config_pb2

from schemas import SCHEMA_PATH
from tfx_pipeline import beam
from tfx_pipeline.components.atomic_pusher import AtomicPusher
from tfx_pipeline.components.span_window import SpanWindow
from tfx_pipeline.config import KUBEFLOW, PipelineConfig
from tfx_pipeline.evaluation import EVAL_SPLIT, eval_config
from tfx_pipeline.spans import SPAN_PATTERN, span_number
from trainer.task import CUSTOM_CONFIG_KEY

TRAINER_RUN_FN = "trainer.task.run_fn"
EVALUATOR_MODULE = "tfx_pipeline.evaluator_module"
# Runtime parameters of the compiled pipeline.
SPAN_RANGE_PARAMETER = "span_range"
WINDOW_PARAMETER = "window"


def span_range_json(day: datetime.date | None) -> str:
    """ExampleGen's RangeConfig pinning one span, as the JSON its driver parses; "" = newest span."""
    if day is None:
        return ""
    span = span_number(day)
    return json.dumps({"static_range": {"start_span_number": span, "end_span_number": span}})


def create_pipeline(config: PipelineConfig) -> tfx_pipeline_lib.Pipeline:
    compiled = config.orchestrator == KUBEFLOW
    beam_args = config.beam_pipeline_args or default_beam_args()
    if compiled:
        # KFP V2 passes only str/int/float runtime parameters, and ExampleGen's driver there reads
        # range_config as RangeConfig JSON: so the span travels as that JSON ("" = newest span).
        range_config = tfx.dsl.experimental.RuntimeParameter(
            name=SPAN_RANGE_PARAMETER, ptype=str, default=span_range_json(config.span)
        )
        window_size = tfx.dsl.experimental.RuntimeParameter(name=WINDOW_PARAMETER, ptype=int, default=config.window)
    else:
        span = span_number(config.span)
        range_config = range_config_pb2.RangeConfig(
            static_range=range_config_pb2.StaticRange(start_span_number=span, end_span_number=span)
        )
        window_size = config.window
    example_gen = tfx.components.CsvExampleGen(
        input_base=config.ingest_root or config.data_root,
        input_config=tfx.proto.Input(splits=[tfx.proto.Input.Split(name="all", pattern=SPAN_PATTERN)]),
        output_config=tfx.proto.Output(
            split_config=tfx.proto.SplitConfig(
                splits=[
                    tfx.proto.SplitConfig.Split(name="train", hash_buckets=14),
                    tfx.proto.SplitConfig.Split(name="eval", hash_buckets=3),
                    tfx.proto.SplitConfig.Split(name=EVAL_SPLIT, hash_buckets=3),
                ],
                # A result page never straddles splits: ranking metrics need whole pages.
                partition_feature_name="request_id",
            )
        ),
        range_config=range_config,
    )
    schema_gen = tfx.components.ImportSchemaGen(schema_file=config.schema_file or str(SCHEMA_PATH))
    statistics_gen = tfx.components.StatisticsGen(
        examples=example_gen.outputs["examples"], schema=schema_gen.outputs["schema"]
    )
    example_validator = tfx.components.ExampleValidator(
        statistics=statistics_gen.outputs["statistics"], schema=schema_gen.outputs["schema"]
    )
    window = SpanWindow(
        examples=example_gen.outputs["examples"],
        statistics=statistics_gen.outputs["statistics"],
        schema=schema_gen.outputs["schema"],
        index_dir=config.span_index_dir,
        window_size=window_size,
        replay_fraction=config.train.replay_fraction,
        seed=config.train.seed,
        label_position_check=int(config.label_position_check),
    )
    window.add_upstream_node(example_validator)

    latest_blessed = tfx.dsl.Resolver(
        strategy_class=tfx.dsl.experimental.LatestBlessedModelStrategy,
        model=tfx.dsl.Channel(type=tfx.types.standard_artifacts.Model),
        model_blessing=tfx.dsl.Channel(type=tfx.types.standard_artifacts.ModelBlessing),
    ).with_id("latest_blessed_model")

    trainer_class, custom_config = tfx.components.Trainer, {CUSTOM_CONFIG_KEY: config.train.to_json()}
    if config.vertex_training:
        trainer_class, custom_config = _vertex_trainer(config, custom_config)
    trainer = trainer_class(
        run_fn=TRAINER_RUN_FN,
        examples=window.outputs["window"],
        schema=schema_gen.outputs["schema"],
        base_model=None if config.from_scratch else latest_blessed.outputs["model"],
        train_args=tfx.proto.TrainArgs(splits=["train"]),
        eval_args=tfx.proto.EvalArgs(splits=["eval"]),
        custom_config=custom_config,
    )
    # The model's tensorflow_text ops must be registered where TFMA loads it: the local run does
    # that in its own process; a compiled step or a cluster runner's workers need the hook.
    needs_hook = compiled or not beam.runs_in_process(beam_args)
    evaluator = tfx.components.Evaluator(
        # The window's `test` split: the newest span's held-out pages with their IPS weights.
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
    if compiled:
        from tfx_pipeline.components.span_ready import SpanReady

        ready = SpanReady(input_base=config.data_root, pattern=SPAN_PATTERN, span_range=range_config,
                          quarantine_root=f"{config.home}/quarantine")
        example_gen.add_upstream_node(ready)
        components.insert(0, ready)
    # A compiled pipeline uses the orchestrator's ML Metadata.
    metadata = None if compiled else tfx.orchestration.metadata.sqlite_metadata_connection_config(
        config.metadata_path
    )
    return tfx_pipeline_lib.Pipeline(
        pipeline_name=config.pipeline_name,
        pipeline_root=config.pipeline_root,
        components=components,
        metadata_connection_config=metadata,
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


