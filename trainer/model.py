"""The ranker: a BERT cross-encoder over (query, product text) plus id and price features.

It is two parts. `Preprocessor` turns the raw feature tensors a shop already has into
numbers (WordPiece ids of the pair, id-vocabulary rows, normalised price); it has no
weights and runs inside tf.data while training, where it overlaps with compute and keeps
string ops out of the gradient graph (tracing the whole thing as one train step took 26 s
against 2 s here). `build_core` is the Keras network on those numbers. The exported
SavedModel chains both, so serving takes raw strings.
"""
from __future__ import annotations

import dataclasses

import tensorflow as tf
import tf_keras as keras

from trainer.bert import BertEncoder
from trainer.config import ID_FEATURES, PRICE_FEATURE, TEXT_FEATURES, TrainConfig
from trainer.text import PairTokenizer, overlap, product_text


@dataclasses.dataclass
class Vocabularies:
    """What the model's lookups were built from; each is written as an asset of the export."""

    wordpiece_path: str
    wordpiece: list[str]
    ids: dict[str, list[str]]  # feature -> ids in row order (row 0 is the out-of-vocabulary row)
    price_log_mean: float
    price_log_std: float


def raw_input_specs() -> dict[str, tf.TensorSpec]:
    specs = {name: tf.TensorSpec([None], tf.string, name=name) for name in TEXT_FEATURES}
    specs[PRICE_FEATURE] = tf.TensorSpec([None], tf.float32, name=PRICE_FEATURE)
    return specs


class Preprocessor(tf.Module):
    """Raw features -> model inputs. Weightless, so warm start never has to touch it."""

    def __init__(self, config: TrainConfig, vocabs: Vocabularies):
        super().__init__(name="preprocessor")
        self.tokenizer = PairTokenizer(vocabs.wordpiece_path, vocabs.wordpiece, config.bert.max_seq_length)
        # Row 0 is the shared row for ids never seen in training (num_oov_indices=1).
        self.lookups = {
            feature: keras.layers.StringLookup(vocabulary=vocabs.ids[feature][1:], num_oov_indices=1)
            for feature in ID_FEATURES
        }
        self.price_log_mean = float(vocabs.price_log_mean)
        self.price_log_std = max(float(vocabs.price_log_std), 1e-6)

    def __call__(self, features: dict[str, tf.Tensor]) -> dict[str, tf.Tensor]:
        document = product_text(features["title"], features["brand"], features["category"])
        query = self.tokenizer.wordpieces(features["query"])
        words = self.tokenizer.wordpieces(document)
        out = dict(self.tokenizer.encode(query, words))
        out["match"] = tf.stack(
            [overlap(query, words), overlap(query, self.tokenizer.wordpieces(features["brand"]))], axis=1
        )
        for feature, lookup in self.lookups.items():
            out[f"{feature}_row"] = lookup(features[feature])
        price = tf.math.log1p(tf.maximum(tf.cast(features[PRICE_FEATURE], tf.float32), 0.0))
        out["price_norm"] = (price - self.price_log_mean) / self.price_log_std
        return out


def build_core(config: TrainConfig, vocabs: Vocabularies) -> keras.Model:
    """The network: encoder inputs, id rows, price and lexical match -> {'purchase_logit', 'click_logit'}."""
    bert_config = dataclasses.replace(config.bert, vocab_size=len(vocabs.wordpiece))
    seq = bert_config.max_seq_length
    inputs = {
        name: keras.Input(shape=(seq,), dtype=tf.int64, name=name)
        for name in ("input_word_ids", "input_mask", "input_type_ids")
    }
    for feature in ID_FEATURES:
        inputs[f"{feature}_row"] = keras.Input(shape=(), dtype=tf.int64, name=f"{feature}_row")
    inputs["price_norm"] = keras.Input(shape=(), dtype=tf.float32, name="price_norm")
    inputs["match"] = keras.Input(shape=(2,), dtype=tf.float32, name="match")

    encoder = BertEncoder(bert_config, name="bert")
    pooled = encoder({k: inputs[k] for k in ("input_word_ids", "input_mask", "input_type_ids")})[
        "pooled_output"
    ]
    side = [pooled]
    for feature in ID_FEATURES:
        embed = keras.layers.Embedding(
            len(vocabs.ids[feature]), config.id_embedding_dim, name=f"{feature}_embedding",
            embeddings_initializer=keras.initializers.TruncatedNormal(stddev=0.02),
        )
        side.append(embed(inputs[f"{feature}_row"]))
    side.append(keras.layers.Reshape((1,), name="price")(inputs["price_norm"]))
    side.append(inputs["match"])

    hidden = keras.layers.Dense(config.head_hidden_size, activation="gelu", name="head/dense")(
        keras.layers.Concatenate(name="head/concat")(side)
    )
    hidden = keras.layers.Dropout(config.bert.dropout_rate, name="head/dropout")(hidden)
    purchase = keras.layers.Dense(1, name="head/purchase_logit")(hidden)
    click = keras.layers.Dense(1, name="head/click_logit")(hidden)
    outputs = {
        "purchase_logit": keras.layers.Reshape((), name="purchase_logit")(purchase),
        "click_logit": keras.layers.Reshape((), name="click_logit")(click),
    }
    return keras.Model(inputs=inputs, outputs=outputs, name="ranker")


def apply_update_mode(model: keras.Model, config: TrainConfig) -> int:
    """Freezes what `partial` mode leaves alone and returns the count of trainable parameters."""
    if config.update_mode == "partial":
        encoder: BertEncoder = model.get_layer("bert")
        encoder.embeddings.trainable = False
        for block in encoder.blocks[: config.frozen_layers]:
            block.trainable = False
    return int(sum(tf.size(v).numpy() for v in model.trainable_variables))


def skip_autograph(model: keras.Model) -> keras.Model:
    """Traces Keras' step functions without AutoGraph.

    Nothing in the ranker needs AutoGraph (no tensor-dependent Python control flow), and
    converting Keras' own step code took 20 of the 26 s the first training step cost here.
    """
    for step in ("train_step", "test_step", "predict_step"):
        setattr(model, step, tf.autograph.experimental.do_not_convert(getattr(model, step)))
    return model
