"""Ranking-quality ablations: each trainer lever on and off, scored counterfactually on the next day.

What `freshrank run` does day by day in an open loop (the legacy ranking logs every day), without
TFX's fixed cost: day 1 trains from scratch, each later day warm-starts from the previous model on
the pipeline's window (the newest span whole, older spans' training splits replayed), with the
Trainer's own `trainer.task.fit`. Each model ranks the *next* day's searches; the market scores
that order exactly (`freshrank.counterfactual`) next to legacy and the best possible order.

    .venv/bin/python benchmarks/ranking_quality.py --seed 0 --drift mild --variant default \\
        --variant position_bias=none --out /tmp/rq

A variant is `name` (one of VARIANTS) or `key=value,...` overrides of TrainConfig fields (and of
the harness' own `window`, `history_days`). Same stream, same seeds for every variant.
"""
from __future__ import annotations

import argparse
import dataclasses
import datetime
import json
import os
import shutil
import sys
import time

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))

os.environ.setdefault("TF_USE_LEGACY_KERAS", "1")
os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

START = datetime.date(2026, 11, 1)
HARNESS_KEYS = ("window", "history_days")
# Named variants: the levers of the ranking-quality issue, each against the defaults.
VARIANTS = {
    "default": {},
    "no_position_tower": {"position_bias": "none"},
    "direct_purchase_head": {"purchase_model": "direct"},
    "legacy_model": {"position_bias": "none", "purchase_model": "direct"},
}


def parse_variant(text: str) -> tuple[str, dict]:
    if text in VARIANTS:
        return text, dict(VARIANTS[text])
    overrides = {}
    for part in _top_level_parts(text):
        key, _, value = part.partition("=")
        if not _:
            raise SystemExit(f"variant {text!r}: expected a name ({', '.join(VARIANTS)}) or key=value,...")
        overrides[key.strip()] = _value(value)
    return text, overrides


def _top_level_parts(text: str) -> list[str]:
    """Splits on commas outside JSON braces, so `bert={"a":1,"b":2},epochs=1` is two parts."""
    parts, depth, start = [], 0, 0
    for i, ch in enumerate(text):
        depth += ch in "{["
        depth -= ch in "}]"
        if ch == "," and depth == 0:
            parts.append(text[start:i])
            start = i + 1
    parts.append(text[start:])
    return parts


def _value(raw: str):
    try:
        return json.loads(raw)
    except json.JSONDecodeError:
        return raw


def run_variant(name: str, overrides: dict, args, stream, work: str, say) -> dict:
    from freshrank import counterfactual
    from freshrank.market import Market
    from trainer import task
    from trainer.config import TrainConfig

    harness = {k: overrides.pop(k) for k in list(overrides) if k in HARNESS_KEYS}
    window = int(harness.get("window", args.window))
    history = int(harness.get("history_days", args.history_days))
    base_config = TrainConfig()
    bert = overrides.pop("bert", None)
    config = dataclasses.replace(base_config, **overrides)
    if bert:
        config = dataclasses.replace(config, bert=dataclasses.replace(config.bert, **bert))
    config.validate()
    start = datetime.date.fromisoformat(args.start)
    market = Market(seed=args.seed, market_start=start, drift=args.drift)
    days, comparisons = [], []
    previous = None
    first = history  # the index of the first day a model is trained through
    for t in range(first, len(stream) - 1):
        members = stream[max(0, t - window + 1): t + 1] if previous is not None else stream[: t + 1]
        train_files = _window_files(members, stream[t], os.path.join(work, name, stream[t].date), config.seed)
        clock = time.time()
        trained = task.fit(config, train_files, stream[t].files("eval"), None,
                           previous.as_base() if previous is not None else None)
        seconds = time.time() - clock
        nxt = start + datetime.timedelta(days=t + 1)
        searches = market.searches(nxt, args.requests_per_day)
        scores = counterfactual.score_searches(searches, trained.score)
        result = counterfactual.compare(market, searches, counterfactual.rank_by_scores(searches, scores))
        comparisons.append(result)
        days.append({"trained_through": stream[t].date, "scored_on": nxt.isoformat(), **result.to_json(),
                     "fit_seconds": round(seconds, 1), "examples_processed": trained.facts["examples_processed"]})
        say(f"  {name:<28} through {stream[t].date}: {result.line()} [{seconds:.0f}s]")
        if previous is not None:
            shutil.rmtree(previous.vocab_dir, ignore_errors=True)
        previous = trained
    return {"variant": name, "overrides": {**overrides, **harness}, **counterfactual.mean_comparison(comparisons),
            "per_day": days}


