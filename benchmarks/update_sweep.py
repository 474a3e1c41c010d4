"""Which incremental update pays? A sweep of update levers against full retraining, per stream.

Every variant is a bench strategy (freshrank/bench/strategies.Strategy) warm-started from its own
previous model, run by the bench's own loop (`run_bench`) beside full retraining on the same
stream, so each figure is the counterfactual one: expected purchases per 100 searches of the next
span, the gap share, the paired difference from full retraining on the same searches with its
95% bootstrap interval, and the compute (`train_flops`) as a share of full retraining's.

    .venv/bin/python benchmarks/update_sweep.py --out /tmp/sweep --stream 0:mild --stream 11:strong

Each stream is a separate process (`--jobs`, default 2: tracing is single-threaded, so two
streams on two cores finish sooner than one after the other). Results: `<out>/<seed>-<drift>/
bench.json` per stream and `<out>/sweep.md`, the table.
"""
from __future__ import annotations

import argparse
import concurrent.futures
import functools
import json
import os
import sys
from collections.abc import Callable

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
os.environ.setdefault("TF_USE_LEGACY_KERAS", "1")
os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

# name -> (replay_fraction, TrainConfig overrides[, other Strategy fields]). The first block changed
# one or two levers against one pass on the newest span at 1e-3 (the default before the sweep);
# the second against the default after it (two passes at 3e-3, no replay). Every variant runs on
# the current TrainConfig defaults for what it does not set: since round 6 that includes per-row
# rates for id tables (row_evidence_decay 0.5), which the rounds before ran without.
VARIANTS: dict[str, tuple] = {
    "warm_1pass": (0.0, {"warm_start_learning_rate": 1e-3, "warm_start_epochs": 1}),
    "warm_2pass": (0.0, {"warm_start_learning_rate": 1e-3, "warm_start_epochs": 2}),
    "warm_lr3e-3": (0.0, {"warm_start_epochs": 1}),
    "warm_constant": (0.0, {"warm_start_learning_rate": 1e-3, "warm_start_epochs": 1,
                            "warm_start_schedule": "constant"}),
    "warm_anchor": (0.0, {"warm_start_learning_rate": 1e-3, "warm_start_epochs": 1, "anchor_weight": 1e-3}),
    "replay0.5": (0.5, {"warm_start_learning_rate": 1e-3, "warm_start_epochs": 1}),
    "replay1.0": (1.0, {"warm_start_learning_rate": 1e-3, "warm_start_epochs": 1}),
    # The default before round 6 (per-row rates off), the control of every sweep since.
    "warm_2pass_lr3e-3": (0.0, {"warm_start_epochs": 2, "row_evidence_decay": None}),
    "replay0.3_2pass": (0.3, {"warm_start_learning_rate": 1e-3, "warm_start_epochs": 2}),
    # Against the two-pass default, replay sampling whole pages, a new sample per update:
    "replay0.5_1pass_lr3e-3": (0.5, {"warm_start_epochs": 1}),
    "replay0.5_1pass_lr3e-3_fixed": (0.5, {"warm_start_epochs": 1}, {"fixed_replay_sample": True}),
    "replay1.0_1pass_lr3e-3": (1.0, {"warm_start_epochs": 1}),
    "replay0.25_1pass_lr3e-3": (0.25, {"warm_start_epochs": 1}),
    "average0.5_2pass_lr3e-3": (0.0, {"warm_start_epochs": 2, "base_weight_share": 0.5}),
    "average0.5_selected_2pass_lr3e-3": (0.0, {"warm_start_epochs": 2, "base_weight_share": 0.5,
                                               "base_weight_select": True}),
    "partial_replay0.3_2pass_lr3e-3": (0.3, {"warm_start_epochs": 2, "update_mode": "partial"}),
    # Shrink and perturb before the two-pass default (Ash & Adams 2020): plasticity of a warm start.
    "shrink0.3_perturb0.1_2pass": (0.0, {"warm_start_epochs": 2, "warm_start_shrink": 0.3, "warm_start_perturb": 0.1}),
    "shrink0.5_perturb0.1_2pass": (0.0, {"warm_start_epochs": 2, "warm_start_shrink": 0.5, "warm_start_perturb": 0.1}),
    "shrink0.8_perturb0.1_2pass": (0.0, {"warm_start_epochs": 2, "warm_start_shrink": 0.8, "warm_start_perturb": 0.1}),
    # The encoder's own rate in a warm update (encoder_learning_rate; the rest at 3e-3): slower
    # shared text weights, the id rows and heads as fast as before.
    "encoder_rate3e-4_2pass": (0.0, {"warm_start_epochs": 2, "encoder_learning_rate": 3e-4}),
    "encoder_rate1e-3_2pass": (0.0, {"warm_start_epochs": 2, "encoder_learning_rate": 1e-3}),
    "shrink0.5_perturb0.1_replay0.3_2pass": (0.3, {"warm_start_epochs": 2, "warm_start_shrink": 0.5,
                                                   "warm_start_perturb": 0.1}),
    # Per-row rates for the id tables from the evidence each row has seen (trainer/row_evidence.py):
    # old evidence kept whole (a stationary market) or halved per update.
    "rowrate_decay1.0_2pass": (0.0, {"warm_start_epochs": 2, "row_evidence_decay": 1.0}),
    "rowrate_decay0.5_2pass": (0.0, {"warm_start_epochs": 2, "row_evidence_decay": 0.5}),
    # The same evidence rule for every other weight (encoder, heads, dense, position tower): all of
    # it learns from every impression, so it moves by this window's share of all the evidence.
    "rowrate0.5_shared_2pass": (0.0, {"warm_start_epochs": 2, "row_evidence_decay": 0.5,
                                      "shared_evidence_rate": True}),
    # Per-row rates with a tenth of the older spans replayed (0.24 of full retraining's compute).
    "rowrate0.5_replay0.1_2pass": (0.1, {"warm_start_epochs": 2, "row_evidence_decay": 0.5}),
    # The peak rate again, now that per-row rates slow every row with evidence (3e-3 was chosen
    # when every row moved at the full rate).
    "rowrate0.5_lr2e-3_2pass": (0.0, {"warm_start_epochs": 2, "warm_start_learning_rate": 2e-3}),
    "rowrate0.5_lr5e-3_2pass": (0.0, {"warm_start_epochs": 2, "warm_start_learning_rate": 5e-3}),
    # The previous span's held-out pages (eval and test: no model has trained on them, and its
    # blessing is done) train too (reuse_holdout, the default since round 8), and the control
    # without them (the default of rounds 6 and 7); and full retraining without the older spans'
    # held-out pages (the bench's full_retrain before round 8).
    "rowrate0.5_holdout_2pass": (0.0, {"warm_start_epochs": 2, "reuse_holdout": True}),
    "rowrate0.5_no_holdout_2pass": (0.0, {"warm_start_epochs": 2, "reuse_holdout": False}),
    "full_retrain_no_holdout": (1.0, {"reuse_holdout": False}, {"warm": False}),
    # The product's update, served only when blessed, blessed on the new span's test pages or on its
    # eval and test pages together (round 9, `--bless-pages`).
    "default_bless_test": (0.0, {}, {"defaults": True, "follows_blessing": True, "bless_pages": "test"}),
    "default_bless_held_out": (0.0, {}, {"defaults": True, "follows_blessing": True, "bless_pages": "held-out"}),
    # A diagnostic, not a candidate: full retraining's data and passes (whole window, 3 epochs)
    # from the previous model instead of from scratch. Matching full retraining says the chain's
    # gap is the data it sees; falling short says warm-starting itself costs.
    "replay1.0_3pass": (1.0, {"warm_start_epochs": 3}),
}


