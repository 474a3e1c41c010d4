"""The open loop with defaults, as a shop would run it, scored counterfactually day by day.

`freshrank simulate` writes DAYS spans of legacy-ranked logs; `freshrank run --span D` runs the
pipeline on each day in turn with its defaults (TFX: ExampleGen, the data gate, the warm-started
Trainer, the Evaluator's blessing, the Pusher). After each run, the version serving (the newest
pushed one) ranks the *next* day's searches, and the market scores that order exactly against
the legacy order and the best possible one (`freshrank.counterfactual`).

    .venv/bin/python benchmarks/open_loop.py --seed 0 --drift mild --out /tmp/open_loop
"""
from __future__ import annotations

import argparse
import datetime
import json
import os
import subprocess
import sys
import time

REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
sys.path.insert(0, REPO)
os.environ.setdefault("TF_USE_LEGACY_KERAS", "1")
os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")


def freshrank(*args: str) -> subprocess.CompletedProcess:
    command = [sys.executable, "-m", "freshrank.cli", *args]
    env = dict(os.environ, PYTHONPATH=REPO, PYTHONWARNINGS="ignore")
    return subprocess.run(command, capture_output=True, text=True, env=env, cwd=REPO)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--drift", default="mild", choices=("mild", "strong"))
    parser.add_argument("--start", default="2026-11-01")
    parser.add_argument("--days", type=int, default=5)
    parser.add_argument("--requests-per-day", type=int, default=1000)
    parser.add_argument("--out", required=True)
    parser.add_argument("--run-arg", action="append", default=[], help="extra `freshrank run` flag (repeatable)")
    args = parser.parse_args(argv)
    from freshrank import counterfactual
    from freshrank.market import Market
    from serving.versions import finished_versions
    from tfx_pipeline.home import Home

    start = datetime.date.fromisoformat(args.start)
    data, home = os.path.join(args.out, "data"), os.path.join(args.out, "home")
    os.makedirs(args.out, exist_ok=True)
    done = freshrank("simulate", "--out", data, "--start", args.start, "--days", str(args.days),
                     "--requests-per-day", str(args.requests_per_day), "--seed", str(args.seed),
                     "--drift", args.drift, "--overwrite")
    if done.returncode:
        print(done.stderr, file=sys.stderr)
        return done.returncode
    market = Market(seed=args.seed, market_start=start, drift=args.drift)
    days = []
    for offset in range(args.days - 1):
        day, nxt = start + datetime.timedelta(days=offset), start + datetime.timedelta(days=offset + 1)
        clock = time.time()
        done = freshrank("run", "--data", data, "--home", home, "--span", day.isoformat(), *args.run_arg)
        seconds = time.time() - clock
        if done.returncode not in (0,):
            print(done.stdout[-2000:], done.stderr[-4000:], file=sys.stderr)
            return done.returncode
        record = json.loads(done.stdout.strip().splitlines()[-1])
        versions = finished_versions(Home(home).serving_dir("ranker"))
        serving = max(versions) if versions else None
        entry = {"trained_through": day.isoformat(), "scored_on": nxt.isoformat(), "status": record["status"],
                 "blessed": record["blessed"], "serving_version": serving, "run_seconds": round(seconds, 1),
                 "logged_metrics": record.get("metrics")}
        if serving is not None:
            searches = market.searches(nxt, args.requests_per_day)
            scorer = counterfactual.saved_model_scorer(versions[serving])
            scores = counterfactual.score_searches(searches, scorer)
            result = counterfactual.compare(market, searches, counterfactual.rank_by_scores(searches, scores))
            entry.update(result.to_json())
            print(f"{day}: {record['status']:<12} serving {serving}: {result.line()} [run {seconds:.0f}s]", flush=True)
        days.append(entry)
    scored = [d for d in days if "gap_share" in d]
    summary = {"seed": args.seed, "drift": args.drift, "start": args.start,
               "requests_per_day": args.requests_per_day, "days": days,
               "mean_gap_share": sum(d["gap_share"] for d in scored) / len(scored) if scored else None,
               "days_above_legacy": sum(d["beats_legacy"] for d in scored), "scored_days": len(scored)}
    with open(os.path.join(args.out, "open_loop.json"), "w") as f:
        json.dump(summary, f, indent=1)
    print(f"mean gap share {100 * summary['mean_gap_share']:.1f}% over {len(scored)} days; "
          f"{summary['days_above_legacy']}/{len(scored)} above legacy with the 95% interval excluding zero")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