def _window_files(members, newest, where: str, seed: int) -> list[str]:
    from tfx_pipeline.components.span_window import TRAIN, copy_split

    train_dir = os.path.join(where, "window", f"Split-{TRAIN}")
    shutil.rmtree(train_dir, ignore_errors=True)
    os.makedirs(train_dir, exist_ok=True)
    for member in members:
        copy_split(member.member(), TRAIN, train_dir, 1.0, seed)
    return [os.path.join(train_dir, "*")]


def markdown(out: dict) -> str:
    """One row per variant: means over the scored days, each day's gap share and interval."""
    lines = [f"seed {out['seed']}, {out['drift']} drift, {out['requests_per_day']} searches/day, window {out['window']}",
             "", "| variant | expected/100 | legacy | best | mean gap share | days above legacy (CI > 0) | "
             "per day: gap share [95% CI of model - legacy] |", "| --- | ---: | ---: | ---: | ---: | ---: | --- |"]
    for r in out["results"]:
        days = "; ".join(f"{100 * d['gap_share']:.0f}% [{d['diff_ci'][0]:+.1f}, {d['diff_ci'][1]:+.1f}]"
                         for d in r["per_day"])
        lines.append(f"| {r['variant']} | {r['mean_model_per_100']:.2f} | {r['mean_legacy_per_100']:.2f} | "
                     f"{r['mean_oracle_per_100']:.2f} | {100 * r['mean_gap_share']:.1f}% | "
                     f"{r['days_above_legacy']}/{r['days']} | {days} |")
    return "\n".join(lines) + "\n"


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--drift", default="mild", choices=("mild", "strong"))
    parser.add_argument("--start", default=START.isoformat(), help="first day (the market starts then)")
    parser.add_argument("--days", type=int, default=5, help="days of scored models + 1")
    parser.add_argument("--requests-per-day", type=int, default=1000)
    parser.add_argument("--window", type=int, default=7)
    parser.add_argument("--history-days", type=int, default=0,
                        help="legacy-ranked days before the first model, trained on by it")
    parser.add_argument("--variant", action="append", default=None)
    parser.add_argument("--out", required=True)
    args = parser.parse_args(argv)
    from freshrank.bench.stream import write_stream

    variants = [parse_variant(v) for v in (args.variant or ["default"])]
    history_max = max([int(o.get("history_days", args.history_days)) for _, o in variants])
    os.makedirs(args.out, exist_ok=True)
    started = time.time()
    stream = write_stream(os.path.join(args.out, "stream"), datetime.date.fromisoformat(args.start),
                          args.days + history_max,
                          args.requests_per_day, args.seed, args.drift)
    say = lambda line: print(line, flush=True)  # noqa: E731
    results = []
    for name, overrides in variants:
        results.append(run_variant(name, overrides, args, stream, os.path.join(args.out, "models"), say))
        r = results[-1]
        say(f"{name}: mean {r['mean_model_per_100']:.2f} vs legacy {r['mean_legacy_per_100']:.2f}, "
            f"oracle {r['mean_oracle_per_100']:.2f}; mean gap share {100 * r['mean_gap_share']:.1f}%, "
            f"{r['days_above_legacy']}/{r['days']} days above legacy (CI excludes 0)")
    out = {"seed": args.seed, "drift": args.drift, "start": args.start, "requests_per_day": args.requests_per_day,
           "window": args.window, "results": results, "wall_seconds": round(time.time() - started, 1)}
    with open(os.path.join(args.out, "ranking_quality.json"), "w") as f:
        json.dump(out, f, indent=1)
    with open(os.path.join(args.out, "ranking_quality.md"), "w") as f:
        f.write(markdown(out))
    print(markdown(out))
    print(f"wall {out['wall_seconds']:.0f}s; {os.path.join(args.out, 'ranking_quality.json')}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
