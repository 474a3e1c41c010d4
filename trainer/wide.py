"""The ranker's wide part: regularised linear terms that learn from a day's logs what the deep part
needs weeks for (Wide & Deep, Cheng et al., DLRS 2016).

Measured first with a logistic regression on the same logged features: from one day of 1000
searches it captured 23-27% of the legacy-to-best gap where the cross-encoder alone captured
9-17% (docs/ranking-quality.md). Its terms, each a pair of logits (click, purchase):
- a bias per id (product, brand, category, user when on), the smoothed memory of what each id did;
- the price relative to its category's typical price, its square and the lexical match features;
- hashed crosses of each query wordpiece with the product's category and brand, so "this word
  asks for that category" is one weight, not a pattern the encoder must discover.
All weights start at zero and carry an L2 penalty, so an id seen twice moves little. They share
the deep part's AdamW (Wide & Deep trains its wide part with FTRL; an FTRL optimizer for these
weights measured no better here, docs/ranking-quality.md).
"""
from __future__ import annotations

import tensorflow as tf
import tf_keras as keras

WIDE_OUTPUTS = 2  # (click logit, purchase logit) contributions
_WORD_STRIDE = 1_000_003
_ROW_STRIDE = 7_919


class HashedQueryCross(keras.layers.Layer):
    """Sum over the query's wordpieces of a learned weight per hashed (wordpiece, id row) pair."""

    def __init__(self, buckets: int, l2: float, special_ids: tuple[int, ...], **kwargs):
        super().__init__(**kwargs)
        self.buckets, self.l2, self.special_ids = int(buckets), float(l2), tuple(special_ids)

    def build(self, input_shape):
        self.table = self.add_weight("weights", shape=(self.buckets, WIDE_OUTPUTS), initializer="zeros",
                                     regularizer=keras.regularizers.l2(self.l2))
        super().build(input_shape)

    def call(self, word_ids: tf.Tensor, mask: tf.Tensor, type_ids: tf.Tensor, row: tf.Tensor) -> tf.Tensor:
        keep = tf.cast(mask, tf.bool) & tf.equal(type_ids, 0)
        for special in self.special_ids:
            keep &= tf.not_equal(word_ids, special)
        bucket = tf.math.floormod(word_ids * _WORD_STRIDE + tf.cast(row, tf.int64)[:, tf.newaxis] * _ROW_STRIDE,
                                  self.buckets)
        weights = tf.gather(self.table, bucket) * tf.cast(keep, self.table.dtype)[..., tf.newaxis]
        return tf.reduce_sum(weights, axis=1)

    def get_config(self):
        return {**super().get_config(), "buckets": self.buckets, "l2": self.l2,
                "special_ids": list(self.special_ids)}


def id_bias(size: int, l2: float, name: str) -> keras.layers.Embedding:
    """A (click, purchase) logit bias per id row; rows follow their id through warm start."""
    return keras.layers.Embedding(size, WIDE_OUTPUTS, embeddings_initializer="zeros",
                                  embeddings_regularizer=keras.regularizers.l2(l2), name=name)


def dense_terms(l2: float, name: str) -> keras.layers.Dense:
    return keras.layers.Dense(WIDE_OUTPUTS, kernel_initializer="zeros",
                              kernel_regularizer=keras.regularizers.l2(l2), name=name)

