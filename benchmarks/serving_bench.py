"""Benchmark of freshrank-model-server: latency and throughput next to the in-process floor.

What it measures, in one run (numbers are printed, nothing is asserted):
  * a 50-candidate ranking request and a single-pair request,
  * at 1, 8 and 32 concurrent gRPC clients,
  * against the server with batching off and with batching on,
  * next to the same SavedModel called in-process (the floor: same session, no gRPC, no protos),
  * and, at one client, next to a Python gRPC server doing no work (benchmarks/grpc_floor.py,
    holding each call for the in-process time): the share of the overhead that is transport,
  * and a swap test: p50/p99 of pairs sent at 200/s, steady and while three new
    versions are dropped into the base path one after another (each loaded, warmed up, swapped
    in, its predecessor unloaded), counting failures,
  * for two ranker sizes (--models): trainer/'s default (what `make demo` serves) and bert-mini.

The models are built here with plain TF ops and the trainer's serving signature (see
build_bert_ranker): tensorflow_text wordpiece tokenization of the (query, product) pair, padded
to the longest pair of the call as trainer/text.py pads (at most 48 tokens), a BERT encoder, id
embeddings and the price (query, title, brand, category, product_id, price -> score). The text is
the generated market's (freshrank/market: queries and titles in English and Chinese) under a
WordPiece vocabulary learned from it as the trainer learns one, so that pairs are as long as the
product's (22 wordpieces on average); each concurrent client sends its own search's request, so
that a batch is as wide as its longest pair, as under real traffic.

Clients send pre-serialized requests through raw gRPC method handles so that the client's own
protobuf work does not eat the CPUs the server needs; responses are checked for status only
(a sample from each server is fully decoded and compared with the in-process scores first).

These machines share their CPUs with other processes, so the targets (in-process, server with
batching off, server with batching on, both servers running side by side, and at one client the
transport floor) are measured in alternating blocks, under the same background load, and the
whole set is measured --rounds times: every figure is reported as the median over the rounds
with its spread (lowest-highest round), every ratio beside the in-process figure and the CPU
model. The single-client figures (and the goals) are back-to-back calls; the "1 idle" row calls
the three targets in turn, call by call, so each server has been idle for a few milliseconds
before every call it gets. Compare the columns of one run, not numbers across runs.

--client-cpus splits the machine: the load generator on the CPUs given, the servers, the
transport floor and the in-process floor's TensorFlow on the others, as when clients run on other
machines. (The "1 idle" row's in-process calls then run from the load generator's thread.)

Usage: .venv/bin/python benchmarks/serving_bench.py [--duration 3] [--rounds 3]
       [--models default,bert-mini] [--intra-op N --inter-op N] [--client-cpus 0-3]
       [--server-flags '--swap_load_nice=0'] [--json results.json]
The issue's figures: --duration 2 --client-cpus 0 --models default (about 5 minutes on 2 cores).
docs/serving-performance.md records what it measured and what the numbers mean for tuning.
"""
from __future__ import annotations

import argparse
import contextlib
import functools
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
TITLES = {"inprocess": "in-process", "inprocess_cc": "in-process, caller on client CPUs",
          "grpc_off": "gRPC batching off",
          "grpc_on": "gRPC batching on", "floor": "gRPC floor (no work)"}
