"""What TensorFlow's session threads cost the ranker in-process: one table, one run.

For each setting of (intra-op threads, inter-op threads, spinning) -- the model server's
--tensorflow_intra_op_parallelism, --tensorflow_inter_op_parallelism and
--tensorflow_disable_thread_spinning -- it loads the benchmark ranker the way the server does
(serving.servable.Servable) and prints p50 latency of one pair, 32 pairs and 50 candidates, the
pairs per second that 32 threads calling unbatched reach, and process CPU per pair meanwhile.
Each setting runs in its own process, because TensorFlow's thread pools outlive a session.

Usage: .venv/bin/python benchmarks/serving_threads.py [--model default|bert-mini] [--seconds 3]
docs/serving-performance.md explains what the numbers mean for serving.
"""
from __future__ import annotations

import argparse
import json
import os
import shutil
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path

os.environ.setdefault("TF_USE_LEGACY_KERAS", "1")
os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
sys.path.insert(0, str(Path(__file__).resolve().parent))

# (intra-op, inter-op, spinning disabled): TF's default, freshrank's default, and the inline ones.
SETTINGS = [(0, 0, False), (0, 0, True), (0, -1, True), (1, -1, True), (2, -1, True), (1, 1, True)]


def measure(model_dir: str, intra: int, inter: int, no_spin: bool, seconds: float) -> dict:
    """Runs in a child process: one setting, every figure."""
    import serving_bench as bench

    from serving import client
    from serving.servable import LoadOptions, Servable

    servable = Servable.load("ranker", 1, model_dir, LoadOptions(
        enable_warmup=False, intra_op_threads=intra, inter_op_threads=inter,
        disable_thread_spinning=no_spin))
    signature = servable.signature("serving_default")

    def feed(count: int):
        request = client.build_predict_request(bench.market_query(0),
                                               bench.make_candidates(count, seed=2), "ranker")
        return bench.session_call(signature, request)

    def p50_ms(args, calls: int) -> float:
        return bench.median_seconds(lambda: servable.run_direct(*args), calls) * 1e3

    pair, batch32, rank50 = feed(1), feed(32), feed(50)
    out = {"pair_ms": p50_ms(pair, 200), "batch32_ms": p50_ms(batch32, 60),
           "rank50_ms": p50_ms(rank50, 60)}
    done = [0] * 32
    stop = time.perf_counter() + seconds

    def caller(index: int) -> None:
        while time.perf_counter() < stop:
            servable.run_direct(*pair)
            done[index] += 1

    cpu = time.process_time()
    threads = [threading.Thread(target=caller, args=(i,)) for i in range(32)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    cpu = time.process_time() - cpu
    out["threads32_per_s"] = sum(done) / seconds
    out["cpu_ms_per_pair"] = cpu / sum(done) * 1e3
    return out


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--model", default="default", help="default or bert-mini")
    parser.add_argument("--seconds", type=float, default=3.0)
    parser.add_argument("--child", nargs=5, default=None, help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.child:
        model_dir, intra, inter, no_spin, seconds = args.child
        print(json.dumps(measure(model_dir, int(intra), int(inter), no_spin == "1",
                                 float(seconds))))
        return 0

    import serving_bench as bench

    if args.model not in bench.MODEL_SHAPES:
        parser.error(f"--model must be one of {', '.join(bench.MODEL_SHAPES)}")
    workdir = tempfile.mkdtemp(prefix="serving_threads_")
    try:
        return _table(args, bench, Path(workdir) / "ranker" / "1")
    finally:
        shutil.rmtree(workdir, ignore_errors=True)


def _table(args: argparse.Namespace, bench, model_dir: Path) -> int:
    subprocess.run([sys.executable, bench.__file__, "--build-only", args.model, str(model_dir)],
                   check=True)
    print(f"ranker '{args.model}', {os.cpu_count()} CPUs, load average "
          f"{os.getloadavg()[0]:.2f}; p50 of in-process session calls")
    print("| intra / inter / spinning | one pair | 32 pairs | 50 candidates "
          "| 32 threads, pairs/s | CPU per pair |")
    print("| --- | --- | --- | --- | --- | --- |")
    for intra, inter, no_spin in SETTINGS:
        child = subprocess.run(
            [sys.executable, __file__, "--child", str(model_dir), str(intra), str(inter),
             "1" if no_spin else "0", str(args.seconds)],
            check=True, capture_output=True, text=True)
        r = json.loads(child.stdout.strip().splitlines()[-1])
        print(f"| {intra} / {inter} / {'off' if no_spin else 'on'} | {r['pair_ms']:.2f} ms "
              f"| {r['batch32_ms']:.2f} ms | {r['rank50_ms']:.2f} ms "
              f"| {r['threads32_per_s']:.0f} | {r['cpu_ms_per_pair']:.2f} ms |", flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
