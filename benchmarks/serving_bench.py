"""Benchmark of freshrank-model-server: latency and throughput next to the in-process floor.

What it measures, in one run (numbers are printed, nothing is asserted):
  * a 50-candidate ranking request and a single-pair request,
  * at 1, 8 and 32 concurrent gRPC clients,
  * against the server with batching off and with batching on,
  * next to the same SavedModel called in-process (the floor: same session, no gRPC, no protos),
  * and, at one client, next to a Python gRPC server doing no work (benchmarks/grpc_floor.py,
    holding each call for the in-process time): the share of the overhead that is transport,
  * and a swap test: three new versions dropped into the base path under load, counting failures,
  * for two ranker sizes (--models): trainer/'s default (what `make demo` serves) and bert-mini.

The models are built here with plain TF ops and the trainer's serving signature (see
build_bert_ranker): tensorflow_text wordpiece tokenization of the (query, product) pair to 48
tokens, a BERT encoder, id embeddings and the price (query, title, brand, category, product_id,
price -> score).

Clients send pre-serialized requests through raw gRPC method handles so that the client's own
protobuf work does not eat the CPUs the server needs; responses are checked for status only
(a sample from each server is fully decoded and compared with the in-process scores first).

These machines share their CPUs with other processes, so the three targets (in-process, server
with batching off, server with batching on; both servers run side by side) are measured in
alternating blocks, under the same background load. The single-client figures (and the goal)
are back-to-back calls; the "1 idle" row calls the three targets in turn, call by call, so each
server has been idle for a few milliseconds before every call it gets. Compare the columns of
one run, not numbers across runs.

--client-cpus splits the machine: the load generator on the CPUs given, the servers, the
transport floor and the in-process floor's TensorFlow on the others, as when clients run on other
machines. (The "1 idle" row's in-process calls then run from the load generator's thread.)

Usage: .venv/bin/python benchmarks/serving_bench.py [--duration 3] [--models default,bert-mini]
       [--intra-op N --inter-op N] [--client-cpus 0-3] [--json results.json]
docs/serving-performance.md records what it measured and what the numbers mean for tuning.
"""
from __future__ import annotations

import argparse
import contextlib
import json
import os
import re
import shutil
import socket
import subprocess
import sys
import tempfile
import threading
import time
from dataclasses import asdict, dataclass
from pathlib import Path

os.environ.setdefault("TF_USE_LEGACY_KERAS", "1")
os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

REPO_ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO_ROOT))

import grpc  # noqa: E402
import numpy as np  # noqa: E402

from serving.process import ServerProcess  # noqa: E402

PREDICT_METHOD = "/tensorflow.serving.PredictionService/Predict"
TITLES = {"inprocess": "in-process", "grpc_off": "gRPC batching off",
          "grpc_on": "gRPC batching on", "floor": "gRPC floor (no work)"}
CLIENT_COUNTS = (1, 8, 32)
IDLE = "1 idle"
# Batches form from queueing alone (no timeout): a lone request is never held back, and under
# load every request that arrives while the batch threads are busy joins the next batch. One batch
# thread per server CPU, as TF Serving's batching guide advises for CPUs.
BATCHING_PARAMETERS = """
max_batch_size {{ value: 128 }}
batch_timeout_micros {{ value: 0 }}
max_enqueued_batches {{ value: 1000 }}
num_batch_threads {{ value: {threads} }}
"""


# -- the model -----------------------------------------------------------------------------------


@dataclass(frozen=True)
class ModelShape:
    """Encoder size of a benchmarked ranker."""

    layers: int
    hidden: int
    heads: int
    intermediate: int
    seq_len: int = 48


# "default" is trainer/config.py's default (what `make demo` trains and serves); "bert-mini" is
# the smallest BERT a shop would serve in production (Turc et al. 2019: L=4, H=256, A=4). Whether
# batching pays depends on how the model's cost per call compares with the server's per-request
# cost, so the benchmark measures both.
MODEL_SHAPES = {
    "default": ModelShape(layers=2, hidden=64, heads=2, intermediate=256),
    "bert-mini": ModelShape(layers=4, hidden=256, heads=4, intermediate=1024),
}


