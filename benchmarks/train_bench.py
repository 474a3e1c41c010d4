"""Benchmark of the trainer: training and scoring throughput next to what the CPU can do.

What it measures, in one run (numbers are printed, nothing is asserted), on search logs generated
by the market simulator and the DEFAULT TrainConfig (only epochs and the data size are the
benchmark's):
  * training examples/s in steady state: step times from a callback, the first steps (tracing)
    left out, validation not counted;
  * scoring pairs/s through the exported SavedModel's serving_default at batch 1 and batch 64
    (tokenization included, as TF Serving would run it);
  * the model's FLOPs per example (BertEncoder.flops_per_example() plus the head; training is
    taken as 3x the forward pass), the GFLOP/s training achieves, a float32 1024x1024 matmul's
    GFLOP/s measured in the same run, and their ratio;
  * partial update mode's trainable parameters against full mode's;
  * the click head on (default click_loss_weight) and off (0): validation AUC after the same
    short run on the same data.

With --profile, 20 steps of the first run are traced with the TF profiler (and left out of the
steady-state rate) and the op types that take the step time are printed.

Usage: .venv/bin/python benchmarks/train_bench.py [--examples 4096] [--eval-examples 4096] [--epochs 2]
       [--profile] [--json results.json]
"""
from __future__ import annotations

import argparse
import contextlib
import dataclasses
import datetime
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

import numpy as np  # noqa: E402
import tensorflow as tf  # noqa: E402
import tf_keras as keras  # noqa: E402

from freshrank.market import Market  # noqa: E402
from trainer import task  # noqa: E402
from trainer.bert import BertEncoder  # noqa: E402
from trainer.config import ID_FEATURES, TrainConfig  # noqa: E402
from trainer.model import Vocabularies, apply_update_mode, build_core  # noqa: E402

SKIP_STEPS = 3  # the first steps trace and warm up; not steady state
PROFILE_STEPS = (10, 30)  # [first, last) step traced by --profile
# Executor bookkeeping events that enclose the op events in the host trace.
PROFILE_WRAPPERS = {"Process", "ParallelFor", "Start"}
SERVING_KEYS = ("query", "title", "brand", "category", "product_id", "price")


# ---------------------------------------------------------------- data


def write_market_split(path: Path, rows: list[list]) -> None:
    """Market rows (SPAN_COLUMNS order) as the gzip tf.Example TFRecords ExampleGen writes."""
    path.mkdir(parents=True, exist_ok=True)
    with tf.io.TFRecordWriter(str(path / "data_tfrecord-00000-of-00001.gz"), options="GZIP") as writer:
        for rid, _, _, query, pid, title, brand, category, price, _, clicked, purchased in rows:
            f = {k: tf.train.Feature(bytes_list=tf.train.BytesList(value=[str(v).encode()]))
                 for k, v in (("request_id", rid), ("query", query), ("product_id", pid), ("title", title),
                              ("brand", brand), ("category", category))}
            f["price"] = tf.train.Feature(float_list=tf.train.FloatList(value=[float(price)]))
            f["clicked"] = tf.train.Feature(int64_list=tf.train.Int64List(value=[int(clicked)]))
            f["purchased"] = tf.train.Feature(int64_list=tf.train.Int64List(value=[int(purchased)]))
            writer.write(tf.train.Example(features=tf.train.Features(feature=f)).SerializeToString())


