"""Every option that more than one command takes, declared once, with the config classes' defaults.

`pipeline_options` and `train_options` are the flags of a pipeline run: `freshrank run`, `watch`
and `compile` all take them (tests/freshrank/test_cli_options.py compares the sets), and
`pipeline_settings` / `train_config_from` turn them into `PipelineConfig` / `TrainConfig` fields.
"""
from __future__ import annotations

import datetime
import json
from collections.abc import Callable

import click

# Trainer flags -> TrainConfig fields (the flag is the field with dashes).
TRAIN_FLAGS = ("epochs", "warm_start_epochs", "batch_size", "learning_rate", "warm_start_learning_rate",
               "update_mode", "replay_fraction", "reuse_holdout", "distill_weight", "init_checkpoint", "init_layers",
               "distribution", "tpu_address")
# Pipeline flags -> PipelineConfig fields (beam_runner and beam_args become beam_pipeline_args).
PIPELINE_FLAGS = ("window", "from_scratch", "model_name", "min_auc", "bless_tolerance", "bless_weighting",
                  "bless_pages", "label_position_check", "schema_file", "interval")
LOCAL_PIPELINE_FLAGS = ("max_bad_row_share", "keep_versions")


def _apply(f, options: list[Callable]):
    for option in reversed(options):
        f = option(f)
    return f


def model_name_option(f):
    """`--model-name` (default: PipelineConfig's)."""
    from tfx_pipeline.config import DEFAULT_MODEL_NAME

    return click.option("--model-name", default=DEFAULT_MODEL_NAME, show_default=True,
                        help="The served model's name: HOME/serving/NAME/ and the Predict model_spec.")(f)


def keep_versions_option(f):
    """`--keep-versions` (default: PipelineConfig's): `run` and `watch` apply it after every run, `gc` when asked."""
    from tfx_pipeline.config import DEFAULT_KEEP_VERSIONS

    return click.option("--keep-versions", default=DEFAULT_KEEP_VERSIONS, show_default=True, type=click.IntRange(min=0),
                        help="Retention: keep the newest K served versions (plus the serving and the newest blessed "
                             "one) and the pipeline outputs of the runs in the window; older ones are removed "
                             "after each run (see `freshrank gc`). 0: keep everything (run/watch only).")(f)


def pipeline_options(local: bool = True):
    """The flags of a pipeline run, defaults from PipelineConfig. `local=False` (a compiled pipeline)
    leaves out --max-bad-row-share: the quarantine runs before a local ExampleGen only."""
    from tfx_pipeline.beam import RUNNERS
    from tfx_pipeline.config import DEFAULT_WINDOW, PipelineConfig

    def decorate(f):
        options = [
            click.option("--window", default=DEFAULT_WINDOW, show_default=True, type=click.IntRange(min=1),
                         help="Train on the newest N validated spans (a compiled pipeline: the window "
                              "parameter's default)."),
            interval_option,
            click.option("--from-scratch", is_flag=True,
                         help="Do not warm-start (the serving model is still the baseline)."),
            model_name_option,
            click.option("--min-auc", default=PipelineConfig.min_auc, show_default=True, type=float,
                         help="AUC floor for blessing."),
            bless_options,
            label_check_option,
            click.option("--schema-file", help="Curated schema (default: schemas/schema.pbtxt of this package; "
                                               "a compiled pipeline: the path in the image or a URI)."),
            click.option("--beam-runner", type=click.Choice(list(RUNNERS)), default="direct", show_default=True,
                         help="Runner of the Beam components (direct: in the step's own process). See BUILD.md."),
            click.option("--beam-arg", "beam_args", multiple=True, metavar="--OPTION=VALUE",
                         help="Beam option passed through as is (repeatable), e.g. "
                              "--beam-arg=--flink_master=host:8081."),
        ]
        if local:
            options.append(click.option(
                "--max-bad-row-share", default=PipelineConfig.max_bad_row_share, show_default=True,
                type=click.FloatRange(0.0, 1.0),
                help="Malformed CSV rows are quarantined to HOME/quarantine/SPAN/; above this share the span is "
                     "rejected (exit 3)."))
            options.append(keep_versions_option)
        return _apply(f, options)

    return decorate


