"""`create_pipeline(config)`: the pure description of one continuous-training run.

ExampleGen (one span) -> StatisticsGen -> ImportSchemaGen -> ExampleValidator -> SpanWindow
(data gate + rolling window) -> Trainer (warm-started from the latest blessed model) ->
Evaluator (against that same model as baseline) -> Pusher (only when blessed).
"""
from __future__ import annotations

from tfx import v1 as tfx
from tfx.orchestration import pipeline as tfx_pipeline_lib
from tfx.proto import range_config_pb2

from schemas import SCHEMA_PATH
from tfx_pipeline.components.span_window import SpanWindow
from tfx_pipeline.config import PipelineConfig
from tfx_pipeline.evaluation import EVAL_SPLIT, eval_config
from tfx_pipeline.spans import SPAN_PATTERN, span_number
from trainer.task import CUSTOM_CONFIG_KEY

TRAINER_RUN_FN = "trainer.task.run_fn"


def create_pipeline(config: PipelineConfig) -> tfx_pipeline_lib.Pipeline:
    span = span_number(config.span)
    example_gen = tfx.components.CsvExampleGen(
        input_base=config.data_root,
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
        range_config=range_config_pb2.RangeConfig(
            static_range=range_config_pb2.StaticRange(start_span_number=span, end_span_number=span)
        ),
    )
    schema_gen = tfx.components.ImportSchemaGen(schema_file=str(SCHEMA_PATH))
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
        window_size=config.window,
        replay_fraction=config.train.replay_fraction,
        seed=config.train.seed,
    )
    window.add_upstream_node(example_validator)

    latest_blessed = tfx.dsl.Resolver(
        strategy_class=tfx.dsl.experimental.LatestBlessedModelStrategy,
        model=tfx.dsl.Channel(type=tfx.types.standard_artifacts.Model),
        model_blessing=tfx.dsl.Channel(type=tfx.types.standard_artifacts.ModelBlessing),
    ).with_id("latest_blessed_model")

    trainer = tfx.components.Trainer(
        run_fn=TRAINER_RUN_FN,
        examples=window.outputs["window"],
        schema=schema_gen.outputs["schema"],
        base_model=None if config.from_scratch else latest_blessed.outputs["model"],
        train_args=tfx.proto.TrainArgs(splits=["train"]),
        eval_args=tfx.proto.EvalArgs(splits=["eval"]),
        custom_config={CUSTOM_CONFIG_KEY: config.train.to_json()},
    )
    evaluator = tfx.components.Evaluator(
        examples=example_gen.outputs["examples"],
        example_splits=[EVAL_SPLIT],
        model=trainer.outputs["model"],
        baseline_model=latest_blessed.outputs["model"],
        eval_config=eval_config(config.min_auc, config.bless_tolerance),
    )
    pusher = tfx.components.Pusher(
        model=trainer.outputs["model"],
        model_blessing=evaluator.outputs["blessing"],
        push_destination=tfx.proto.PushDestination(
            filesystem=tfx.proto.PushDestination.Filesystem(base_directory=config.serving_dir)
        ),
    )
    components = [
        example_gen, schema_gen, statistics_gen, example_validator, window,
        latest_blessed, trainer, evaluator, pusher,
    ]
    return tfx_pipeline_lib.Pipeline(
        pipeline_name=config.pipeline_name,
        pipeline_root=config.pipeline_root,
        components=components,
        metadata_connection_config=tfx.orchestration.metadata.sqlite_metadata_connection_config(
            config.metadata_path
        ),
        beam_pipeline_args=config.beam_pipeline_args or default_beam_args(),
        enable_cache=False,
    )


def default_beam_args() -> list[str]:
    # In-memory DirectRunner: one process, so tensorflow_text ops registered here stay registered.
    return ["--direct_running_mode=in_memory", "--direct_num_workers=1"]


