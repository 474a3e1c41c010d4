"""Reading ExampleGen's TFRecords for training, evaluation and the one-pass window scan."""
from __future__ import annotations

import collections
import dataclasses
import math
from collections.abc import Callable, Sequence

import numpy as np
import tensorflow as tf

from trainer.config import CLICK_KEY, ID_FEATURES, LABEL_KEY, PRICE_FEATURE, TEXT_FEATURES


def feature_spec(with_labels: bool = True) -> dict[str, tf.io.FixedLenFeature]:
    spec = {name: tf.io.FixedLenFeature([], tf.string, default_value="") for name in TEXT_FEATURES}
    spec[PRICE_FEATURE] = tf.io.FixedLenFeature([], tf.float32, default_value=0.0)
    if with_labels:
        spec[LABEL_KEY] = tf.io.FixedLenFeature([], tf.int64, default_value=0)
        spec[CLICK_KEY] = tf.io.FixedLenFeature([], tf.int64, default_value=0)
    return spec


def list_files(patterns: Sequence[str]) -> list[str]:
    files: list[str] = []
    for pattern in patterns:
        found = sorted(tf.io.gfile.glob(pattern))
        if not found:
            raise FileNotFoundError(f"no example files match {pattern}: the window's split is empty")
        files.extend(found)
    return files


def records(patterns: Sequence[str]) -> tf.data.Dataset:
    return tf.data.TFRecordDataset(list_files(patterns), compression_type="GZIP")


def make_dataset(
    patterns: Sequence[str],
    batch_size: int,
    shuffle: bool,
    seed: int,
    repeat: bool = False,
    preprocess: Callable[[dict], dict] | None = None,
) -> tf.data.Dataset:
    """Batches of (features, {'purchase_logit': purchased, 'click_logit': clicked}).

    With `preprocess` the features are the model's numeric inputs, computed in parallel here.
    """
    spec = feature_spec()
    ds = records(patterns)
    if shuffle:
        ds = ds.shuffle(50_000, seed=seed, reshuffle_each_iteration=True)
    if repeat:
        ds = ds.repeat()
    ds = ds.batch(batch_size, drop_remainder=repeat)

    def split(serialized):
        parsed = tf.io.parse_example(serialized, spec)
        labels = {
            "purchase_logit": tf.cast(parsed.pop(LABEL_KEY), tf.float32),
            "click_logit": tf.cast(parsed.pop(CLICK_KEY), tf.float32),
        }
        return (preprocess(parsed) if preprocess else parsed), labels

    options = tf.data.Options()
    # Several workers may read one file: shard by element so no worker starves.
    options.experimental_distribute.auto_shard_policy = tf.data.experimental.AutoShardPolicy.DATA
    return ds.map(split, num_parallel_calls=tf.data.AUTOTUNE).prefetch(tf.data.AUTOTUNE).with_options(options)


@dataclasses.dataclass
class WindowScan:
    """One pass over the training split: sizes, id counts, price statistics and text for a vocabulary."""

    num_examples: int
    id_counts: dict[str, collections.Counter]
    price_log_mean: float
    price_log_std: float
    texts: list[str]


def scan(patterns: Sequence[str], max_texts: int = 200_000) -> WindowScan:
    spec = {k: v for k, v in feature_spec(with_labels=False).items()}
    counts = {f: collections.Counter() for f in ID_FEATURES}
    texts: list[str] = []
    n, s, ss = 0, 0.0, 0.0
    for batch in records(patterns).batch(4096).map(lambda x: tf.io.parse_example(x, spec)):
        size = int(batch[PRICE_FEATURE].shape[0])
        n += size
        logp = np.log1p(np.maximum(batch[PRICE_FEATURE].numpy(), 0.0))
        s += float(logp.sum())
        ss += float((logp**2).sum())
        for f in ID_FEATURES:
            counts[f].update(x.decode("utf-8", "replace") for x in batch[f].numpy())
        if len(texts) < max_texts:
            q = batch["query"].numpy()
            d = [
                b" ".join(parts)
                for parts in zip(batch["title"].numpy(), batch["brand"].numpy(), batch["category"].numpy(), strict=True)
            ]
            texts.extend(x.decode("utf-8", "replace") for x in q)
            texts.extend(x.decode("utf-8", "replace").replace("_", " ") for x in d)
    if n == 0:
        raise ValueError("the training window holds no examples")
    mean = s / n
    std = math.sqrt(max(ss / n - mean * mean, 1e-12))
    return WindowScan(n, counts, mean, std, texts[:max_texts])