def pipeline_settings(kwargs: dict, worker_image: str | None = None) -> dict:
    """Pops the pipeline flags out of a command's kwargs: PipelineConfig keyword arguments."""
    from tfx_pipeline import beam

    settings = {key: kwargs.pop(key) for key in PIPELINE_FLAGS + LOCAL_PIPELINE_FLAGS if key in kwargs}
    try:
        settings["beam_pipeline_args"] = beam.pipeline_args(kwargs.pop("beam_runner"), kwargs.pop("beam_args"),
                                                            worker_image=worker_image)
    except ValueError as error:
        raise click.UsageError(str(error)) from None
    return settings


def train_options(local_paths: bool = True):
    """The trainer flags. Unset flags keep the --train-config file's value, else TrainConfig's default
    (named in the help). `local_paths=False` (a compiled pipeline): --init-checkpoint is a path as
    the cluster sees it, not checked here."""
    from trainer.config import DISTRIBUTIONS, TrainConfig

    def decorate(f):
        checkpoint_type = click.Path(exists=True, file_okay=False) if local_paths else str
        options = [
            click.option("--epochs", type=click.IntRange(min=1),
                         help=f"Passes over the window when training from scratch (default {TrainConfig.epochs})."),
            click.option("--warm-start-epochs", type=click.IntRange(min=1),
                         help=f"Passes of a warm-started update (default {TrainConfig.warm_start_epochs}; "
                              "see docs/warm-start.md)."),
            click.option("--batch-size", type=click.IntRange(min=1),
                         help=f"Examples per step, whole result pages (default {TrainConfig.batch_size})."),
            click.option("--learning-rate", type=float,
                         help=f"Peak learning rate from scratch (default {TrainConfig.learning_rate})."),
            click.option("--warm-start-learning-rate", type=float,
                         help=f"Peak learning rate when warm-starting (default {TrainConfig.warm_start_learning_rate})."),
            click.option("--update-mode", type=click.Choice(["full", "partial"]),
                         help=f"partial: embeddings and the lower encoder frozen (default {TrainConfig.update_mode})."),
            click.option("--replay-fraction", type=click.FloatRange(0.0, 1.0),
                         help=f"Share of each older window span replayed (default {TrainConfig.replay_fraction}; "
                              "the newest span is always whole)."),
            click.option("--reuse-holdout/--no-reuse-holdout", default=None,
                         help=f"Train also on the previous span's eval and test pages once its blessing is done "
                              f"(default {'on' if TrainConfig.reuse_holdout else 'off'})."),
            click.option("--distill-weight", type=click.FloatRange(min=0.0),
                         help=f"Weight of the base model's scores as soft labels (default {TrainConfig.distill_weight})."),
            click.option("--init-checkpoint", type=checkpoint_type,
                         help="Pretrained BERT directory: Hugging Face (config.json, model.safetensors, vocab.txt) "
                              "or Google (bert_config.json, vocab.txt, bert_model.ckpt.*)."),
            click.option("--init-layers", type=click.IntRange(min=1),
                         help="Keep only the bottom K encoder layers of --init-checkpoint (default: all)."),
            click.option("--distribution", type=click.Choice(list(DISTRIBUTIONS)),
                         help=f"tf.distribute strategy of the Trainer (default {TrainConfig.distribution})."),
            click.option("--tpu-address", help="TPU for --distribution tpu (grpc://HOST:8470, a TPU name, or 'local')."),
            click.option("--train-config", type=click.Path(exists=True, dir_okay=False),
                         help="JSON file of trainer settings (flags override it)."),
        ]
        return _apply(f, options)

    return decorate