def run_stream(out: str, seed: int, drift: str, days: int, requests_per_day: int, names: list[str],
               full_retrain: bool = True, control: str | None = None) -> dict:
    from freshrank.bench.strategies import Strategy

    extra = [Strategy(name, replay_fraction=VARIANTS[name][0], overrides=VARIANTS[name][1],
                      **(VARIANTS[name][2] if len(VARIANTS[name]) > 2 else {})) for name in names]
    return bench_stream(out, seed, drift, days, requests_per_day, ("full_retrain",) if full_retrain else (), extra,
                        control)


def bench_stream(out: str, seed: int, drift: str, days: int, requests_per_day: int, only: tuple[str, ...],
                 extra: list, control: str | None = None) -> dict:
    """The bench's loop on one stream with the standard strategies `only` (static always) and `extra`;
    progress in `out/SEED-DRIFT/progress.log`, results in its bench.json."""
    from freshrank.bench.runner import BenchSettings, run_bench

    where = os.path.join(out, f"{seed}-{drift}")
    os.makedirs(where, exist_ok=True)
    settings = BenchSettings(days=days, requests_per_day=requests_per_day, seed=seed, drift=drift, only=only)
    with open(os.path.join(where, "progress.log"), "w", buffering=1) as log:
        results = run_bench(where, settings, say=lambda line: print(line, file=log), extra=extra, pair_with=control)
    with open(os.path.join(where, "bench.json"), "w") as f:
        json.dump(results, f, indent=1, default=str)
    return results