CLIENT_COUNTS = (1, 8, 32)
IDLE = "1 idle"
# The issue's goals for the server's own share of the p50 overhead at one client (ms).
OWN_GOAL_MS = {"rank50": 1.0, "pair": 0.5}
# The swap test's load: pairs at a fixed rate, about a third of what one server CPU answers
# (as a server is run in production, with room for bursts), from a few threads so that one slow
# call does not hold up the others. A closed loop of back-to-back clients would keep the one
# server CPU busy all the time, and then any work of a load comes out of the requests' share.
SWAP_CLIENTS = 4
SWAP_RATE = 200.0
# Seconds after the old version has unloaded that still count as swapping.
SWAP_TAIL_S = 0.5
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
    WordPiece vocabulary asset learned from the market's text by trainer/vocab.py,
    RoundRobinTrimmer, combine_segments, pad_model_inputs to 48 tokens, then cut to the call's
    longest pair), a BERT encoder of the given shape, hashed id embeddings for brand, category
    and product_id, the log price, and a 64-unit head. Weights are random: only the cost of
    serving it matters.
    """
    import tensorflow as tf
    import tensorflow_text as tft

    from trainer.config import TrainConfig
    from trainer.model import raw_input_specs
    from trainer.vocab import learn_wordpiece_vocab, write_lines

    hidden, heads, ff, seq_len, layers = (shape.hidden, shape.heads, shape.intermediate,
                                          shape.seq_len, shape.layers)
    id_dim, id_buckets = 16, 4096
    vocab_words = learn_wordpiece_vocab(market_texts(), TrainConfig().vocab_size)
    vocab_path = Path(export_dir).parent / "bench_vocab.txt"
    vocab_path.parent.mkdir(parents=True, exist_ok=True)
    write_lines(str(vocab_path), vocab_words)
    cls_id, sep_id = vocab_words.index("[CLS]"), vocab_words.index("[SEP]")
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
            batch, width = tf.shape(x)[0], tf.shape(x)[1]

            def split(t):
                return tf.transpose(tf.reshape(t, [batch, width, heads, hidden // heads]),
                                    [0, 2, 1, 3])

            q, k, v = (split(tf.einsum("bsh,hd->bsd", x, p[w])) for w in ("wq", "wk", "wv"))
            scores = tf.matmul(q, k, transpose_b=True) / float(np.sqrt(hidden // heads)) + bias
            attended = tf.matmul(tf.nn.softmax(scores), v)
            attended = tf.reshape(tf.transpose(attended, [0, 2, 1, 3]), [batch, width, hidden])
            x = self._norm(x + tf.einsum("bsh,hd->bsd", attended, p["wo"]))
            inner = tf.nn.gelu(tf.einsum("bsh,hf->bsf", x, p["w1"]) + p["b1"])
            return self._norm(x + tf.einsum("bsf,fh->bsh", inner, p["w2"]) + p["b2"])

        @tf.function(input_signature=list(raw_input_specs(TrainConfig()).values()))  # the ranker's inputs
        def serve(self, query, title, brand, category, product_id, price):
            document = tf.strings.join([title, brand, category], separator=" ")
            q = self.tokenizer.tokenize(query).merge_dims(-2, -1)
            d = self.tokenizer.tokenize(document).merge_dims(-2, -1)
            q, d = self.trimmer.trim([q, d])
            ids, segments = tft.combine_segments([q, d], start_of_sequence_id=cls_id,
                                                 end_of_segment_id=sep_id)
            word_ids, mask = tft.pad_model_inputs(ids, seq_len, pad_value=0)
            type_ids, _ = tft.pad_model_inputs(segments, seq_len, pad_value=0)
            # Only as wide as the batch's longest pair, as trainer/text.py pads.
            width = tf.maximum(tf.reduce_max(tf.reduce_sum(mask, axis=1)), 1)
            word_ids, mask, type_ids = word_ids[:, :width], mask[:, :width], type_ids[:, :width]
            x = (tf.gather(self.word, word_ids) + tf.gather(self.segment, type_ids)
                 + self.position[:width])
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


# The generated market whose first day's searches the requests are made of (any seed would do:
# only the lengths of the texts matter to the cost of serving them).
MARKET_SEED = 7
MARKET_SEARCHES = 200


@functools.lru_cache(maxsize=1)
def market_searches() -> tuple:
    from freshrank.market.market import Market

    market = Market(seed=MARKET_SEED)
    return tuple(market.searches(market.market_start, MARKET_SEARCHES))


def market_texts() -> list[str]:
    """What the trainer learns its vocabulary from: queries and product texts."""
    searches = market_searches()
    return [s.query for s in searches] + [
        " ".join((c["title"], c["brand"], c["category"])) for s in searches for c in s.candidates]


def make_candidates(count: int, seed: int) -> list[dict]:
    """`count` distinct products shown on the market's first day, a different draw per seed."""
    pool = list({c["product_id"]: c for s in market_searches() for c in s.candidates}.values())
    picks = np.random.default_rng(seed).choice(len(pool), size=count, replace=False)
    return [dict(pool[i]) for i in picks]