def train_config_from(kwargs: dict):
    """Pops the trainer flags out of a command's kwargs and builds the TrainConfig."""
    path = kwargs.pop("train_config", None)
    return load_train_config(path, {key: kwargs.pop(key, None) for key in TRAIN_FLAGS})


def interval_option(f):
    """`--interval day|hour`: how the spans are cut (default: what the data directory's layout shows)."""
    from tfx_pipeline.spans import INTERVALS

    return click.option("--interval", type=click.Choice(list(INTERVALS)),
                        help="Span interval: day (DATA/YYYY-MM-DD/) or hour (DATA/YYYY-MM-DD/HH/). Default: "
                             "what the data directory holds (a --span's own form when it is given; day when "
                             "neither says).")(f)


def parse_span(_ctx, _param, value: str | None):
    """click callback: `YYYY-MM-DD` (a daily span) or `YYYY-MM-DDTHH` (an hourly one) as a Span."""
    from tfx_pipeline.spans import parse_span as parse

    if value is None:
        return None
    try:
        return parse(value)
    except ValueError as error:
        raise click.BadParameter(str(error)) from None


def parse_day(_ctx, _param, value: str | None) -> datetime.date | None:
    """click callback: a YYYY-MM-DD option as a date, with a usage error naming the value."""
    if value is None:
        return None
    try:
        return datetime.date.fromisoformat(value)
    except ValueError:
        raise click.BadParameter(f"{value!r} is not a date in YYYY-MM-DD form") from None


def load_train_config(path: str | None, overrides: dict):
    """Trainer settings: the JSON file (if any), then every flag that was given on top."""
    from trainer.config import TrainConfig

    raw: dict = {}
    if path:
        with open(path, encoding="utf-8") as handle:
            raw = json.load(handle)
    raw.update({k: v for k, v in overrides.items() if v is not None})
    try:
        return TrainConfig.from_dict(raw)
    except (TypeError, ValueError) as error:
        raise click.UsageError(str(error)) from None


def bless_options(f):
    """`--bless-tolerance`, `--bless-weighting` and `--bless-pages` (defaults: PipelineConfig's)."""
    from tfx_pipeline.config import BLESS_PAGES, PipelineConfig

    f = bless_weighting_option(f)
    f = click.option("--bless-pages", default=PipelineConfig.bless_pages, show_default=True,
                     type=click.Choice(list(BLESS_PAGES)),
                     help="The new span's pages blessing reads: its test pages, or its eval and test pages "
                          "together (held-out: twice the pages, a smaller standard error).")(f)
    return click.option("--bless-tolerance", default=PipelineConfig.bless_tolerance, show_default=True,
                        type=click.FloatRange(min=0.0),
                        help="Refuse a candidate only when its estimated purchases on the new span's held-out "
                             "pages fall below the serving model's by more than this many standard errors "
                             "(a large value blesses every candidate above --min-auc).")(f)


def bless_weighting_option(f):
    """`--bless-weighting` (default: PipelineConfig's)."""
    from tfx_pipeline.config import BLESS_WEIGHTINGS, DEFAULT_BLESS_WEIGHTING

    return click.option("--bless-weighting", default=DEFAULT_BLESS_WEIGHTING, show_default=True,
                        type=click.Choice(list(BLESS_WEIGHTINGS)),
                        help="Blessing estimates inverse-propensity weighted by position (ips; the curve is "
                             "estimated from the window's clicks) or unweighted (none).")(f)


def label_check_option(f):
    """`--label-position-check/--no-label-position-check` (default: PipelineConfig's)."""
    from tfx_pipeline.config import PipelineConfig

    return click.option("--label-position-check/--no-label-position-check",
                        default=PipelineConfig.label_position_check,
                        show_default=True,
                        help="Reject a span whose clicks or purchases no longer fall with position (labels "
                             "joined to the wrong rows; exit 3). Off only for a results page with no position "
                             "effect.")(f)
