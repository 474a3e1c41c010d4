"""Freshness benchmark: how long from a span landing to its version being pushed (and AVAILABLE).

What it does (numbers are printed, nothing is asserted):
  1. `freshrank simulate` writes 1 + RUNS daily spans of REQUESTS searches each;
  2. `freshrank run` on the first span trains the first model (from scratch; not timed as freshness);
  3. a `freshrank-model-server` is started on the home's serving directory (unless --no-server);
  4. each following span is run with `freshrank run` and the defaults (so warm-started from the
     previous push), exactly as `freshrank watch` would launch it, and timed:
       * wall time of the process and the CPU time (user+sys) of its process tree;
       * per pipeline component, from the ML Metadata executions the run registered (each node's
         execution is created when its launcher starts and updated when it is published):
         ExampleGen, ImportSchemaGen, StatisticsGen, ExampleValidator, SpanWindow, the
         latest-blessed-model resolver, Trainer (split into fitting, from the model's facts, and
         the rest: SavedModel export, warmup requests, TFX's output handling), Evaluator, Pusher;
       * "start-up": process start, imports, quarantine gate and TFX's compile/launcher set-up
         before the first component; "gaps": the launcher's time between components; "tail":
         after the last component (run summary, exit);
       * "landing to AVAILABLE": from the moment the run was launched to the model server
         reporting the pushed version AVAILABLE through gRPC GetModelStatus (the server polls
         the directory every second, as the demo's does).

With --compare DIR the same is done, alternating run by run, for a second checkout of the
project (e.g. `git archive <commit> | tar -x -C DIR`), each on its own home and the same data:
on a shared machine only side-by-side figures and CPU time mean anything.

Usage: .venv/bin/python benchmarks/freshness.py [--runs 2] [--requests-per-day 1000] [--work DIR]
       [--compare DIR] [--no-server] [--json out.json] [-- extra `freshrank run` flags]
"""
from __future__ import annotations

import argparse
import json
import os
import resource
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

os.environ.setdefault("TF_USE_LEGACY_KERAS", "1")
os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from tfx_pipeline.lineage import Lineage, read_model_facts  # noqa: E402

START = "2026-11-01"
# Display order; anything else the run registered is printed after these.
COMPONENTS = ("ExampleGen", "ImportSchemaGen", "StatisticsGen", "ExampleValidator", "SpanWindow",
              "latest_blessed_model", "Trainer", "Evaluator", "Pusher")
NODE_NAMES = {"CsvExampleGen": "ExampleGen"}


def _cli(checkout: Path, *args: str) -> list[str]:
    return [sys.executable, "-m", "freshrank.cli", *args]


def _env(checkout: Path) -> dict:
    return dict(os.environ, PYTHONPATH=str(checkout), TF_USE_LEGACY_KERAS="1", TF_CPP_MIN_LOG_LEVEL="2")


def _children_cpu() -> float:
    usage = resource.getrusage(resource.RUSAGE_CHILDREN)
    return usage.ru_utime + usage.ru_stime


def run_span(checkout: Path, data: Path, home: Path, span: str, extra: list[str], log: Path) -> dict:
    """One `freshrank run`; returns its record plus wall, CPU and per-component seconds."""
    cpu0, launched = _children_cpu(), time.time()
    with open(log, "ab") as err:
        done = subprocess.run(_cli(checkout, "run", "--data", str(data), "--home", str(home), "--span", span, *extra),
                              cwd=checkout, env=_env(checkout), stdout=subprocess.PIPE, stderr=err, check=False)
    ended = time.time()
    if done.returncode != 0:
        raise SystemExit(f"freshrank run --span {span} failed ({done.returncode}); see {log}")
    record = json.loads(done.stdout.decode().strip().splitlines()[-1])
    return {"record": record, "launched": launched, "wall_s": ended - launched, "cpu_s": _children_cpu() - cpu0,
            "components": components(home, launched, ended, record)}