def build_bert_ranker(export_dir: Path, shape: ModelShape, seed: int = 7) -> None:
    """A BERT cross-encoder ranker with the production signature of trainer/'s export.

    Same in-graph text pipeline as trainer/text.py (tensorflow_text BertTokenizer over a
    vocabulary asset, RoundRobinTrimmer, combine_segments, pad_model_inputs to 48 tokens), a
    BERT encoder of the given shape, hashed id embeddings for brand, category and product_id,
    the log price, and a 64-unit head. Weights are random: only the cost of serving it matters.
    """
    import tensorflow as tf
    import tensorflow_text as tft

    from trainer.config import TrainConfig
    from trainer.model import raw_input_specs

    hidden, heads, ff, seq_len, layers = (shape.hidden, shape.heads, shape.intermediate,
                                          shape.seq_len, shape.layers)
    id_dim, id_buckets = 16, 4096
    vocab_words = ["[PAD]", "[UNK]", "[CLS]", "[SEP]"] + sorted(set(WORDS)) + [
        "##" + suffix for suffix in ("s", "ing", "er", "ed", "y", "proof", "weight")]
    vocab_path = Path(export_dir).parent / "bench_vocab.txt"
    vocab_path.parent.mkdir(parents=True, exist_ok=True)
    vocab_path.write_text("\n".join(vocab_words) + "\n")
    rng = np.random.default_rng(seed)

    def var(*shape, scale=0.02):
        return tf.Variable(rng.normal(0.0, scale, shape).astype(np.float32))

    class BertRanker(tf.Module):
        def __init__(self):
            super().__init__()
            self.tokenizer = tft.BertTokenizer(str(vocab_path), token_out_type=tf.int64,
                                               lower_case=True, unknown_token="[UNK]")
            self.trimmer = tft.RoundRobinTrimmer(max_seq_length=seq_len - 3)
            self.word = var(len(vocab_words), hidden)
            self.segment = var(2, hidden)
            self.position = var(seq_len, hidden)
            self.blocks = [
                {"wq": var(hidden, hidden), "wk": var(hidden, hidden), "wv": var(hidden, hidden),
                 "wo": var(hidden, hidden), "w1": var(hidden, ff), "b1": var(ff),
                 "w2": var(ff, hidden), "b2": var(hidden)}
                for _ in range(layers)
            ]
            self.ids = {name: var(id_buckets, id_dim) for name in ("brand", "category",
                                                                  "product_id")}
            self.head1 = var(hidden + 3 * id_dim + 1, 64, scale=0.1)
            self.head2 = var(64, 1, scale=0.1)

        @staticmethod
        def _norm(x):
            mean, variance = tf.nn.moments(x, axes=[-1], keepdims=True)
            return (x - mean) * tf.math.rsqrt(variance + 1e-12)

        def _block(self, x, bias, p):
            batch = tf.shape(x)[0]

            def split(t):
                return tf.transpose(tf.reshape(t, [batch, seq_len, heads, hidden // heads]),
                                    [0, 2, 1, 3])

            q, k, v = (split(tf.einsum("bsh,hd->bsd", x, p[w])) for w in ("wq", "wk", "wv"))
            scores = tf.matmul(q, k, transpose_b=True) / float(np.sqrt(hidden // heads)) + bias
            attended = tf.matmul(tf.nn.softmax(scores), v)
            attended = tf.reshape(tf.transpose(attended, [0, 2, 1, 3]), [batch, seq_len, hidden])
            x = self._norm(x + tf.einsum("bsh,hd->bsd", attended, p["wo"]))
            inner = tf.nn.gelu(tf.einsum("bsh,hf->bsf", x, p["w1"]) + p["b1"])
            return self._norm(x + tf.einsum("bsf,fh->bsh", inner, p["w2"]) + p["b2"])

        @tf.function(input_signature=list(raw_input_specs(TrainConfig()).values()))  # the ranker's inputs
        def serve(self, query, title, brand, category, product_id, price):
            document = tf.strings.join([title, brand, category], separator=" ")
            q = self.tokenizer.tokenize(query).merge_dims(-2, -1)
            d = self.tokenizer.tokenize(document).merge_dims(-2, -1)
            q, d = self.trimmer.trim([q, d])
            ids, segments = tft.combine_segments([q, d], start_of_sequence_id=2,
                                                 end_of_segment_id=3)
            word_ids, mask = tft.pad_model_inputs(ids, seq_len, pad_value=0)
            type_ids, _ = tft.pad_model_inputs(segments, seq_len, pad_value=0)
            x = (tf.gather(self.word, word_ids) + tf.gather(self.segment, type_ids)
                 + self.position)
            bias = (1.0 - tf.cast(mask, tf.float32))[:, None, None, :] * -1e9
            for block in self.blocks:
                x = self._block(x, bias, block)
            side = [tf.gather(table, tf.strings.to_hash_bucket_fast(value, id_buckets))
                    for table, value in ((self.ids["brand"], brand),
                                         (self.ids["category"], category),
                                         (self.ids["product_id"], product_id))]
            features = tf.concat([x[:, 0, :], *side,
                                  tf.math.log1p(tf.maximum(price, 0.0))[:, None]], axis=1)
            logit = tf.matmul(tf.nn.relu(tf.matmul(features, self.head1)), self.head2)
            return {"score": tf.sigmoid(logit[:, 0])}

    module = BertRanker()
    tf.saved_model.save(module, str(export_dir), signatures={"serving_default": module.serve})


WORDS = ("running shoes trail waterproof women men lightweight red blue jacket rain "
         "wool socks hiking boots leather classic sport tee cotton slim fit").split()


def make_candidates(count: int, seed: int) -> list[dict]:
    rng = np.random.default_rng(seed)
    return [{
        "product_id": f"p{seed}-{i}",
        "title": " ".join(rng.choice(WORDS, size=int(rng.integers(3, 12)))),
        "brand": str(rng.choice(["acme", "peak", "nordic", "zen"])),
        "category": str(rng.choice(["shoes", "apparel", "outdoor"])),
        "price": float(rng.uniform(5, 300)),
    } for i in range(count)]


# -- measurement ---------------------------------------------------------------------------------


@dataclass
class Stats:
    label: str
    clients: int
    requests: int
    failures: int
    seconds: float
    p50_ms: float
    p99_ms: float

    @property
    def throughput(self) -> float:
        return self.requests / self.seconds if self.seconds else 0.0


def _summarize(label: str, clients: int, latencies: list[float], failures: int,
               seconds: float) -> Stats:
    values = np.array(latencies) * 1000.0 if latencies else np.array([np.nan])
    return Stats(label, clients, len(latencies), failures, seconds,
                 float(np.percentile(values, 50)), float(np.percentile(values, 99)))


def run_threads(clients: int, call, seconds: float, warmup: float,
                cpus: frozenset[int] | None = None) -> tuple[list[float], int, float]:
    """`clients` threads call `call(index)` back to back for `seconds` after `warmup`, on `cpus`
    when given (else wherever the calling thread may run); returns (latencies, failures,
    measured seconds)."""
    stop = threading.Event()
    measuring = threading.Event()
    latencies: list[list[float]] = [[] for _ in range(clients)]
    failures = [0] * clients

    def worker(index: int) -> None:
        if cpus:
            os.sched_setaffinity(0, cpus)  # this thread only (Linux)
        local = latencies[index]
        while not stop.is_set():
            start = time.perf_counter()
            try:
                call(index)
            except Exception as exc:  # noqa: BLE001 - counted and reported
                if measuring.is_set():
                    failures[index] += 1
                    if failures[index] == 1:
                        print(f"    failure: {repr(exc)[:200]}", flush=True)
                continue
            if measuring.is_set():
                local.append(time.perf_counter() - start)

    threads = [threading.Thread(target=worker, args=(i,), daemon=True) for i in range(clients)]
    for thread in threads:
        thread.start()
    time.sleep(warmup)
    measuring.set()
    begin = time.perf_counter()
    time.sleep(seconds)
    measuring.clear()
    elapsed = time.perf_counter() - begin
    stop.set()
    for thread in threads:
        thread.join(60)
    return [x for part in latencies for x in part], sum(failures), elapsed


def alternate_blocks(targets: dict, clients: int, duration: float, warmup: float,
                     rounds: int = 3) -> dict[str, tuple[list[float], int, float]]:
    """Runs each target for duration/rounds seconds in turn, `rounds` times, so that every
    target sees the same background load (these CPUs are shared with other processes)."""
    totals = {label: ([], 0, 0.0) for label in targets}
    for _ in range(rounds):
        for label, target in targets.items():
            lat, failed, seconds = target.measure(clients, duration / rounds, warmup / rounds)
            old = totals[label]
            totals[label] = (old[0] + lat, old[1] + failed, old[2] + seconds)
    return totals


def interleave_calls(targets: dict, duration: float, warmup: float
                     ) -> dict[str, tuple[list[float], int, float]]:
    """One client calling each target in turn, call by call: paired latencies under the same
    load, each server idle while the others are called."""
    calls = {label: target.caller() for label, target in targets.items()}
    latencies: dict[str, list[float]] = {label: [] for label in targets}
    failures = dict.fromkeys(targets, 0)
    end_warmup = time.perf_counter() + warmup
    while time.perf_counter() < end_warmup:
        for call, _ in calls.values():
            call(0)
    begin = time.perf_counter()
    while time.perf_counter() - begin < duration:
        for label, (call, _) in calls.items():
            start = time.perf_counter()
            try:
                call(0)
            except grpc.RpcError:
                failures[label] += 1
                continue
            latencies[label].append(time.perf_counter() - start)
    elapsed = time.perf_counter() - begin
    for _, close in calls.values():
        close()
    # Each target had 1/len(targets) of the wall time.
    share = elapsed / len(targets)
    return {label: (latencies[label], failures[label], share) for label in targets}


def session_call(signature, request) -> tuple[tuple, tuple, list]:
    """(feed names, fetch names, arrays) that run a Predict request's scores straight through
    the session (Servable.run_direct): the in-process floor, with no protos on the way."""
    import tensorflow as tf

    aliases = sorted(request.inputs)
    return (tuple(signature.inputs[a].name for a in aliases), (signature.outputs["score"].name,),
            [tf.make_ndarray(request.inputs[a]) for a in aliases])


class InProcessTarget:
    """The floor: the SavedModel's session called from this process's threads (on the servers'
    CPUs when --client-cpus splits the machine)."""

    def __init__(self, run_once, cpus: frozenset[int] | None = None):
        self.run_once = run_once
        self.cpus = cpus

    def caller(self):
        return (lambda _index: self.run_once()), (lambda: None)

    def measure(self, clients: int, seconds: float, warmup: float):
        return run_threads(clients, lambda _index: self.run_once(), seconds, warmup, self.cpus)


class ServerTarget:
    """A model server called with pre-serialized Predict requests, one thread and one channel
    per client. (An asyncio load generator was measured too: the same client CPU per request,
    about 0.3-0.4 ms, and the same throughput, so the simpler threads stay.)"""

    def __init__(self, address: str, payload: bytes):
        self.address = address
        self.payload = payload

    def caller(self):
        load = GrpcClients(self.address, 1, self.payload)
        return load, load.close

    def measure(self, clients: int, seconds: float, warmup: float):
        load = GrpcClients(self.address, clients, self.payload)
        try:
            return run_threads(clients, load, seconds, warmup)
        finally:
            load.close()


class FloorTarget:
    """benchmarks/grpc_floor.py holding each call for the in-process p50: what a Python gRPC
    server costs around a call of that length before doing any work. Measured at one client
    only; its latencies are the client's round trip minus the handler's own hold."""

    def __init__(self, hold_ms: float, payload: bytes, cpus: frozenset[int] | None = None):
        self.hold_ms = hold_ms
        self.payload = payload
        with on_cpus(cpus):
            self.proc = subprocess.Popen(
                [sys.executable, str(Path(__file__).with_name("grpc_floor.py")),
                 f"--hold-ms={hold_ms}"], stdout=subprocess.PIPE, stderr=subprocess.STDOUT)
        line = self.proc.stdout.readline().decode()
        if not line.startswith("PORT "):
            self.close()
            raise RuntimeError(f"grpc_floor.py did not start: {line}")
        self.address = f"127.0.0.1:{int(line.split()[1])}"

    def measure(self, clients: int, seconds: float, warmup: float):
        if clients != 1:
            raise ValueError("the floor is measured with one client")
        with grpc.insecure_channel(self.address) as channel:
            call = channel.unary_unary(PREDICT_METHOD)
            end_warmup = time.perf_counter() + warmup
            while time.perf_counter() < end_warmup:
                call(self.payload, timeout=60)
            latencies: list[float] = []
            begin = time.perf_counter()
            while time.perf_counter() - begin < seconds:
                start = time.perf_counter()
                held = float(call(self.payload, timeout=60))
                latencies.append(time.perf_counter() - start - held)
            return latencies, 0, time.perf_counter() - begin

    def close(self) -> None:
        self.proc.kill()
        self.proc.wait()


def median_seconds(run_once, calls: int = 60, warmup: int = 10) -> float:
    """p50 of `calls` back-to-back calls after `warmup` unmeasured ones."""
    for _ in range(warmup):
        run_once()
    times = []
    for _ in range(calls):
        start = time.perf_counter()
        run_once()
        times.append(time.perf_counter() - start)
    return float(np.median(times))


class GrpcClients:
    """One channel per client thread, raw Predict with a pre-serialized request."""

    def __init__(self, address: str, clients: int, payload: bytes):
        self.channels = [grpc.insecure_channel(address) for _ in range(clients)]
        self.calls = [ch.unary_unary(PREDICT_METHOD) for ch in self.channels]
        self.payload = payload

    def __call__(self, index: int) -> None:
        self.calls[index](self.payload, timeout=60)

    def close(self) -> None:
        for channel in self.channels:
            channel.close()


# -- server process ------------------------------------------------------------------------------


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def parse_cpus(text: str) -> frozenset[int]:
    """'0-3,6' -> {0, 1, 2, 3, 6}"""
    cpus: set[int] = set()
    for part in text.split(","):
        low, _, high = part.strip().partition("-")
        cpus.update(range(int(low), int(high or low) + 1))
    return frozenset(cpus)


@contextlib.contextmanager
def on_cpus(cpus: frozenset[int] | None):
    """Runs the calling thread on `cpus` for the block: a process it starts inherits them, and
    its TensorFlow sizes its thread pools to them as it would on a machine of that many cores.
    (Popen's preexec_fn would do the same but is unsafe once threads exist.)"""
    if not cpus:
        yield
        return
    before = os.sched_getaffinity(0)
    os.sched_setaffinity(0, cpus)
    try:
        yield
    finally:
        os.sched_setaffinity(0, before)


class Server(ServerProcess):
    """The shared launcher (serving/process.py) on this checkout's code, pinned to `cpus`."""

    def __init__(self, flags: list[str], log_path: Path, cpus: frozenset[int] | None = None):
        env = dict(os.environ, PYTHONPATH=str(REPO_ROOT))
        with on_cpus(cpus):  # the child inherits the affinity
            super().__init__(["--port=0", *flags], log_path, env=env, cwd=str(REPO_ROOT),
                             command=[sys.executable, "-m", "serving.main"])
        self.wait_ready(120.0)
        self.address = self.grpc_address

    def wait_for(self, pattern: str, timeout: float = 120.0, count: int = 1) -> re.Match:
        return self.wait_for_log(pattern, timeout, count)


# -- the benchmark -------------------------------------------------------------------------------


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--duration", type=float, default=3.0, help="seconds per measurement")
    parser.add_argument("--warmup", type=float, default=0.7, help="seconds before measuring")
    parser.add_argument("--intra-op", type=int, default=0,
                        help="TensorFlow intra-op threads of every target (the servers' "
                             "--tensorflow_intra_op_parallelism; 0: one per core)")
    parser.add_argument("--inter-op", type=int, default=0,
                        help="TensorFlow inter-op threads of every target (0: one per core; "
                             "-1: run each graph in the calling thread)")
    parser.add_argument("--client-cpus", default="",
                        help="CPUs for the load generator, e.g. 0-3; the servers and the "
                             "in-process floor get the others, as if clients were on another "
                             "machine (default: everything shares every CPU)")
    parser.add_argument("--models", default=",".join(MODEL_SHAPES),
                        help=f"comma-separated ranker sizes out of {', '.join(MODEL_SHAPES)}")
    parser.add_argument("--json", default="", help="also write all numbers to this file")
    parser.add_argument("--workdir", default="", help="keep models and logs here")
    parser.add_argument("--build-only", nargs=2, metavar=("SHAPE", "DIR"), default=None,
                        help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.build_only:
        build_bert_ranker(Path(args.build_only[1]), MODEL_SHAPES[args.build_only[0]])
        return 0
    allowed = frozenset(os.sched_getaffinity(0))
    args.server_cpus = args.client_cpus_set = None
    if args.client_cpus:
        try:
            args.client_cpus_set = parse_cpus(args.client_cpus)
        except ValueError:
            parser.error(f"--client-cpus {args.client_cpus!r}: give CPU numbers and ranges, "
                         "e.g. 0-3,6")
        args.server_cpus = allowed - args.client_cpus_set
        if not args.client_cpus_set <= allowed or not args.server_cpus:
            parser.error(f"--client-cpus {args.client_cpus}: this process may use CPUs "
                         f"{sorted(allowed)}; the clients need some of them and the servers at "
                         "least one other")
    models = [m.strip() for m in args.models.split(",") if m.strip()]
    unknown = [m for m in models if m not in MODEL_SHAPES]
    if unknown or not models:
        parser.error(f"--models: unknown {', '.join(unknown) or '(none given)'}; choose from "
                     f"{', '.join(MODEL_SHAPES)}")

    import tensorflow as tf

    workdir = Path(args.workdir or tempfile.mkdtemp(prefix="serving_bench_"))
    print(f"workdir {workdir}; {os.cpu_count()} CPUs; TensorFlow {tf.__version__}; "
          f"TensorFlow threads intra-op {args.intra_op}, inter-op {args.inter_op}; oneDNN "
          f"{'off' if os.environ.get('TF_ENABLE_ONEDNN_OPTS') == '0' else 'on'}; "
          f"load average at start {os.getloadavg()[0]:.2f}", flush=True)
    if args.client_cpus_set:
        print(f"load generator on CPUs {sorted(args.client_cpus_set)}, servers and in-process "
              f"floor on CPUs {sorted(args.server_cpus)}", flush=True)
    everything = {}
    for model in models:
        print(f"\n### ranker '{model}': {MODEL_SHAPES[model]}", flush=True)
        results, swap_failures = bench_model(model, workdir / model, args)
        everything[model] = (results, swap_failures)
    for model, (results, swap_failures) in everything.items():
        report(model, results, swap_failures)
    print(f"\nload average at end {os.getloadavg()[0]:.2f} (other processes share these CPUs; "
          "compare columns of one run, not numbers across runs)")
    if args.json:
        Path(args.json).write_text(json.dumps({
            model: {"shape": asdict(MODEL_SHAPES[model]),
                    "results": {k: dict(asdict(v), throughput=v.throughput)
                                for k, v in results.items()},
                    "swap_failures": swap_failures}
            for model, (results, swap_failures) in everything.items()}, indent=1))
    return 0


def bench_model(model: str, workdir: Path, args: argparse.Namespace
                ) -> tuple[dict[str, Stats], dict[str, int]]:
    """Every measurement for one ranker size: in-process floor and both servers."""

    from serving import client
    from serving.servable import LoadOptions, Servable

    base = workdir / "ranker"
    if base.exists():
        shutil.rmtree(base)
    # Built in a child process: this process then holds nothing but the in-process floor's
    # session, like the server process does.
    subprocess.run([sys.executable, __file__, "--build-only", model, str(base / "1")],
                   check=True)

    query = "lightweight running shoes"
    ranking = make_candidates(50, seed=1)
    pair = make_candidates(1, seed=2)
    requests = {
        "rank50": client.build_predict_request(query, ranking, "ranker"),
        "pair": client.build_predict_request(query, pair, "ranker"),
    }
    payloads = {name: r.SerializeToString() for name, r in requests.items()}
    results: dict[str, Stats] = {}

    # The floor: the same SavedModel, same session API, called in-process with numpy arrays.
    # Loaded from a thread on the servers' CPUs: the session's thread pools inherit them.
    if args.server_cpus:
        os.sched_setaffinity(0, args.server_cpus)
    servable = Servable.load("ranker", 1, str(base / "1"), LoadOptions(
        enable_warmup=False, intra_op_threads=args.intra_op, inter_op_threads=args.inter_op))
    signature = servable.signature("serving_default")
    expected = servable.predict(requests["rank50"]).outputs["score"]

    params = workdir / "batching.txt"
    params.write_text(BATCHING_PARAMETERS.format(
        threads=len(args.server_cpus or os.sched_getaffinity(0))))
    # Each server gets its own base path, so that each swap test moves only its own server.
    bases = {}
    for key in ("grpc_off", "grpc_on"):
        bases[key] = workdir / key / "ranker"
        shutil.rmtree(bases[key].parent, ignore_errors=True)
        shutil.copytree(base / "1", bases[key] / "1")
    common = ["--model_name=ranker", "--file_system_poll_wait_seconds=1",
              f"--tensorflow_intra_op_parallelism={args.intra_op}",
              f"--tensorflow_inter_op_parallelism={args.inter_op}"]
    servers = {
        "grpc_off": Server([*common, f"--model_base_path={bases['grpc_off']}"],
                           workdir / "server_batching_off.log", args.server_cpus),
        "grpc_on": Server([*common, f"--model_base_path={bases['grpc_on']}", "--enable_batching",
                           f"--batching_parameters_file={params}"],
                          workdir / "server_batching_on.log", args.server_cpus),
    }
    if args.client_cpus_set:
        # From here this thread is the load generator: its gRPC channels, their core threads and
        # the client threads it starts all run on the clients' CPUs.
        os.sched_setaffinity(0, args.client_cpus_set)
    swap_failures: dict[str, int] = {}
    try:
        for server in servers.values():
            check_server(server, requests["rank50"], expected)
        for name, request in requests.items():
            def run_once(call=session_call(signature, request)):
                return servable.run_direct(*call)

            targets = {"inprocess": InProcessTarget(run_once, args.server_cpus),
                       **{key: ServerTarget(server.address, payloads[name])
                          for key, server in servers.items()}}
            runs = [(clients, str(clients)) for clients in CLIENT_COUNTS]
            runs.insert(1, (1, IDLE))
            floor = FloorTarget(median_seconds(run_once) * 1000.0, payloads[name],
                                args.server_cpus)
            try:
                for clients, column in runs:
                    if column == IDLE:
                        samples = interleave_calls(targets, args.duration, args.warmup)
                    elif clients == 1:
                        samples = alternate_blocks({**targets, "floor": floor}, clients,
                                                   args.duration, args.warmup)
                    else:
                        samples = alternate_blocks(targets, clients, args.duration, args.warmup)
                    for key, (lat, failed, seconds) in samples.items():
                        label = f"{TITLES[key]} {name}" + (" (idle)" if column == IDLE else "")
                        stats = _summarize(label, clients, lat, failed, seconds)
                        results[f"{key}/{name}/{column}"] = stats
                        print_stats(stats)
            finally:
                floor.close()
            results[f"floor/{name}/hold"] = Stats(f"floor hold {name}", 1, 0, 0, 0.0,
                                                  floor.hold_ms, floor.hold_ms)
        for key, server in servers.items():
            swap_failures[key[5:]] = swap_test(server, bases[key], payloads["pair"])
    finally:
        for server in servers.values():
            server.stop()
    servable.close()
    return results, swap_failures


def check_server(server: Server, request, expected) -> None:
    from tensorflow_serving.apis import prediction_service_pb2_grpc

    with grpc.insecure_channel(server.address) as channel:
        stub = prediction_service_pb2_grpc.PredictionServiceStub(channel)
        response = stub.Predict(request, timeout=60)
    got = np.array(response.outputs["score"].float_val)
    want = np.array(expected.float_val)
    if got.shape != want.shape or not np.allclose(got, want, rtol=1e-5, atol=1e-6):
        raise RuntimeError("server scores differ from in-process scores")


def swap_test(server: Server, base: Path, payload: bytes, clients: int = 8) -> int:
    """Drops versions 2, 3 and 4 into the base path under load; returns failed requests."""
    load = GrpcClients(server.address, clients, payload)
    stop = threading.Event()
    failures = [0]
    done = [0]

    def worker(index: int) -> None:
        while not stop.is_set():
            try:
                load(index)
                done[0] += 1
            except grpc.RpcError:
                failures[0] += 1

    threads = [threading.Thread(target=worker, args=(i,), daemon=True) for i in range(clients)]
    for thread in threads:
        thread.start()
    for version in (2, 3, 4):
        staging = base.parent / f"staging_{version}"
        shutil.copytree(base / "1", staging)
        os.rename(staging, base / str(version))
        # Each new version replaces its predecessor once it is AVAILABLE.
        server.wait_for(rf"Done unloading servable version \{{name: ranker version: "
                        rf"{version - 1}\}}", timeout=120)
    stop.set()
    for thread in threads:
        thread.join(60)
    load.close()
    print(f"  swap test: versions 2, 3, 4 swapped in under {clients} clients, {done[0]} "
          f"requests, {failures[0]} failed", flush=True)
    return failures[0]


def print_stats(stats: Stats) -> None:
    print(f"  {stats.label:<32} clients {stats.clients:>2}: p50 {stats.p50_ms:8.3f} ms  "
          f"p99 {stats.p99_ms:8.3f} ms  {stats.throughput:8.1f} req/s  "
          f"({stats.requests} ok, {stats.failures} failed)", flush=True)


def report(model: str, results: dict[str, Stats], swap_failures: dict[str, int]) -> None:
    print(f"\n== ranker '{model}' {MODEL_SHAPES[model]}: p50 / p99 ms, requests/s ==")
    header = f"{'request':<8} {'clients':>7} | {'in-process':>26} | {'gRPC, batching off':>26} |" \
             f" {'gRPC, batching on':>26}"
    print(header)
    for name in ("rank50", "pair"):
        for column in ("1", IDLE, *(str(c) for c in CLIENT_COUNTS[1:])):
            cells = []
            for prefix in ("inprocess", "grpc_off", "grpc_on"):
                s = results[f"{prefix}/{name}/{column}"]
                cells.append(f"{s.p50_ms:7.2f} / {s.p99_ms:7.2f} {s.throughput:7.0f}/s")
            print(f"{name:<8} {column:>7} | " + " | ".join(f"{c:>26}" for c in cells))
    print(f"({IDLE}: one client calling the three targets in turn, call by call, so each server "
          "has been idle between its calls)")

    print(f"\n== goals, ranker '{model}' ==")
    for name in ("rank50", "pair"):
        overhead = results[f"grpc_off/{name}/1"].p50_ms - results[f"inprocess/{name}/1"].p50_ms
        idle = results[f"grpc_off/{name}/{IDLE}"].p50_ms - \
            results[f"inprocess/{name}/{IDLE}"].p50_ms
        verdict = "met" if overhead <= 1.0 else "NOT met"
        floor = results[f"floor/{name}/1"].p50_ms
        hold = results[f"floor/{name}/hold"].p50_ms
        print(f"gRPC overhead over in-process at p50, {name}, 1 client: {overhead:.3f} ms "
              f"(goal <= 1 ms: {verdict}); calls to an idle server: {idle:.3f} ms")
        print(f"  of which the transport floor: {floor:.3f} ms (a Python gRPC server doing no "
              f"work, holding each call {hold:.2f} ms), the server's own: "
              f"{overhead - floor:.3f} ms")
    for name in ("pair", "rank50"):
        on = results[f"grpc_on/{name}/32"].throughput
        off = results[f"grpc_off/{name}/32"].throughput
        ratio = on / off if off else float("nan")
        goal = " (goal >= 2x: " + ("met)" if ratio >= 2 else "NOT met)") if name == "pair" else ""
        print(f"batching throughput ratio at 32 clients, {name}: {ratio:.2f}x "
              f"({on:.0f} vs {off:.0f} req/s){goal}")
    total = sum(swap_failures.values())
    print(f"failed requests while 3 versions swapped in under load: batching off "
          f"{swap_failures.get('off')}, on {swap_failures.get('on')} "
          f"(goal 0: {'met' if total == 0 else 'NOT met'})")
    failed = sum(s.failures for s in results.values())
    print(f"failed requests during the latency/throughput runs: {failed}")


if __name__ == "__main__":
    sys.exit(main())
