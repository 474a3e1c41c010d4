"""The blessing data: the newest span's held-out pages with inverse-propensity weights added.

Those pages (its test split, or with `--bless-pages held-out` its eval and test splits) were
ordered by another ranker (legacy, or the serving model). A purchase at position 8 is rarer than
one at position 1 partly because fewer shoppers look that far, so an unweighted metric favours
whichever model imitates the logged order, usually the serving model itself. Each example gets
`ips_weight` = 1 / P(examined | position), clipped (trainer/propensity.py), `ips_gain` =
purchased x ips_weight, which TFMA's NDCG takes as its gain (it accepts one weight per page, not
one per impression), and the curve itself, with which the purchase-lift metric blesses
(tfx_pipeline/purchase_lift_metric.py).

The examination curve is fitted to the clicks of the window's train splits by the position-based
click model (EM over products): only what the logs hold, no oracle, and several spans keep one
odd span from moving it much.
"""
from __future__ import annotations

import numpy as np
import tensorflow as tf

from trainer import propensity
from trainer.config import CLICK_KEY, LABEL_KEY, POSITION_KEY

IPS_WEIGHT_KEY, IPS_GAIN_KEY = "ips_weight", "ips_gain"
# The whole curve (positions 1..N) on every example: the purchase-lift metric looks up the
# examination at the rank a model gives an item (tfx_pipeline/purchase_lift_metric.py).
CURVE_KEY = "examination_curve"
ITEM_KEY = "product_id"
CURVE_ENTRIES = 11  # entries recorded on the artifact (0 unused, then positions 1-10)


def estimate_curve(train_files: list[str]) -> np.ndarray:
    """P(examined | position) from the clicks logged in `train_files` (ExampleGen's GZIP TFRecords)."""
    columns = read_columns(train_files, {POSITION_KEY: tf.int64, CLICK_KEY: tf.int64, ITEM_KEY: tf.string})
    return propensity.examination_curve(*(columns[k] for k in (POSITION_KEY, CLICK_KEY, ITEM_KEY)))


def read_columns(files: list[str], dtypes: dict[str, tf.dtypes.DType]) -> dict[str, np.ndarray]:
    """A few scalar columns of ExampleGen's GZIP TFRecords as numpy arrays (the rest is not parsed)."""
    spec = {key: tf.io.FixedLenFeature([], dtype) for key, dtype in dtypes.items()}
    columns: dict[str, list[np.ndarray]] = {key: [] for key in spec}
    dataset = tf.data.TFRecordDataset(files, compression_type="GZIP").batch(4096)
    for batch in dataset.map(lambda records: tf.io.parse_example(records, spec)).as_numpy_iterator():
        for key in spec:
            columns[key].append(batch[key])
    if not columns[next(iter(spec))]:
        raise ValueError(f"no examples in {files}")
    return {key: np.concatenate(parts) for key, parts in columns.items()}


def write_weighted_split(test_files: list[str], out_path: str, curve: np.ndarray) -> int:
    """Writes the examples of `test_files` (the pages blessing reads) to `out_path` with ips_weight, ips_gain and the curve;
    returns the count."""
    examples = [tf.train.Example.FromString(record) for record in
                tf.data.TFRecordDataset(test_files, compression_type="GZIP").as_numpy_iterator()]
    positions = np.array([_int_value(e, POSITION_KEY) for e in examples], dtype=np.int64)
    purchased = np.array([_int_value(e, LABEL_KEY) for e in examples], dtype=np.float64)
    weights = propensity.ips_weights(positions, curve) if examples else np.zeros(0)
    with tf.io.TFRecordWriter(out_path, options="GZIP") as writer:
        for example, weight, label in zip(examples, weights, purchased, strict=True):
            feature = example.features.feature
            feature[IPS_WEIGHT_KEY].float_list.value[:] = [float(weight)]
            feature[IPS_GAIN_KEY].float_list.value[:] = [float(label * weight)]
            feature[CURVE_KEY].float_list.value[:] = [float(v) for v in curve[1:]]
            writer.write(example.SerializeToString())
    return len(examples)


def _int_value(example: tf.train.Example, key: str) -> int:
    values = example.features.feature[key].int64_list.value
    if len(values) != 1:
        raise ValueError(f"an evaluation example has {len(values)} values of {key!r}, expected one")
    return int(values[0])