def components(home: Path, launched: float, ended: float, record: dict) -> dict[str, float]:
    """Seconds per pipeline node of the home's latest run (ML Metadata timestamps), plus overheads."""
    lineage = Lineage.open(str(home / "metadata.sqlite"))
    nodes = lineage.run_nodes(lineage.latest_run_id())
    spans = []
    for node, found in nodes.items():
        execution = found.execution
        spans.append((NODE_NAMES.get(node, node), execution.create_time_since_epoch / 1000,
                      execution.last_update_time_since_epoch / 1000))
    spans.sort(key=lambda s: s[1])
    seconds = {name: end - start for name, start, end in spans}
    facts = read_model_facts(record["model_uri"]) if record.get("model_uri") else {}
    if "Trainer" in seconds and facts.get("total_seconds") is not None:
        seconds["  Trainer: load base + fit"] = float(facts["total_seconds"])
        seconds["  Trainer: export + rest"] = seconds["Trainer"] - float(facts["total_seconds"])
    seconds["start-up (process, imports, gate, TFX set-up)"] = spans[0][1] - launched if spans else ended - launched
    seconds["gaps between components"] = sum(max(0.0, b[1] - a[2]) for a, b in zip(spans, spans[1:], strict=False))
    seconds["tail (summary, exit)"] = ended - spans[-1][2] if spans else 0.0
    return seconds


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--runs", type=int, default=2, help="timed warm-started runs per checkout")
    parser.add_argument("--requests-per-day", type=int, default=1000)
    parser.add_argument("--work", help="working directory (default: a temporary one, removed)")
    parser.add_argument("--compare", help="a second checkout to time alternately (e.g. the baseline)")
    parser.add_argument("--no-server", action="store_true", help="skip the model server (no landing to AVAILABLE)")
    parser.add_argument("--json", help="write every measurement here")
    parser.add_argument("extra", nargs="*", help="extra `freshrank run` flags (after --)")
    args = parser.parse_args()

    work = Path(args.work or tempfile.mkdtemp(prefix="freshness-"))
    work.mkdir(parents=True, exist_ok=True)
    data = work / "data"
    checkouts = {"this": ROOT}
    if args.compare:
        checkouts["compare"] = Path(args.compare).resolve()
    if not data.exists():
        subprocess.run(_cli(ROOT, "simulate", "--out", str(data), "--start", START, "--days", str(args.runs + 1),
                            "--requests-per-day", str(args.requests_per_day)),
                       cwd=ROOT, env=_env(ROOT), check=True, stdout=subprocess.DEVNULL)
    spans = sorted(p.name for p in data.iterdir() if (p / "_SUCCESS").exists())[: args.runs + 1]
    log = work / "runs.log"
    print(f"work dir {work}; spans {spans}; run logs in {log}", flush=True)

    servers, results = {}, {name: [] for name in checkouts}
    try:
        for name, checkout in checkouts.items():
            home = work / f"home-{name}"
            shutil.rmtree(home, ignore_errors=True)
            first = run_span(checkout, data, home, spans[0], args.extra, log)
            print(f"[{name}] first model: {first['record']['status']} in {first['wall_s']:.1f} s "
                  f"(cpu {first['cpu_s']:.1f} s)", flush=True)
            if not args.no_server and first["record"].get("pushed_version"):
                from freshrank.served_model import ModelServerProcess

                server = ModelServerProcess(str(home / "serving" / "ranker"), str(work / f"server-{name}.log"))
                server.start()
                servers[name] = server
                server.wait_available(first["record"]["pushed_version"], timeout_s=300)
        for span in spans[1:]:
            for name, checkout in checkouts.items():  # alternating: the same load for both
                result = run_span(checkout, data, work / f"home-{name}", span, args.extra, log)
                version = result["record"].get("pushed_version")
                if name in servers and version:
                    result["available_s"] = servers[name].wait_available(version, timeout_s=300) - result["launched"]
                results[name].append(result)
                print(f"[{name}] {span}: {result['record']['status']} "
                      f"(warm start from {result['record'].get('warm_started_from')}) "
                      f"wall {result['wall_s']:.1f} s, cpu {result['cpu_s']:.1f} s"
                      + (f", landing to AVAILABLE {result['available_s']:.1f} s" if "available_s" in result else ""),
                      flush=True)
    finally:
        for server in servers.values():
            server.stop()

    print_table(results)
    if args.json:
        Path(args.json).write_text(json.dumps(results, indent=1, default=str))
    if not args.work:
        shutil.rmtree(work, ignore_errors=True)


def print_table(results: dict[str, list[dict]]) -> None:
    """Median seconds per component over the timed runs, one column per checkout."""
    names = list(results)
    rows: list[str] = []
    for runs in results.values():
        for result in runs:
            for key in result["components"]:
                if key not in rows:
                    rows.append(key)
    order = [c for c in COMPONENTS if c in rows]
    order += [r for r in rows if r not in order and not r.startswith("  ") and r[0].isupper()]
    for i, row in enumerate(list(order)):
        if row == "Trainer":
            order[i + 1:i + 1] = [r for r in rows if r.startswith("  Trainer")]
    order += [r for r in rows if r not in order]

    def median(name, pick):
        values = [pick(r) for r in results[name] if pick(r) is not None]
        return f"{statistics.median(values):8.1f}" if values else "       -"

    width = max(len(r) for r in [*order, "landing to AVAILABLE"]) + 2
    print("\nmedian seconds over the warm-started runs" + (" (alternating)" if len(names) > 1 else ""))
    print(" " * width + "".join(f"{n:>10}" for n in names))
    for row in order:
        print(f"{row:<{width}}" + "".join(f"{median(n, lambda r, row=row: r['components'].get(row)):>10}" for n in names))
    for label, pick in (("total wall", lambda r: r["wall_s"]), ("CPU user+sys (process tree)", lambda r: r["cpu_s"]),
                        ("landing to AVAILABLE", lambda r: r.get("available_s"))):
        print(f"{label:<{width}}" + "".join(f"{median(n, pick):>10}" for n in names))


if __name__ == "__main__":
    main()