def market_query(index: int) -> str:
    return market_searches()[index % MARKET_SEARCHES].query


def bench_requests(clients: int) -> dict[str, list]:
    """Per request kind, one PredictRequest per client: client i sends search i's query with
    50 products (rank50) or one of its own products (pair). Client 0's is the one measured at
    one client and checked against the in-process scores."""
    from serving import client

    searches = market_searches()
    return {
        "rank50": [client.build_predict_request(market_query(i), make_candidates(50, seed=1 + i),
                                                "ranker") for i in range(clients)],
        "pair": [client.build_predict_request(market_query(i),
                                              [searches[i % MARKET_SEARCHES].candidates[0]],
                                              "ranker") for i in range(clients)],
    }


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
    CPUs when --client-cpus splits the machine); `run_once(i)` runs client i's request."""

    def __init__(self, run_once, cpus: frozenset[int] | None = None):
        self.run_once = run_once
        self.cpus = cpus

    def caller(self):
        return self.run_once, (lambda: None)

    def measure(self, clients: int, seconds: float, warmup: float):
        return run_threads(clients, self.run_once, seconds, warmup, self.cpus)


class ServerTarget:
    """A model server called with pre-serialized Predict requests, one thread and one channel
    per client. (An asyncio load generator was measured too: the same client CPU per request,
    about 0.3-0.4 ms, and the same throughput, so the simpler threads stay.)"""

    def __init__(self, address: str, payloads: list[bytes]):
        self.address = address
        self.payloads = payloads

    def caller(self):
        load = GrpcClients(self.address, 1, self.payloads)
        return load, load.close

    def measure(self, clients: int, seconds: float, warmup: float):
        load = GrpcClients(self.address, clients, self.payloads)
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
    """One channel per client thread, raw Predict with pre-serialized requests: client i sends
    payloads[i] (cycling when there are fewer payloads than clients)."""

    def __init__(self, address: str, clients: int, payloads: list[bytes]):
        if isinstance(payloads, bytes):
            raise TypeError("payloads: a list of serialized requests, one per client")
        self.channels = [grpc.insecure_channel(address) for _ in range(clients)]
        self.calls = [ch.unary_unary(PREDICT_METHOD) for ch in self.channels]
        self.payloads = [payloads[i % len(payloads)] for i in range(clients)]

    def __call__(self, index: int) -> None:
        self.calls[index](self.payloads[index], timeout=60)

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
    parser.add_argument("--duration", type=float, default=3.0,
                        help="seconds per target per figure per round")
    parser.add_argument("--rounds", type=int, default=3,
                        help="times every figure is measured (targets in turn each time); the "
                             "report gives the median and the spread")
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
    parser.add_argument("--swap-only", action="store_true",
                        help="only the swap test, --rounds times per server (to compare "
                             "--server-flags settings quickly)")
    parser.add_argument("--server-flags", default="",
                        help="extra flags for both servers, space-separated, e.g. "
                             "'--swap_load_nice=0'")
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
    if args.server_cpus:
        # TensorFlow, imported next, and the in-process floor's session then see the servers'
        # CPUs only, as the servers (started on them) do; the load generator moves to its CPUs
        # once the floor is loaded (bench_model).
        os.sched_setaffinity(0, args.server_cpus)

    import tensorflow as tf

    if args.rounds < 1:
        parser.error("--rounds must be at least 1")
    workdir = Path(args.workdir or tempfile.mkdtemp(prefix="serving_bench_"))
    cpu = f"{cpu_model()}, {len(allowed)} CPUs"
    print(f"CPU: {cpu}")
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
        everything[model] = bench_model(model, workdir / model, args)
    for model, (results, swaps) in everything.items():
        report(model, results, swaps, cpu)
    print(f"\nload average at end {os.getloadavg()[0]:.2f} (other processes share these CPUs: "
          "compare the columns of one run and the spread across its rounds)")
    if args.json:
        Path(args.json).write_text(json.dumps({
            "cpu": cpu,
            **{model: {"shape": asdict(MODEL_SHAPES[model]),
                       "results": {k: [dict(asdict(v), throughput=v.throughput) for v in runs]
                                   for k, runs in results.items()},
                       "swaps": {k: [asdict(v) for v in runs] for k, runs in swaps.items()}}
               for model, (results, swaps) in everything.items()}}, indent=1))
    return 0


