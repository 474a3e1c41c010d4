"""`freshrank demo`: the whole mechanism on embedded defaults, one simulated day at a time."""
from __future__ import annotations

import datetime
import os
from collections.abc import Callable

from freshrank.market import simulate
from tfx_pipeline.config import PipelineConfig
from tfx_pipeline.local_runner import run_once
from trainer.config import TrainConfig

DEMO_START = datetime.date(2026, 11, 1)


def run_demo(
    home: str,
    days: int,
    requests_per_day: int,
    seed: int,
    say: Callable[[str], None],
) -> list[dict]:
    data = os.path.join(home, "data")
    existing = sorted(os.listdir(data)) if os.path.isdir(data) else []
    if existing:
        raise FileExistsError(f"{home} already holds a demo ({len(existing)} spans); use a new --home")
    say(f"generating {days} days of a drifting shop ({requests_per_day} searches/day) in {data}")
    simulate(data, DEMO_START, days, requests_per_day=requests_per_day, seed=seed)
    records = []
    say(f"{'span':<11} {'train ex':>8} {'warm start from':>15} {'AUC':>6} {'NDCG@10':>7} "
        f"{'blessed':>7} {'version':>10} {'minutes':>7}")
    for offset in range(days):
        day = DEMO_START + datetime.timedelta(days=offset)
        config = PipelineConfig(data_root=data, home=home, span=day, train=TrainConfig())
        record = run_once(config)
        records.append(record)
        m = record.get("metrics", {})
        say(f"{record['span']:<11} {record['train_examples']:>8} {str(record['warm_started_from']):>15} "
            f"{_fmt(m.get('auc'))} {_fmt(m.get('ndcg@10')):>7} {str(record['blessed']):>7} "
            f"{str(record['pushed_version']):>10} {record['total_seconds'] / 60:>7.1f}")
    return records


def _fmt(value) -> str:
    return f"{value:6.3f}" if isinstance(value, (int, float)) else f"{'-':>6}"
