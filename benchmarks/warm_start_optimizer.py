"""Which optimizer settings should a warm-started update use? Measured on one drifting stream.

A warm-started update restores the base model's weights but not its optimizer state: the export
is a TF Serving servable and carries no AdamW moments (and moments from another data window
would describe another loss surface). What remains to choose is the peak learning rate, the
warm-up and the weight decay of the fresh AdamW. This script replays one market stream (the
bench's own stream writer, metrics and scorer; `trainer.task.train` for every fit):

  * the first model is trained from scratch on span 1;
  * each variant then chains warm-started updates through spans 2..D-1, each on the newest span
    only (the harshest case for a warm start: nothing replayed), and each update is scored on the
    NEXT span before it sees it (progressive validation), and on span 1's test split (forgetting);
  * all variants start from the same first model and see the same data and seeds.

Printed and written (--out): per variant the mean next-span NDCG@10 and AUC, the holdout NDCG@10
after the last update, the mean best validation AUC of the updates, and training seconds.
Nothing is asserted; one stream is one sample, so differences under ~0.01 NDCG are noise.

Usage: .venv/bin/python benchmarks/warm_start_optimizer.py [--days 5] [--requests-per-day 400]
       [--seed 0] [--drift mild] [--out DIR]
"""
from __future__ import annotations

import argparse
import dataclasses
import datetime
import json
import os
import statistics
import sys
import tempfile
import time
from pathlib import Path

os.environ.setdefault("TF_USE_LEGACY_KERAS", "1")
os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from freshrank.bench import metrics  # noqa: E402
from freshrank.bench.scoring import Scored, Scorer  # noqa: E402
from freshrank.bench.stream import SPLITS, write_stream  # noqa: E402
from trainer import task  # noqa: E402
from trainer.config import TrainConfig  # noqa: E402

# name -> TrainConfig overrides; the first is the shipped default.
VARIANTS: dict[str, dict] = {
    "adamw lr 1e-3, warm-up 10% (default)": {},
    "adamw lr 3e-3 (the from-scratch peak)": {"warm_start_learning_rate": 3e-3},
    "adamw lr 3e-4": {"warm_start_learning_rate": 3e-4},
    "adamw lr 1e-3, no warm-up": {"warmup_fraction": 0.0},
    "adam lr 1e-3, no weight decay": {"weight_decay": 0.0},
}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n", 1)[0])
    parser.add_argument("--days", type=int, default=5)
    parser.add_argument("--requests-per-day", type=int, default=400)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--drift", choices=("mild", "strong"), default="mild")
    parser.add_argument("--out", help="keep the stream, models and results.json here")
    args = parser.parse_args()
    if args.days < 3:
        parser.error("--days must be >= 3: a first span, one update, one span to score it on")
    out = args.out or tempfile.mkdtemp(prefix="freshrank-optimizer-")
    spans = write_stream(os.path.join(out, "stream"), datetime.date(2026, 11, 1), args.days,
                         args.requests_per_day, args.seed, args.drift, progress=print)
    holdout = spans[0].files("test")
    base_config = TrainConfig()

    def fit(config: TrainConfig, t: int, base: str | None, name: str) -> tuple[str, dict]:
        where = os.path.join(out, "models", name, spans[t].date)
        facts = task.train(config, spans[t].files("train"), spans[t].files("eval"), os.path.join(where, "model"),
                           os.path.join(where, "logs"), base_model=base)
        return os.path.join(where, "model"), facts

    first, first_facts = fit(base_config, 0, None, "first")
    first_holdout = _ndcg(Scorer.saved_model(first).score(holdout))
    print(f"first model: holdout NDCG@10 {first_holdout:.4f}, {first_facts['train_seconds']:.0f}s")
    results = {}
    for index, (name, overrides) in enumerate(VARIANTS.items()):
        config = dataclasses.replace(base_config, **overrides)
        previous, ndcg, auc, val_auc, seconds = first, [], [], [], 0.0
        for t in range(1, args.days - 1):
            previous, facts = fit(config, t, previous, f"variant-{index}")
            scorer = Scorer.saved_model(previous)
            nxt = Scored.concat([scorer.score(spans[t + 1].files(s)) for s in SPLITS])
            m = metrics.evaluate(nxt.groups, nxt.labels, nxt.scores)
            ndcg.append(m["ndcg@10"])
            auc.append(m["auc"])
            val_auc.append(facts["best_val_auc"])
            seconds += facts["train_seconds"]
            print(f"  {name:<40} through {spans[t].date}: next-span NDCG@10 {m['ndcg@10']:.4f} "
                  f"AUC {m['auc']:.4f}, best val AUC {facts['best_val_auc']:.4f}, {facts['train_seconds']:.0f}s")
        results[name] = {
            "overrides": overrides,
            "mean_next_ndcg@10": round(statistics.mean(ndcg), 5),
            "mean_next_auc": round(statistics.mean(auc), 5),
            "holdout_ndcg@10_after": round(_ndcg(Scorer.saved_model(previous).score(holdout)), 5),
            "mean_best_val_auc": round(statistics.mean(val_auc), 5),
            "train_seconds": round(seconds, 1),
        }
    report = {"settings": vars(args), "first_model_holdout_ndcg@10": round(first_holdout, 5), "variants": results}
    with open(os.path.join(out, "results.json"), "w", encoding="utf-8") as f:
        json.dump(report, f, indent=1)
    print("\n| variant | mean next-span NDCG@10 | mean next-span AUC | holdout NDCG@10 after | "
          "mean best val AUC | train s |")
    print("| --- | ---: | ---: | ---: | ---: | ---: |")
    for name, r in results.items():
        print(f"| {name} | {r['mean_next_ndcg@10']:.4f} | {r['mean_next_auc']:.4f} | "
              f"{r['holdout_ndcg@10_after']:.4f} | {r['mean_best_val_auc']:.4f} | {r['train_seconds']:.0f} |")
    print(f"(first model's holdout NDCG@10 {first_holdout:.4f}; results in {out}/results.json)")


def _ndcg(scored: Scored) -> float:
    return metrics.ndcg_at_k(scored.groups, scored.labels, scored.scores)


if __name__ == "__main__":
    started = time.time()
    main()
    print(f"wall {time.time() - started:.0f}s")
