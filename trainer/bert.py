"""A BERT encoder in tf-keras whose weights map one-to-one onto Google's original checkpoints.

Sub-layer names follow the checkpoint (`embeddings/word_embeddings`, `layer_N/attention/...`,
`pooler/dense`) so `checkpoint.py` can translate names mechanically and name the variable
that does not fit when a checkpoint disagrees with the config.
"""
from __future__ import annotations

import math

import tensorflow as tf
import tf_keras as keras

from trainer.config import POOLINGS, BertConfig


def _init(config: BertConfig) -> keras.initializers.Initializer:
    return keras.initializers.TruncatedNormal(stddev=config.initializer_range)


class BertEmbeddings(keras.layers.Layer):
    """Word + position + segment embeddings, then LayerNorm and dropout (as in BERT)."""

    def __init__(self, config: BertConfig, **kwargs):
        super().__init__(**kwargs)
        self.config = config
        self.layer_norm = keras.layers.LayerNormalization(epsilon=1e-12, name="LayerNorm")
        self.dropout = keras.layers.Dropout(config.dropout_rate)

    def build(self, input_shape):
        c = self.config
        self.word_embeddings = self.add_weight(
            "word_embeddings", shape=(c.vocab_size, c.hidden_size), initializer=_init(c)
        )
        self.position_embeddings = self.add_weight(
            "position_embeddings", shape=(c.max_position_embeddings, c.hidden_size), initializer=_init(c)
        )
        self.token_type_embeddings = self.add_weight(
            "token_type_embeddings", shape=(c.type_vocab_size, c.hidden_size), initializer=_init(c)
        )
        super().build(input_shape)

    def call(self, word_ids: tf.Tensor, type_ids: tf.Tensor, training=None) -> tf.Tensor:
        seq_len = tf.shape(word_ids)[1]
        x = tf.gather(self.word_embeddings, word_ids)
        x += tf.gather(self.token_type_embeddings, type_ids)
        x += self.position_embeddings[tf.newaxis, :seq_len, :]
        return self.dropout(self.layer_norm(x), training=training)


class BertLayer(keras.layers.Layer):
    """One post-LayerNorm transformer block: self-attention, then the GELU feed-forward."""

    def __init__(self, config: BertConfig, **kwargs):
        super().__init__(**kwargs)
        c = config
        self.num_heads = c.num_heads
        self.head_size = c.hidden_size // c.num_heads
        dense = lambda units, name, act=None: keras.layers.Dense(  # noqa: E731
            units, activation=act, kernel_initializer=_init(c), name=name
        )
        self.query = dense(c.hidden_size, "attention/self/query")
        self.key = dense(c.hidden_size, "attention/self/key")
        self.value = dense(c.hidden_size, "attention/self/value")
        self.attention_output = dense(c.hidden_size, "attention/output/dense")
        self.attention_norm = keras.layers.LayerNormalization(epsilon=1e-12, name="attention/output/LayerNorm")
        self.intermediate = dense(c.intermediate_size, "intermediate/dense", act=_gelu)
        self.output_dense = dense(c.hidden_size, "output/dense")
        self.output_norm = keras.layers.LayerNormalization(epsilon=1e-12, name="output/LayerNorm")
        self.attention_dropout = keras.layers.Dropout(c.attention_dropout_rate)
        self.dropout = keras.layers.Dropout(c.dropout_rate)

    def _heads(self, x: tf.Tensor) -> tf.Tensor:
        batch, seq = tf.shape(x)[0], tf.shape(x)[1]
        x = tf.reshape(x, [batch, seq, self.num_heads, self.head_size])
        return tf.transpose(x, [0, 2, 1, 3])

    def call(self, x: tf.Tensor, attention_bias: tf.Tensor, training=None) -> tf.Tensor:
        q, k, v = self._heads(self.query(x)), self._heads(self.key(x)), self._heads(self.value(x))
        scores = tf.matmul(q, k, transpose_b=True) * (1.0 / math.sqrt(self.head_size))
        probs = self.attention_dropout(tf.nn.softmax(scores + attention_bias), training=training)
        context = tf.transpose(tf.matmul(probs, v), [0, 2, 1, 3])
        context = tf.reshape(context, tf.shape(x))
        attended = self.attention_norm(x + self.dropout(self.attention_output(context), training=training))
        ffn = self.output_dense(self.intermediate(attended))
        return self.output_norm(attended + self.dropout(ffn, training=training))


def _gelu(x: tf.Tensor) -> tf.Tensor:
    return keras.activations.gelu(x, approximate=False)


class BertEncoder(keras.layers.Layer):
    """Embeddings, `num_layers` blocks and the tanh pooler over [CLS].

    `pooling="mean"` makes `pooled_output` the mask-weighted mean of the token outputs instead,
    as sentence-transformers fine-tuned all-MiniLM-L6-v2; the pooler is then never built (so a
    checkpoint's pooler is not read either). The default is `config.pooling`.
    """

    def __init__(self, config: BertConfig, pooling: str | None = None, **kwargs):
        super().__init__(**kwargs)
        self.config = config
        self.pooling = pooling or config.pooling
        if self.pooling not in POOLINGS:
            raise ValueError(f"pooling must be one of {POOLINGS}, got {self.pooling!r}")
        self.embeddings = BertEmbeddings(config, name="embeddings")
        self.blocks = [BertLayer(config, name=f"encoder/layer_{i}") for i in range(config.num_layers)]
        self.pooler = keras.layers.Dense(
            config.hidden_size, activation="tanh", kernel_initializer=_init(config), name="pooler/dense"
        )

    def call(self, inputs: dict[str, tf.Tensor], training=None) -> dict[str, tf.Tensor]:
        mask = tf.cast(inputs["input_mask"], tf.float32)
        # Padding gets a large negative bias so softmax ignores it.
        attention_bias = (1.0 - mask[:, tf.newaxis, tf.newaxis, :]) * -10000.0
        x = self.embeddings(inputs["input_word_ids"], inputs["input_type_ids"], training=training)
        for block in self.blocks:
            x = block(x, attention_bias, training=training)
        if self.pooling == "mean":
            weights = mask[:, :, tf.newaxis]
            pooled = tf.reduce_sum(x * weights, axis=1) / tf.maximum(tf.reduce_sum(weights, axis=1), 1.0)
        else:
            pooled = self.pooler(x[:, 0, :])
        return {"sequence_output": x, "pooled_output": pooled}

    def flops_per_example(self) -> int:
        """Multiply-adds x2 of one forward pass at full sequence length (for the benchmark)."""
        c = self.config
        s, h, i = c.max_seq_length, c.hidden_size, c.intermediate_size
        per_layer = 2 * s * (4 * h * h + 2 * h * i) + 2 * 2 * s * s * h
        return c.num_layers * per_layer + 2 * h * h
