"""How long a version's load holds Python's interpreter lock, and where: the cause of swap p99.

A model server written in Python loads a new version in a background thread while request
threads keep answering. Thread priority and Python's switch interval decide who runs between
bytecodes, but not inside one C call: a TensorFlow call that holds the lock for 30 ms stalls every
request for 30 ms. This probe loads SavedModels the way `serving.servable.Servable` does, while a
thread that wakes every 0.2 ms records each wake-up that came more than `--stall-ms` late and the
loader's Python frame at that moment (the call it had just returned from).

Usage: .venv/bin/python benchmarks/load_gil_probe.py SAVED_MODEL_DIR [--loads 3] [--cpu 1]
(`serving_bench.py --workdir DIR` keeps its model in DIR/default/ranker/1.)
"""
from __future__ import annotations

import argparse
import os
import sys
import threading
import time
import traceback

from freshrank.env import import_tensorflow


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("saved_model", help="a SavedModel directory (a version folder)")
    parser.add_argument("--loads", type=int, default=3)
    parser.add_argument("--cpu", type=int, default=1, help="pin to this CPU, as the benchmark's server")
    parser.add_argument("--stall-ms", type=float, default=4.0)
    parser.add_argument("--switch-interval-ms", type=float, default=0.5, help="the server's value during a load")
    parser.add_argument("--python-loader", action="store_true",
                        help="TensorFlow's Python loader and session (the server's --load_with_c_api=false)")
    args = parser.parse_args()
    if not os.path.exists(os.path.join(args.saved_model, "saved_model.pb")):
        print(f"error: {args.saved_model} holds no saved_model.pb; pass a version folder", file=sys.stderr)
        return 2
    os.sched_setaffinity(0, {args.cpu})
    import_tensorflow()
    from serving.servable import LoadOptions, Servable

    options = LoadOptions(intra_op_threads=1, inter_op_threads=1, use_c_api=not args.python_loader)
    Servable.load("probe", 1, args.saved_model, options).close()  # first load warms caches
    sys.setswitchinterval(args.switch_interval_ms / 1000.0)
    stalls: list[tuple[float, str]] = []
    done = threading.Event()
    loader: dict[str, int] = {}

    def probe() -> None:
        last = time.perf_counter()
        while not done.is_set():
            time.sleep(0.0002)
            now = time.perf_counter()
            if now - last > args.stall_ms / 1000.0:
                frame = sys._current_frames().get(loader.get("id", -1))
                where = traceback.extract_stack(frame)[-1] if frame is not None else None
                place = f"{where.filename.split('site-packages/')[-1]}:{where.lineno} {where.name}" if where else "?"
                stalls.append(((now - last) * 1000.0, place))
            last = now

    def load() -> None:
        loader["id"] = threading.get_ident()
        for version in range(args.loads):
            Servable.load("probe", version + 2, args.saved_model, options).close()

    watcher = threading.Thread(target=probe)
    watcher.start()
    began = time.perf_counter()
    worker = threading.Thread(target=load)
    worker.start()
    worker.join()
    done.set()
    watcher.join()
    seconds = time.perf_counter() - began
    print(f"{args.loads} loads in {seconds:.2f} s; {len(stalls)} stalls over {args.stall_ms:g} ms, "
          f"{sum(s for s, _ in stalls):.0f} ms in all; the longest, with the loader's frame after it:")
    for gap, place in sorted(stalls, reverse=True)[:12]:
        print(f"  {gap:6.1f} ms  {place}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
