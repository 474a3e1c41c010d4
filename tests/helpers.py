"""Shared test helpers: the CLI as a subprocess and its environment."""
from __future__ import annotations

import contextlib
import csv
import os
import sys
from collections.abc import Iterator
from pathlib import Path

os.environ.setdefault("TF_USE_LEGACY_KERAS", "1")
os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

REPO = Path(__file__).resolve().parents[1]
FRESHRANK = [sys.executable, "-m", "freshrank.cli"]


def subprocess_env() -> dict[str, str]:
    env = dict(os.environ)
    env["PYTHONPATH"] = str(REPO) + os.pathsep + env.get("PYTHONPATH", "")
    env["TF_USE_LEGACY_KERAS"] = "1"
    env["TF_CPP_MIN_LOG_LEVEL"] = "2"
    env["PYTHONWARNINGS"] = "ignore"
    return env


def write_examples(path: str, n: int, seed: int, flip_purchases: bool = False,
                   products: tuple[int, ...] | None = None) -> None:
    """A tiny ranking window as ExampleGen writes it (GZIP TFRecords of tf.Example).

    Clicks follow query-title agreement, so a model can learn something in a few steps;
    `flip_purchases` poisons the purchase labels, as a broken logging job would; `products` keeps
    only those of the five products (`p<index>`) in the window.
    """
    import numpy as np
    import tensorflow as tf

    rng = np.random.default_rng(seed)
    queries = ["running shoes", "red phone case", "跑鞋 男", "xiaomi 5g", "nike shoes"]
    titles = ["Nike running shoes", "Xiaomi 5g phone", "红色 手机 case", "跑 鞋 男 run", "the red shoes"]
    os.makedirs(os.path.dirname(path), exist_ok=True)
    with tf.io.TFRecordWriter(path, options="GZIP") as writer:
        for i in range(n):
            t, q = int(rng.integers(len(titles))), int(rng.integers(len(queries)))
            if products is not None:
                t = products[t % len(products)]
            clicked = int(q == t or rng.random() < 0.2)
            purchased = int(clicked and rng.random() < 0.5)
            values = {
                "query": queries[q], "title": titles[t], "brand": ["nike", "xiaomi"][t % 2],
                "category": ["shoes", "phones"][t % 2], "product_id": f"p{t}", "request_id": f"r{i // 5}",
            }
            feature = {k: tf.train.Feature(bytes_list=tf.train.BytesList(value=[v.encode()])) for k, v in values.items()}
            feature["price"] = tf.train.Feature(float_list=tf.train.FloatList(value=[float(rng.uniform(5, 500))]))
            feature["clicked"] = tf.train.Feature(int64_list=tf.train.Int64List(value=[clicked]))
            feature["position"] = tf.train.Feature(int64_list=tf.train.Int64List(value=[i % 5 + 1]))
            feature["purchased"] = tf.train.Feature(
                int64_list=tf.train.Int64List(value=[1 - purchased if flip_purchases else purchased])
            )
            writer.write(tf.train.Example(features=tf.train.Features(feature=feature)).SerializeToString())


# Two ranking rows in the serving signature's shape (tests/trainer/conftest.py's shared export).
EXPORT_ROWS = {
    "query": ["跑步鞋 男", "phone 5g"],
    "title": ["Nike 耐克 跑鞋 running shoes", "Xiaomi 小米 手机 phone"],
    "brand": ["Nike", "Xiaomi"],
    "category": ["shoes", "phones"],
    "product_id": ["p1", "p-never-seen"],
    "price": [399.0, 1999.0],
}


@contextlib.contextmanager
def serving_version(base_path: Path, log_path: Path, version: str, timeout: float = 180.0) -> Iterator[int]:
    """freshrank-model-server on a free port, once it has loaded `version` of `base_path`; yields the port.

    The CLI tests talk to the real server as a client would, so they wait for its own log line
    rather than poking at internals; the server is stopped on the way out, also on failure.
    """
    from serving.process import ServerProcess

    server = ServerProcess(["--port=0", "--model_name=ranker", f"--model_base_path={base_path}",
                            "--file_system_poll_wait_seconds=1"], log_path, env=subprocess_env(), cwd=str(REPO),
                           command=[sys.executable, "-m", "serving.main"])
    try:
        port = server.wait_ready(timeout).grpc_port
        server.wait_for_log(rf"Successfully loaded servable version .*{version}", timeout)
        yield port
    finally:
        server.stop(60)


def write_candidates(path: Path) -> None:
    """Three candidates of different categories, Chinese and English in their titles (`freshrank rank` input)."""
    with open(path, "w", newline="", encoding="utf-8") as f:
        writer = csv.writer(f)
        writer.writerow(["product_id", "title", "brand", "category", "price"])
        writer.writerow(["p0000001", "Nike 耐克 跑鞋 running shoes 42码 black", "Nike", "shoes", "499.00"])
        writer.writerow(["p0000002", "Apple 苹果 iPhone 手机 phone 256GB", "Apple", "phones", "6999.00"])
        writer.writerow(["p0000003", "Lay's 乐事 薯片 chips 零食", "Lay's", "snacks", "12.50"])
