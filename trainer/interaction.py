"""A bag-of-wordpieces query-document interaction beside the cross-encoder.

Why: a cross-encoder learns that a query's words fit a product's category or brand only after
many examples, and one day of a shop's logs holds a few hundred purchases. Two small embedding
tables, one for the query's wordpieces and one for the document's (title, brand, category), whose
mean vectors meet in an elementwise product (DSSM's matching, Huang et al., CIKM 2013), learn
"this query wants that category" from clicks within the first epoch; the encoder keeps what
only attention sees (word order, which noun an attribute belongs to). The segments are read off
the encoder's own inputs, so preprocessing and the serving contract do not change.
"""
from __future__ import annotations

import tensorflow as tf
import tf_keras as keras


class QueryDocumentInteraction(keras.layers.Layer):
    """(word ids, mask, segment ids) -> [q * d, q . d]: width `dim` + 1."""

    def __init__(self, vocab_size: int, dim: int, special_ids: tuple[int, ...], **kwargs):
        super().__init__(**kwargs)
        self.vocab_size, self.dim, self.special_ids = vocab_size, dim, tuple(special_ids)

    def build(self, input_shape):
        init = keras.initializers.TruncatedNormal(stddev=0.1)
        self.query_embeddings = self.add_weight("query_embeddings", shape=(self.vocab_size, self.dim),
                                                initializer=init)
        self.document_embeddings = self.add_weight("document_embeddings", shape=(self.vocab_size, self.dim),
                                                   initializer=init)
        super().build(input_shape)

    def call(self, word_ids: tf.Tensor, mask: tf.Tensor, type_ids: tf.Tensor) -> tf.Tensor:
        real = tf.cast(mask, tf.bool)
        for special in self.special_ids:
            real &= tf.not_equal(word_ids, special)
        query = _masked_mean(self.query_embeddings, word_ids, real & tf.equal(type_ids, 0))
        document = _masked_mean(self.document_embeddings, word_ids, real & tf.equal(type_ids, 1))
        product = query * document
        return tf.concat([product, tf.reduce_sum(product, axis=-1, keepdims=True)], axis=-1)

    def get_config(self):
        return {**super().get_config(), "vocab_size": self.vocab_size, "dim": self.dim,
                "special_ids": list(self.special_ids)}


def _masked_mean(table: tf.Variable, ids: tf.Tensor, keep: tf.Tensor) -> tf.Tensor:
    weights = tf.cast(keep, table.dtype)[..., tf.newaxis]
    summed = tf.reduce_sum(tf.gather(table, ids) * weights, axis=1)
    return summed / tf.maximum(tf.reduce_sum(weights, axis=1), 1.0)
