"""Option parsing shared by every freshrank command module."""
from __future__ import annotations

import datetime
import json

import click


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
    """`--bless-tolerance` and `--bless-weighting` (defaults: PipelineConfig's)."""
    from tfx_pipeline.config import PipelineConfig

    f = bless_weighting_option(f)
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