def bench_model(model: str, workdir: Path, args: argparse.Namespace
                ) -> tuple[dict[str, list[Stats]], dict[str, list[SwapResult]]]:
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

    # As the trainer's export does: warmup requests of both shapes (50 candidates and one), which
    # every server replays at load, so the first requests to a swapped-in version do not pay for
    # the session's lazy initialisation (the in-process floor loads without them and is warmed
    # up by the benchmark's own calls).
    client.write_warmup_requests(base / "1", [dict(c, query=market_query(0)) for c in
                                              make_candidates(50, seed=0)], "ranker")
    per_client = bench_requests(max(CLIENT_COUNTS))
    requests = {name: variants[0] for name, variants in per_client.items()}
    payloads = {name: [r.SerializeToString() for r in variants]
                for name, variants in per_client.items()}
    results: dict[str, list[Stats]] = {}

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
              f"--tensorflow_inter_op_parallelism={args.inter_op}", *args.server_flags.split()]
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
    swaps: dict[str, list[SwapResult]] = {}
    floors: dict[str, FloorTarget] = {}
    try:
        for server in servers.values():
            check_server(server, requests["rank50"], expected)
        run_once = {}
        for name, variants in per_client.items():
            calls = [session_call(signature, request) for request in variants]

            def call_session(index: int, calls=calls):
                return servable.run_direct(*calls[index])

            run_once[name] = call_session
            floors[name] = FloorTarget(median_seconds(lambda f=call_session: f(0)) * 1000.0,
                                       payloads[name][0], args.server_cpus)
            results[f"floor/{name}/hold"] = [Stats(f"floor hold {name}", 1, 0, 0, 0.0,
                                                   floors[name].hold_ms, floors[name].hold_ms)]
        runs = [(clients, str(clients)) for clients in CLIENT_COUNTS]
        runs.insert(1, (1, IDLE))
        # Every round measures every figure once, the targets of a figure in turn: a figure's
        # spread across rounds says how far one measurement of it can be trusted here.
        for round_index in range(0 if args.swap_only else args.rounds):
            print(f"-- round {round_index + 1} of {args.rounds}", flush=True)
            for name in requests:
                targets = {"inprocess": InProcessTarget(run_once[name], args.server_cpus),
                           **{key: ServerTarget(server.address, payloads[name])
                              for key, server in servers.items()}}
                for clients, column in runs:
                    if column == IDLE:
                        samples = interleave_calls(targets, args.duration, args.warmup)
                    elif clients == 1:
                        single = {**targets, "floor": floors[name]}
                        if args.client_cpus_set:
                            single["inprocess_cc"] = InProcessTarget(run_once[name],
                                                                     args.client_cpus_set)
                        samples = alternate_blocks(single, clients, args.duration, args.warmup)
                    else:
                        samples = alternate_blocks(targets, clients, args.duration, args.warmup)
                    for key, (lat, failed, seconds) in samples.items():
                        label = f"{TITLES[key]} {name}" + (" (idle)" if column == IDLE else "")
                        stats = _summarize(label, clients, lat, failed, seconds)
                        results.setdefault(f"{key}/{name}/{column}", []).append(stats)
                        print_stats(stats)
        for floor in floors.values():
            floor.close()
        floors.clear()
        for _ in range(args.rounds if args.swap_only else 1):
            for key, server in servers.items():
                swaps.setdefault(key[5:], []).append(
                    swap_test(server, bases[key], payloads["pair"][:SWAP_CLIENTS], args.duration))
    finally:
        for floor in floors.values():
            floor.close()
        for server in servers.values():
            server.stop()
    servable.close()
    return results, swaps