def table(results: dict[str, dict], control: str | None = None) -> str:
    run = {name for res in results.values() for name in res["strategies"]}
    pairs = [p for p in ("full_retrain", control) if p in run]
    lines = ["| stream | strategy | exp. purchases/100 | gap share | "
             + " | ".join(f"minus {p} [95% CI]" for p in pairs) + " | compute vs full | forgetting |",
             "|---|---|---|---|" + "---|" * len(pairs) + "---|---|"]
    for stream, res in results.items():
        for name, row in res["strategies"].items():
            cells = []
            for p in pairs:
                d = row.get(f"minus_{p}", {})
                ci = d.get("diff_ci", [float("nan")] * 2)
                cells.append(f"{d.get('diff_per_100', float('nan')):+.2f} [{ci[0]:+.2f}, {ci[1]:+.2f}]")
            lines.append(f"| {stream} | {name} | {row['mean_expected_purchases_per_100']:.2f} "
                         f"| {100 * row['mean_gap_share']:.1f}% | " + " | ".join(cells)
                         + f" | {row['flops_vs_full_retrain']:.2f} | {100 * row['forgetting']:+.1f} pts |")
    return "\n".join(lines)


def parse_streams(specs: list[str]) -> list[tuple[int, str]]:
    return [(int(spec.split(":")[0]), spec.split(":")[1]) for spec in specs]


def run_streams(out: str, streams: list[tuple[int, str]], jobs: int, run_one: Callable[[int, str], dict],
                report_name: str, control: str | None = None) -> dict[str, dict]:
    """`run_one(seed, drift)` for every stream in `jobs` processes; the table is written to
    `out/report_name` and printed."""
    with concurrent.futures.ProcessPoolExecutor(jobs) as pool:
        futures = {f"seed {seed} {drift}": pool.submit(run_one, seed, drift) for seed, drift in streams}
        results = {stream: future.result() for stream, future in futures.items()}
    text = (f"`{' '.join(sys.argv)}`\n\n{table(results, control)}\n\n"
            + "\n".join(f"{k}: {v['wall_seconds']:.0f} s" for k, v in results.items()) + "\n")
    with open(os.path.join(out, report_name), "w") as f:
        f.write(text)
    print(text)
    return results


def stream_parser(description: str) -> argparse.ArgumentParser:
    """The options every per-stream benchmark here takes: where, which streams, their size, processes."""
    parser = argparse.ArgumentParser(description=description)
    parser.add_argument("--out", required=True)
    parser.add_argument("--stream", action="append", required=True, help="SEED:DRIFT, repeatable")
    parser.add_argument("--days", type=int, default=6)
    parser.add_argument("--requests-per-day", type=int, default=1000)
    parser.add_argument("--jobs", type=int, default=2)
    return parser


def main() -> None:
    parser = stream_parser(__doc__.splitlines()[0])
    parser.add_argument("--variant", action="append", choices=sorted(VARIANTS), help="default: all")
    parser.add_argument("--no-full-retrain", action="store_true",
                        help="skip the full-retraining reference (compare with another run's)")
    parser.add_argument("--control", choices=sorted(VARIANTS),
                        help="a variant every strategy is also compared with on the same searches (paired)")
    args = parser.parse_args()
    names = args.variant or list(VARIANTS)
    if args.control and args.control not in names:
        parser.error(f"--control {args.control} must also be one of the --variant runs")
    run_one = functools.partial(run_stream, args.out, days=args.days, requests_per_day=args.requests_per_day,
                                names=names, full_retrain=not args.no_full_retrain, control=args.control)
    run_streams(args.out, parse_streams(args.stream), args.jobs, run_one, "sweep.md", args.control)


if __name__ == "__main__":
    main()
