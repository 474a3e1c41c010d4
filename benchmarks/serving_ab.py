"""A/B benchmark of the model server's own work: this checkout's server against another commit's.

serving_bench.py splits a request's gRPC overhead into the transport floor and the server's own
share, but on a shared machine one run's figures move by more than a change to the server saves.
This compares two servers directly: the same ranker, the same flags, one started from this
checkout and one from a git commit (exported to a temporary directory), both on the servers'
CPUs, called by one client on the clients' CPUs, in short alternating blocks so that both see the
same background load. The difference in p50 is the difference in the server's own share (the
transport floor and the model call are the same for both); the server's CPU per request (from
/proc/<pid>/stat, all its threads) says where a latency gain comes from.

Nothing is asserted; it prints, per request kind, each server's p50 (median over the blocks, with
the lowest-highest block) and CPU per request, and the paired difference block by block.

Usage: .venv/bin/python benchmarks/serving_ab.py --baseline dd6ec23 [--client-cpus 0]
       [--blocks 20] [--block-seconds 0.5] [--server-flags '--enable_batching ...']
Exit codes: 0 done; 2 bad arguments (argparse).
"""
from __future__ import annotations

import argparse
import os
import subprocess
import sys
import tempfile
from pathlib import Path

os.environ.setdefault("TF_USE_LEGACY_KERAS", "1")
os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

REPO_ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO_ROOT))
sys.path.insert(0, str(REPO_ROOT / "benchmarks"))

import numpy as np  # noqa: E402
import serving_bench as bench  # noqa: E402

from serving.process import ServerProcess  # noqa: E402

CLOCK_TICKS = os.sysconf("SC_CLK_TCK")


def export_commit(commit: str, into: Path) -> Path:
    """`git archive` of `commit` (the whole tree: the server imports trainer.contract)."""
    archive = subprocess.run(["git", "-C", str(REPO_ROOT), "archive", commit],
                             check=True, capture_output=True).stdout
    subprocess.run(["tar", "-x", "-C", str(into)], input=archive, check=True)
    return into


def process_counters(pid: int) -> tuple[float, int]:
    """(utime + stime in seconds, minor page faults) of a process, all its threads."""
    with open(f"/proc/{pid}/stat", encoding="ascii") as f:
        fields = f.read().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / CLOCK_TICKS, int(fields[7])


def process_cpu_seconds(pid: int) -> float:
    """utime + stime of a process, all its threads."""
    return process_counters(pid)[0]


class TreeServer(ServerProcess):
    """A model server run from the code in `root`, pinned to `cpus`."""

    def __init__(self, root: Path, flags: list[str], log_path: Path,
                 cpus: frozenset[int] | None, extra_env: dict[str, str] | None = None):
        env = dict(os.environ, PYTHONPATH=str(root), **(extra_env or {}))
        log_path.unlink(missing_ok=True)  # the launcher appends; an old port line would match
        with bench.on_cpus(cpus):
            super().__init__(["--port=0", *flags], log_path, env=env, cwd=str(root),
                             command=[sys.executable, "-m", "serving.main"])
        self.wait_ready(120.0)
        self.address = self.grpc_address


def measure(servers: dict[str, TreeServer], payloads: list[bytes], blocks: int, seconds: float,
            clients: int, prime_clients: int) -> dict[str, dict[str, list[float]]]:
    """Alternating blocks (the order flips every block); per block: p50 ms, CPU ms/request.
    With `prime_clients`, each server first serves that many concurrent clients for a second,
    as in serving_bench.py's rounds (its thread pool grows to their number)."""
    for server in servers.values():
        if prime_clients:
            primer = bench.GrpcClients(server.address, prime_clients, payloads)
            bench.run_threads(prime_clients, primer, 1.0, 0.1)
            primer.close()
    loads = {key: bench.GrpcClients(s.address, clients, payloads) for key, s in servers.items()}
    out = {key: {"p50": [], "cpu": [], "rps": [], "faults": []} for key in servers}
    try:
        for load in loads.values():  # warm both up
            bench.run_threads(clients, load, 0.3, 0.2)
        keys = list(servers)
        for block in range(blocks):
            for key in (keys if block % 2 == 0 else keys[::-1]):
                pid = servers[key].proc.pid
                cpu_before, faults_before = process_counters(pid)
                latencies, _failed, elapsed = bench.run_threads(clients, loads[key], seconds, 0.05)
                cpu_after, faults_after = process_counters(pid)
                cpu = cpu_after - cpu_before
                out[key]["faults"].append((faults_after - faults_before) / max(1, len(latencies)))
                out[key]["p50"].append(float(np.median(latencies)) * 1000.0 if latencies
                                       else float("nan"))
                out[key]["cpu"].append(cpu * 1000.0 / max(1, len(latencies)))
                out[key]["rps"].append(len(latencies) / elapsed)
    finally:
        for load in loads.values():
            load.close()
    return out