def check_server(server: Server, request, expected) -> None:
    from tensorflow_serving.apis import prediction_service_pb2_grpc

    with grpc.insecure_channel(server.address) as channel:
        stub = prediction_service_pb2_grpc.PredictionServiceStub(channel)
        response = stub.Predict(request, timeout=60)
    got = np.array(response.outputs["score"].float_val)
    want = np.array(expected.float_val)
    if got.shape != want.shape or not np.allclose(got, want, rtol=1e-5, atol=1e-6):
        raise RuntimeError("server scores differ from in-process scores")


@dataclass
class SwapResult:
    """Latency under the same load with and without versions swapping in (one server)."""

    failures: int
    steady: Stats
    swapping: Stats
    load_ms: list[float]


def swap_test(server: Server, base: Path, payloads: list[bytes], steady_seconds: float,
              clients: int = SWAP_CLIENTS, rate: float = SWAP_RATE, swaps: int = 3
              ) -> SwapResult:
    """Pairs at a fixed `rate` (requests/s, from `clients` threads each sending on its own
    schedule) while `swaps` new versions are copied into the base path one after another. A
    latency counts from when the request was sent, not when it was due: on a shared machine the
    load generator's own threads are sometimes held up for tens of milliseconds by other jobs,
    which is not the server's doing. Before each copy the server runs steady for `steady_seconds`; from the copy
    until the predecessor has unloaded (the server loads the new version, warms it up, switches
    to it and unloads the old one under the load) it is swapping. Steady and swapping windows
    alternate, so both see the same background load. Returns both latency distributions, the
    load times the server logged, and the failed requests."""
    load = GrpcClients(server.address, clients, payloads)
    stop = threading.Event()
    phase = ["warmup"]
    samples: dict[str, list[list[float]]] = {"steady": [[] for _ in range(clients)],
                                              "swapping": [[] for _ in range(clients)]}
    failures = [0]

    period = clients / rate

    def worker(index: int) -> None:
        due = time.perf_counter() + period * index / clients
        while not stop.is_set():
            wait = due - time.perf_counter()
            if wait > 0:
                time.sleep(wait)
            start, due = time.perf_counter(), due + period
            try:
                load(index)
            except grpc.RpcError:
                failures[0] += 1
                continue
            elapsed = time.perf_counter() - start
            current = phase[0]
            if current in samples:
                samples[current][index].append(elapsed)

    threads = [threading.Thread(target=worker, args=(i,), daemon=True) for i in range(clients)]
    for thread in threads:
        thread.start()
    time.sleep(0.5)
    seconds = {"steady": 0.0, "swapping": 0.0}
    load_ms = []
    first = max(int(p.name) for p in base.iterdir() if p.name.isdigit()) + 1
    for version in range(first, first + swaps):
        phase[0] = "steady"
        begin = time.perf_counter()
        time.sleep(steady_seconds)
        seconds["steady"] += time.perf_counter() - begin
        phase[0] = "swapping"
        begin = time.perf_counter()
        staging = base.parent / f"staging_{version}"
        shutil.copytree(base / "1", staging)
        os.rename(staging, base / str(version))
        # Each new version replaces its predecessor once it is AVAILABLE.
        server.wait_for(rf"Done unloading servable version \{{name: ranker version: "
                        rf"{version - 1}\}}", timeout=300)
        time.sleep(SWAP_TAIL_S)  # the new version's first requests count as the swap's
        seconds["swapping"] += time.perf_counter() - begin
        phase[0] = "between"
        loaded = server.wait_for(rf"Loaded servable version \{{name: ranker version: "
                                 rf"{version}\}} from .* in (\d+) ms", timeout=10)
        load_ms.append(float(loaded.group(1)))
    stop.set()
    for thread in threads:
        thread.join(60)
    load.close()
    steady, swapping = (
        _summarize(f"{label} ({rate:.0f} pairs/s)", clients,
                   [x for part in samples[label] for x in part], 0, seconds[label])
        for label in ("steady", "swapping"))
    print(f"  swap test: versions {first}-{first + swaps - 1} swapped in under {rate:.0f} pairs/s "
          f"in {seconds['swapping']:.1f} s (loads took {', '.join(f'{ms:.0f}' for ms in load_ms)}"
          f" ms), {failures[0]} failed", flush=True)
    print_stats(steady)
    print_stats(swapping)
    return SwapResult(failures[0], steady, swapping, load_ms)