def make_data(root: Path, n_train: int, n_eval: int) -> tuple[list[list], list[list]]:
    market = Market(seed=7)
    day = datetime.date(2026, 11, 3)
    page = 10
    train_rows: list[list] = []
    d = day
    while len(train_rows) < n_train:
        train_rows += market.simulate_day_fields(d, max(1, (n_train - len(train_rows)) // page + 1))
        d += datetime.timedelta(days=1)
    eval_rows = market.simulate_day_fields(d, max(1, n_eval // page + 1))[:n_eval]
    write_market_split(root / "Split-train", train_rows[:n_train])
    write_market_split(root / "Split-eval", eval_rows)
    return train_rows[:n_train], eval_rows


# ---------------------------------------------------------------- measurements


class StepTimes(keras.callbacks.Callback):
    """Wall time of each training step (validation excluded), by epoch; optionally profiles some."""

    _supports_tf_logs = True  # do not turn the logs into numpy (an extra sync per step)

    def __init__(self, profile_dir: str | None = None):
        super().__init__()
        self.epochs: list[list[float]] = []
        self.profile_dir = profile_dir
        self.profiled = False

    def on_epoch_begin(self, epoch, logs=None):
        self.epochs.append([time.perf_counter()])

    def on_train_batch_begin(self, batch, logs=None):
        if self.profile_dir and len(self.epochs) == 1 and batch == PROFILE_STEPS[0]:
            tf.profiler.experimental.start(self.profile_dir)

    def on_train_batch_end(self, batch, logs=None):
        self.epochs[-1].append(time.perf_counter())
        if self.profile_dir and len(self.epochs) == 1 and batch == PROFILE_STEPS[1] - 1:
            tf.profiler.experimental.stop()
            self.profiled = True

    def steady_step_seconds(self) -> list[float]:
        steps = []
        for i, marks in enumerate(self.epochs):
            deltas = np.diff(marks).tolist()  # deltas[k]: step k (step 0 includes the trace)
            if i == 0:
                profiled = range(*PROFILE_STEPS) if self.profiled else range(0)
                steps += [d for k, d in enumerate(deltas) if k >= SKIP_STEPS and k not in profiled]
            else:
                steps += deltas[1:]
        return steps


def op_breakdown(profile_dir: str, steps: int) -> list[tuple[str, float, float]]:
    """(op type, ms per step, calls per step) from the host trace, summed over TF's compute threads."""
    import collections
    import glob

    from tensorflow.tsl.profiler.protobuf import xplane_pb2

    seconds, calls = collections.Counter(), collections.Counter()
    for path in glob.glob(os.path.join(profile_dir, "**", "*.xplane.pb"), recursive=True):
        space = xplane_pb2.XSpace()
        space.ParseFromString(Path(path).read_bytes())
        for plane in space.planes:
            names = {k: v.name for k, v in plane.event_metadata.items()}
            for line in plane.lines:
                if not line.name.startswith("tf_Compute"):
                    continue
                for event in line.events:
                    op = names.get(event.metadata_id, "?").split(":")[-1]
                    if op in PROFILE_WRAPPERS:
                        continue
                    seconds[op] += event.duration_ps / 1e12
                    calls[op] += 1
    return [(op, 1000 * s / steps, calls[op] / steps) for op, s in seconds.most_common()]


@contextlib.contextmanager
def timed_fit(timer: StepTimes):
    """Adds `timer` to the callbacks of the Model.fit call inside task.train."""
    original = keras.Model.fit

    def fit(self, *args, **kwargs):
        kwargs["callbacks"] = list(kwargs.get("callbacks") or []) + [timer]
        return original(self, *args, **kwargs)

    keras.Model.fit = fit
    try:
        yield timer
    finally:
        keras.Model.fit = original


def run_train(config: TrainConfig, data: Path, work: Path, name: str,
              profile_dir: str | None = None) -> tuple[dict, StepTimes, Path]:
    serving = work / name / "serving"
    with timed_fit(StepTimes(profile_dir)) as timer:
        facts = task.train(config, [str(data / "Split-train" / "*")], [str(data / "Split-eval" / "*")],
                           str(serving), str(work / name / "logs"), base_model=None)
    return facts, timer, serving


def matmul_gflops(n: int = 1024, seconds: float = 3.0) -> float:
    a = tf.random.normal([n, n])
    b = tf.random.normal([n, n])

    @tf.function
    def chain(x, reps):
        # Dependent products, rescaled so values stay finite; the scaling is O(n^2), negligible.
        for _ in tf.range(reps):
            x = tf.linalg.matmul(x, b) * (1.0 / n)
        return x

    chain(a, tf.constant(2)).numpy()  # trace + warm up
    reps, best = 4, 0.0
    deadline = time.perf_counter() + seconds
    while time.perf_counter() < deadline:
        t = time.perf_counter()
        chain(a, tf.constant(reps)).numpy()
        dt = time.perf_counter() - t
        best = max(best, 2.0 * n**3 * reps / dt / 1e9)
        reps = min(reps * 2, 64) if dt < 0.3 else reps
    return best


def scoring_pairs_per_second(serving: Path, rows: list[list], batch: int, seconds: float) -> float:
    import tensorflow_text  # noqa: F401  the SavedModel's tokenizer ops

    fn = tf.saved_model.load(str(serving)).signatures["serving_default"]
    picked = [rows[i % len(rows)] for i in range(batch)]
    inputs = {
        "query": tf.constant([r[3] for r in picked]), "product_id": tf.constant([r[4] for r in picked]),
        "title": tf.constant([r[5] for r in picked]), "brand": tf.constant([r[6] for r in picked]),
        "category": tf.constant([r[7] for r in picked]),
        "price": tf.constant([float(r[8]) for r in picked], tf.float32),
    }
    for _ in range(3):
        fn(**inputs)["score"].numpy()
    calls, started = 0, time.perf_counter()
    while time.perf_counter() - started < seconds:
        fn(**inputs)["score"].numpy()
        calls += 1
    return calls * batch / (time.perf_counter() - started)


def auc_standard_error(auc: float, positives: int, negatives: int) -> float:
    """Hanley & McNeil (1982): how far two AUCs on this eval set may differ by chance."""
    q1, q2 = auc / (2 - auc), 2 * auc * auc / (1 + auc)
    var = (auc * (1 - auc) + (positives - 1) * (q1 - auc * auc) + (negatives - 1) * (q2 - auc * auc))
    return float(np.sqrt(max(var, 0.0) / (positives * negatives)))


def head_flops(config: TrainConfig) -> int:
    concat = config.bert.hidden_size + len(ID_FEATURES) * config.id_embedding_dim + 1
    return 2 * concat * config.head_hidden_size + 2 * 2 * config.head_hidden_size  # dense + 2 logits


def parameter_counts(config: TrainConfig, vocab_size: int, work: Path) -> tuple[int, int, int]:
    words = ["[PAD]", "[UNK]", "[CLS]", "[SEP]", "[MASK]"] + [f"w{i}" for i in range(vocab_size - 5)]
    path = str(work / "vocab.txt")
    with open(path, "w") as f:
        f.write("\n".join(words) + "\n")
    ids = {f: ["[UNK]"] + [f"{f}{i}" for i in range(100)] for f in ID_FEATURES}
    vocabs = Vocabularies(path, words, ids, 0.0, 1.0)
    full_model = build_core(config, vocabs)
    full = apply_update_mode(full_model, config)
    partial = apply_update_mode(build_core(dataclasses.replace(config, update_mode="partial"), vocabs),
                                dataclasses.replace(config, update_mode="partial"))
    return full, partial, int(full_model.count_params())


# ---------------------------------------------------------------- main


def main() -> None:
    work = Path(tempfile.mkdtemp(prefix="freshrank-train-bench-"))
    try:
        bench(work)
    finally:
        shutil.rmtree(work, ignore_errors=True)


def bench(work: Path) -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--examples", type=int, default=4096, help="training examples")
    parser.add_argument("--eval-examples", type=int, default=4096)
    parser.add_argument("--epochs", type=int, default=2)
    parser.add_argument("--profile", action="store_true", help="trace 20 steps and print the op types' time")
    parser.add_argument("--json", help="also write the results here")
    args = parser.parse_args()
    started = time.perf_counter()
    train_rows, eval_rows = make_data(work / "data", args.examples, args.eval_examples)
    config = TrainConfig(epochs=args.epochs)  # everything else: the defaults
    results: dict = {
        "examples": args.examples, "eval_examples": args.eval_examples, "epochs": args.epochs,
        "batch_size": config.batch_size, "purchase_rate": float(np.mean([r[11] for r in train_rows])),
        "click_rate": float(np.mean([r[10] for r in train_rows])), "cpus": os.cpu_count(),
        "eval_purchases": int(sum(int(r[11]) for r in eval_rows)),
    }

    results["matmul_gflops"] = matmul_gflops()

    profile_dir = str(work / "profile") if args.profile else None
    facts, timer, serving = run_train(config, work / "data", work, "click_on", profile_dir)
    steps = timer.steady_step_seconds()
    results["steady_steps"] = len(steps)
    results["step_ms_median"] = 1000 * statistics.median(steps)
    results["train_examples_per_s"] = config.batch_size * len(steps) / sum(steps)
    results["train_seconds_total"] = facts["train_seconds"]
    results["val_auc_click_on"] = facts["best_val_auc"]

    vocab_size = len(open(serving / "assets" / "vocab.txt", encoding="utf-8").read().splitlines())
    encoder = BertEncoder(dataclasses.replace(config.bert, vocab_size=vocab_size))
    forward = encoder.flops_per_example() + head_flops(config)
    results["vocab_size"] = vocab_size
    results["forward_mflop_per_example"] = forward / 1e6
    results["train_gflops"] = 3 * forward * results["train_examples_per_s"] / 1e9
    results["train_vs_matmul"] = results["train_gflops"] / results["matmul_gflops"]

    results["score_pairs_per_s_batch1"] = scoring_pairs_per_second(serving, eval_rows, 1, 3.0)
    results["score_pairs_per_s_batch64"] = scoring_pairs_per_second(serving, eval_rows, 64, 3.0)

    full, partial, total = parameter_counts(config, vocab_size, work)
    results.update(trainable_full=full, trainable_partial=partial, total_parameters=total)

    off, _, _ = run_train(dataclasses.replace(config, click_loss_weight=0.0), work / "data", work, "click_off")
    results["val_auc_click_off"] = off["best_val_auc"]
    results["val_auc_standard_error"] = auc_standard_error(
        results["val_auc_click_on"], results["eval_purchases"], len(eval_rows) - results["eval_purchases"])
    results["wall_seconds"] = time.perf_counter() - started

    r = results
    print()
    print(f"freshrank trainer benchmark: {r['examples']} train / {r['eval_examples']} eval examples "
          f"(market simulator; purchase rate {r['purchase_rate']:.3f}, click rate {r['click_rate']:.3f}), "
          f"default TrainConfig (batch {r['batch_size']}, seq {config.bert.max_seq_length}, hidden "
          f"{config.bert.hidden_size}, {config.bert.num_layers} layers, vocab {r['vocab_size']}), "
          f"{r['epochs']} epochs, {r['cpus']} CPUs")
    print(f"  training              {r['train_examples_per_s']:9.0f} examples/s  (steady state: "
          f"{r['steady_steps']} steps, median {r['step_ms_median']:.1f} ms/step; whole fit "
          f"{r['train_seconds_total']:.1f} s incl. tracing and validation)")
    print(f"  scoring, batch 1      {r['score_pairs_per_s_batch1']:9.0f} pairs/s  (serving_default, tokenization included)")
    print(f"  scoring, batch 64     {r['score_pairs_per_s_batch64']:9.0f} pairs/s")
    print(f"  FLOPs per example     {r['forward_mflop_per_example']:9.2f} MFLOP forward, x3 for a training step")
    print(f"  training achieves     {r['train_gflops']:9.2f} GFLOP/s")
    print(f"  matmul 1024x1024 f32  {r['matmul_gflops']:9.2f} GFLOP/s  (same process, same run)")
    print(f"  training / matmul     {r['train_vs_matmul']:9.3f}")
    print(f"  trainable parameters  {r['trainable_full']:9d} full, {r['trainable_partial']} partial "
          f"({r['trainable_partial'] / r['trainable_full']:.1%}; total {r['total_parameters']} with 100 ids per feature)")
    print(f"  val AUC (purchase)    {r['val_auc_click_on']:9.4f} click head on (weight {config.click_loss_weight}), "
          f"{r['val_auc_click_off']:.4f} off  (best epoch; {r['eval_purchases']} purchases in the eval split, "
          f"standard error ~{r['val_auc_standard_error']:.3f})")
    print(f"  benchmark wall time   {r['wall_seconds']:9.1f} s")
    if timer.profiled:
        steps = PROFILE_STEPS[1] - PROFILE_STEPS[0]
        ops = op_breakdown(profile_dir, steps)
        total = sum(ms for _, ms, _ in ops)
        matmul = sum(ms for op, ms, _ in ops if "MatMul" in op)
        results["profile"] = {op: ms for op, ms, _ in ops[:40]}
        print(f"  profile of {steps} steps: {total:.1f} ms of op time per step over TF's threads, "
              f"{matmul:.1f} ms ({matmul / total:.0%}) in (batch) matmuls; top op types:")
        for op, ms, n in ops[:15]:
            print(f"    {op:28s} {ms:7.2f} ms/step  {n:6.1f} calls/step")
    if args.json:
        Path(args.json).write_text(json.dumps(results, indent=1))


if __name__ == "__main__":
    main()