def spread(values: list[float], digits: int = 3) -> str:
    """median (lowest-highest), blocks without a finished request left out"""
    values = [v for v in values if v == v]
    if not values:
        return "n/a"
    return (f"{np.median(values):.{digits}f} ({min(values):.{digits}f}-"
            f"{max(values):.{digits}f})")


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--baseline", default="HEAD",
                        help="git commit whose server is the A side (default HEAD: the "
                             "committed code against the working tree's)")
    parser.add_argument("--client-cpus", default="0",
                        help="CPUs of the load generator; the servers get the others")
    parser.add_argument("--blocks", type=int, default=20, help="blocks per server and request")
    parser.add_argument("--block-seconds", type=float, default=0.5)
    parser.add_argument("--b-env", default="",
                        help="environment for B only, space-separated KEY=VALUE, e.g. "
                             "'MALLOC_ARENA_MAX=1'")
    parser.add_argument("--clients", type=int, default=1)
    parser.add_argument("--prime-clients", type=int, default=32,
                        help="concurrent clients each server serves for a second before the "
                             "measurement (0: none)")
    parser.add_argument("--requests", default="pair,rank50")
    parser.add_argument("--server-flags", default="", help="extra flags for both servers")
    parser.add_argument("--b-flags", default="",
                        help="extra flags for B only, e.g. to compare a setting on the same code "
                             "(--baseline HEAD with a clean tree)")
    parser.add_argument("--workdir", default="")
    args = parser.parse_args()
    allowed = frozenset(os.sched_getaffinity(0))
    client_cpus = bench.parse_cpus(args.client_cpus) if args.client_cpus else None
    server_cpus = (allowed - client_cpus) if client_cpus else None
    if client_cpus is not None and (not server_cpus or not client_cpus <= allowed):
        parser.error(f"--client-cpus {args.client_cpus}: this process may use CPUs "
                     f"{sorted(allowed)}; the clients need some and the servers at least one")

    from serving import client

    workdir = Path(args.workdir or tempfile.mkdtemp(prefix="serving_ab_"))
    base = workdir / "ranker"
    if not (base / "1" / "saved_model.pb").exists():
        subprocess.run([sys.executable, str(REPO_ROOT / "benchmarks" / "serving_bench.py"),
                        "--build-only", "default", str(base / "1")], check=True)
        client.write_warmup_requests(base / "1", [dict(c, query=bench.market_query(0)) for c in
                                                  bench.make_candidates(50, seed=0)], "ranker")
    baseline_root = workdir / "baseline"
    baseline_root.mkdir(exist_ok=True)
    export_commit(args.baseline, baseline_root)
    # As serving_bench.py sends them: each client its own search's request.
    payloads = {name: [r.SerializeToString() for r in variants]
                for name, variants in bench.bench_requests(max(args.clients, args.prime_clients, 1)).items()}
    flags = ["--model_name=ranker", f"--model_base_path={base}", *args.server_flags.split()]
    print(f"CPU: {bench.cpu_model()}, {len(allowed)} CPUs; load average "
          f"{os.getloadavg()[0]:.2f}; A = {args.baseline}, B = this checkout; "
          f"flags {' '.join(flags[2:]) or '(defaults)'}; B also {args.b_flags or '(nothing)'} "
          f"{args.b_env}",
          flush=True)
    servers = {
        "A": TreeServer(baseline_root, flags, workdir / "a.log", server_cpus),
        "B": TreeServer(REPO_ROOT, [*flags, *args.b_flags.split()], workdir / "b.log",
                        server_cpus, dict(kv.split("=", 1) for kv in args.b_env.split())),
    }
    try:
        if client_cpus:
            os.sched_setaffinity(0, client_cpus)
        for name in args.requests.split(","):
            out = measure(servers, payloads[name], args.blocks, args.block_seconds, args.clients,
                          args.prime_clients)
            delta = [b - a for a, b in zip(out["A"]["p50"], out["B"]["p50"], strict=True)]
            print(f"{name}, {args.clients} client(s), {args.blocks} blocks of "
                  f"{args.block_seconds} s each:")
            for key in ("A", "B"):
                print(f"  {key}: p50 {spread(out[key]['p50'])} ms, server CPU "
                      f"{spread(out[key]['cpu'])} ms/request, {np.median(out[key]['rps']):.0f}"
                      f" req/s, {np.median(out[key]['faults']):.1f} page faults/request")
            print(f"  B - A p50, paired by block: {spread(delta)} ms", flush=True)
    finally:
        for server in servers.values():
            server.stop()
    print(f"load average at end {os.getloadavg()[0]:.2f}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