def print_stats(stats: Stats) -> None:
    print(f"  {stats.label:<32} clients {stats.clients:>2}: p50 {stats.p50_ms:8.3f} ms  "
          f"p99 {stats.p99_ms:8.3f} ms  {stats.throughput:8.1f} req/s  "
          f"({stats.requests} ok, {stats.failures} failed)", flush=True)


def _median(values: list[float]) -> float:
    return float(np.median(values)) if values else float("nan")


def _spread(values: list[float], unit: str = " ms", digits: int = 2) -> str:
    """'median (min-max over N rounds)'."""
    if len(values) == 1:
        return f"{values[0]:.{digits}f}{unit} (1 round)"
    return (f"{_median(values):.{digits}f}{unit} (rounds {min(values):.{digits}f}-"
            f"{max(values):.{digits}f})")


def report(model: str, results: dict[str, list[Stats]], swaps: dict[str, list[SwapResult]],
           cpu: str) -> None:
    if "inprocess/pair/1" not in results:  # --swap-only
        print(f"\n== ranker '{model}' on {cpu}: swap test only ==")
        report_swaps(results, swaps)
        return
    rounds = len(results["inprocess/pair/1"])
    print(f"\n== ranker '{model}' {MODEL_SHAPES[model]} on {cpu}: p50 / p99 ms, requests/s, "
          f"median of {rounds} rounds ==")
    header = f"{'request':<8} {'clients':>7} | {'in-process':>26} | {'gRPC, batching off':>26} |" \
             f" {'gRPC, batching on':>26}"
    print(header)
    for name in ("rank50", "pair"):
        for column in ("1", IDLE, *(str(c) for c in CLIENT_COUNTS[1:])):
            cells = []
            for prefix in ("inprocess", "grpc_off", "grpc_on"):
                runs = results[f"{prefix}/{name}/{column}"]
                cells.append(f"{_median([s.p50_ms for s in runs]):7.2f} / "
                             f"{_median([s.p99_ms for s in runs]):7.2f} "
                             f"{_median([s.throughput for s in runs]):7.0f}/s")
            print(f"{name:<8} {column:>7} | " + " | ".join(f"{c:>26}" for c in cells))
    print(f"({IDLE}: one client calling the three targets in turn, call by call, so each server "
          "has been idle between its calls)")

    print(f"\n== goals, ranker '{model}', {cpu}: median over {rounds} rounds (each round "
          "measures every target in turn), spread = lowest-highest round ==")
    for name in ("rank50", "pair"):
        per_round = list(zip(results[f"inprocess/{name}/1"], results[f"grpc_off/{name}/1"],
                             results[f"floor/{name}/1"], strict=True))
        inprocess = [r[0].p50_ms for r in per_round]
        # With --client-cpus the session is also called from a thread on the clients' CPUs; the
        # faster of the two is the reference, so the server's overhead is never understated.
        # (On the shared 2-core machines the call from the servers' CPU was sometimes 2x slower
        # than both the server and the same call from the other CPU.)
        other = results.get(f"inprocess_cc/{name}/1")
        if other:
            print(f"{name}, 1 client, in-process p50 with the caller on the servers' CPUs "
                  f"{_spread(inprocess)}, on the clients' CPUs {_spread([o.p50_ms for o in other])}"
                  "; the faster of the two, round by round, is the reference below")
            inprocess = [min(a, b.p50_ms) for a, b in zip(inprocess, other, strict=True)]
        overhead = [r[1].p50_ms - i for r, i in zip(per_round, inprocess, strict=True)]
        floor = [r[2].p50_ms for r in per_round]
        own = [o - f for o, f in zip(overhead, floor, strict=True)]
        idle = [s.p50_ms - i.p50_ms for s, i in zip(results[f"grpc_off/{name}/{IDLE}"],
                                                     results[f"inprocess/{name}/{IDLE}"],
                                                     strict=True)]
        goal = OWN_GOAL_MS[name]
        verdict = "met" if round(_median(own), 2) <= goal else "NOT met"  # as printed
        if _median(overhead) < 0:
            verdict = ("not measured: the in-process floor was slower than the server itself, "
                       "see docs/serving-performance.md")
        hold = results[f"floor/{name}/hold"][0].p50_ms
        print(f"{name}, 1 client, p50: in-process {_spread(inprocess)}; gRPC overhead "
              f"{_spread(overhead)}")
        print(f"  = transport floor {_spread(floor)} (a Python gRPC server doing no work, holding "
              f"each call {hold:.2f} ms)")
        print(f"  + the server's own {_spread(own)} (goal <= {goal} ms: {verdict})")
        print(f"  calls to an idle server: overhead {_spread(idle)}")
    for name in ("pair", "rank50"):
        ratios, ons, offs = [], [], []
        for on_run, off_run in zip(results[f"grpc_on/{name}/32"], results[f"grpc_off/{name}/32"],
                                   strict=True):
            ons.append(on_run.throughput)
            offs.append(off_run.throughput)
            ratios.append(on_run.throughput / off_run.throughput if off_run.throughput
                          else float("nan"))
        inprocess = [s.throughput for s in results[f"inprocess/{name}/32"]]
        goal = (" (goal >= 2x: " + ("met)" if round(_median(ratios), 2) >= 2 else "NOT met)")
                if name == "pair" else "")
        print(f"batching throughput ratio at 32 clients, {name}: {_spread(ratios, 'x')}{goal}; "
              f"{_median(ons):.0f} vs {_median(offs):.0f} req/s, in-process unbatched "
              f"{_median(inprocess):.0f} req/s, {cpu}")
    report_swaps(results, swaps)
    failed = sum(s.failures for runs in results.values() for s in runs)
    print(f"failed requests during the latency/throughput runs: {failed}")


