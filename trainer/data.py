"""Reading ExampleGen's TFRecords for training, evaluation and the one-pass window scan."""
from __future__ import annotations

import collections
import dataclasses
import math
from collections.abc import Callable, Sequence

import numpy as np
import tensorflow as tf

from trainer.config import (
    CLICK_KEY,
    CLICK_LIST_OUTPUT,
    CLICK_OUTPUT,
    GROUP_KEY,
    ID_FEATURES,
    LABEL_KEY,
    POSITION_KEY,
    PRICE_FEATURE,
    PURCHASE_LIST_OUTPUT,
    PURCHASE_OUTPUT,
    TEXT_FEATURES,
    USER_KEY,
)


def feature_spec(with_labels: bool = True, user: bool = True) -> dict[str, tf.io.FixedLenFeature]:
    """What serving takes (`with_labels=False`), or what a logged impression holds for training.

    `user`: whether `user_id` is read (every log has it; only models with user features serve it).
    """
    names = TEXT_FEATURES + ((USER_KEY,) if user else ())
    spec = {name: tf.io.FixedLenFeature([], tf.string, default_value="") for name in names}
    spec[PRICE_FEATURE] = tf.io.FixedLenFeature([], tf.float32, default_value=0.0)
    if with_labels:
        spec[LABEL_KEY] = tf.io.FixedLenFeature([], tf.int64, default_value=0)
        spec[CLICK_KEY] = tf.io.FixedLenFeature([], tf.int64, default_value=0)
        # 0 where a log lacks it: the tower's row 0 (clipped to 1), i.e. treated as the top slot.
        spec[POSITION_KEY] = tf.io.FixedLenFeature([], tf.int64, default_value=0)
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
    """Batches of (features, {'purchase': purchased, 'click': clicked}).

    With `preprocess` the features are the model's numeric inputs, computed in parallel here;
    the logged position rides along as the training-only `position` input either way.
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
            PURCHASE_OUTPUT: tf.cast(parsed.pop(LABEL_KEY), tf.float32),
            CLICK_OUTPUT: tf.cast(parsed.pop(CLICK_KEY), tf.float32),
        }
        position = parsed.pop(POSITION_KEY)
        features = preprocess(parsed) if preprocess else parsed
        return {**features, POSITION_KEY: position}, labels

    options = tf.data.Options()
    # Several workers may read one file: shard by element so no worker starves.
    options.experimental_distribute.auto_shard_policy = tf.data.experimental.AutoShardPolicy.DATA
    return ds.map(split, num_parallel_calls=tf.data.AUTOTUNE).prefetch(tf.data.AUTOTUNE).with_options(options)


PAGE_WEIGHT = "valid"  # 1 for a logged impression, 0 for the padding that fills a page to list_size
MAX_LIST_SIZE = 50


def make_page_dataset(
    patterns: Sequence[str],
    pages_per_batch: int,
    list_size: int,
    shuffle: bool,
    seed: int,
    repeat: bool = False,
    preprocess: Callable[[dict], dict] | None = None,
    drop_remainder: bool = False,
) -> tf.data.Dataset:
    """Batches of whole result pages, flattened: (features, labels, sample weights), rows = pages x list_size.

    A page (the rows of one `request_id`) is the unit a listwise loss compares within, so pages
    are grouped, padded to `list_size` rows (sample weight 0), shuffled as pages and batched.
    Grouping keys on a hash of `request_id` and does not need a page's rows to be adjacent;
    rows of a page beyond `list_size` form a further list. The labels of the listwise outputs
    carry -1 on padding so the loss can leave it out of the softmax.
    """
    spec = feature_spec()
    spec[GROUP_KEY] = tf.io.FixedLenFeature([], tf.string, default_value="")
    ds = records(patterns).batch(1024).map(lambda x: tf.io.parse_example(x, spec),
                                           num_parallel_calls=tf.data.AUTOTUNE).unbatch()
    ds = ds.group_by_window(
        key_func=lambda row: tf.strings.to_hash_bucket_fast(row[GROUP_KEY], 2**62),
        reduce_func=lambda _key, rows: rows.batch(list_size),
        window_size=list_size,
    )

    def pad(page):
        n = tf.shape(page[GROUP_KEY])[0]
        out = {k: tf.pad(v, [[0, list_size - n]]) for k, v in page.items() if k != GROUP_KEY}
        out[PAGE_WEIGHT] = tf.pad(tf.ones([n], tf.float32), [[0, list_size - n]])
        return out

    ds = ds.map(pad, num_parallel_calls=tf.data.AUTOTUNE)
    if shuffle:
        ds = ds.shuffle(20_000, seed=seed, reshuffle_each_iteration=True)
    if repeat:
        ds = ds.repeat()
    ds = ds.batch(pages_per_batch, drop_remainder=repeat or drop_remainder)

    def split(pages):
        rows = {k: tf.reshape(v, [-1]) for k, v in pages.items()}
        valid = rows.pop(PAGE_WEIGHT)
        purchased = tf.cast(rows.pop(LABEL_KEY), tf.float32)
        clicked = tf.cast(rows.pop(CLICK_KEY), tf.float32)
        labels = {PURCHASE_OUTPUT: purchased, CLICK_OUTPUT: clicked,
                  PURCHASE_LIST_OUTPUT: tf.where(valid > 0, purchased, -1.0),
                  CLICK_LIST_OUTPUT: tf.where(valid > 0, clicked, -1.0)}
        weights = {name: valid for name in labels}
        position = rows.pop(POSITION_KEY)
        features = preprocess(rows) if preprocess else rows
        return {**features, POSITION_KEY: position}, labels, weights

    options = tf.data.Options()
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
    num_pages: int = 0
    max_page_size: int = 0
    category_log_price: dict[str, float] = dataclasses.field(default_factory=dict)

    def list_size(self) -> int:
        """Rows per list in training: the longest page, at most MAX_LIST_SIZE."""
        return max(1, min(self.max_page_size, MAX_LIST_SIZE))


def scan(patterns: Sequence[str], max_texts: int = 200_000) -> WindowScan:
    spec = {k: v for k, v in feature_spec(with_labels=False).items()}
    spec[GROUP_KEY] = tf.io.FixedLenFeature([], tf.string, default_value="")
    counts = {f: collections.Counter() for f in (*ID_FEATURES, USER_KEY)}
    pages: collections.Counter = collections.Counter()
    category_sum: collections.Counter = collections.Counter()
    texts: list[str] = []
    n, s, ss = 0, 0.0, 0.0
    for batch in records(patterns).batch(4096).map(lambda x: tf.io.parse_example(x, spec)):
        size = int(batch[PRICE_FEATURE].shape[0])
        n += size
        logp = np.log1p(np.maximum(batch[PRICE_FEATURE].numpy(), 0.0))
        s += float(logp.sum())
        ss += float((logp**2).sum())
        pages.update(batch[GROUP_KEY].numpy().tolist())
        for category, value in zip(batch["category"].numpy().tolist(), logp.tolist(), strict=True):
            category_sum[category.decode("utf-8", "replace")] += value
        for f in counts:
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
    category_mean = {c: category_sum[c] / counts["category"][c] for c in category_sum}
    return WindowScan(n, counts, mean, std, texts[:max_texts], num_pages=len(pages),
                      max_page_size=max(pages.values()), category_log_price=category_mean)