def report_swaps(results: dict[str, list[Stats]], swaps: dict[str, list[SwapResult]]) -> None:
    """The swap goal: p99 while versions swap in against steady p99, and no failure."""
    total = sum(swap.failures for runs in swaps.values() for swap in runs)
    inprocess_pair = _median([s.p50_ms for s in results.get("inprocess/pair/1", [])])
    for key, runs in swaps.items():
        ratios = [swap.swapping.p99_ms / swap.steady.p99_ms for swap in runs]
        verdict = "met" if round(_median(ratios), 2) <= 1.5 and total == 0 else "NOT met"
        print(f"version swaps, batching {key}, {SWAP_RATE:.0f} pairs/s from {SWAP_CLIENTS} clients, "
              f"{len(runs)} x 3 swaps: p99 while swapping / steady p99 = {_spread(ratios, 'x')} "
              f"(goal <= 1.5x, no failure: {verdict})")
        print(f"  p99 {_spread([r.swapping.p99_ms for r in runs])} swapping vs "
              f"{_spread([r.steady.p99_ms for r in runs])} steady; p50 "
              f"{_median([r.swapping.p50_ms for r in runs]):.2f} vs "
              f"{_median([r.steady.p50_ms for r in runs]):.2f} ms; a load took "
              f"{_median([ms for r in runs for ms in r.load_ms]):.0f} ms (median)"
              + (f"; in-process pair p50 {inprocess_pair:.2f} ms"
                 if "inprocess/pair/1" in results else ""))
    print(f"failed requests while versions swapped in: {total} (goal 0: "
          f"{'met' if total == 0 else 'NOT met'})")


def cpu_model() -> str:
    """The processor's name from /proc/cpuinfo (Linux), else platform's guess."""
    import platform

    try:
        with open("/proc/cpuinfo", encoding="utf-8") as f:
            for line in f:
                if line.startswith("model name"):
                    return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or "unknown CPU"


if __name__ == "__main__":
    sys.exit(main())
