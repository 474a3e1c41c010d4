"""The ranker: a BERT cross-encoder over (query, product text) plus id and price features.

It is two parts, plus one used in training only. `Preprocessor` turns the raw feature tensors a shop already has into
numbers (WordPiece ids of the pair, id-vocabulary rows, normalised price); it has no
weights and runs inside tf.data while training, where it overlaps with compute and keeps
string ops out of the gradient graph (tracing the whole thing as one train step took 26 s
against 2 s here). `build_core` is the Keras network on those numbers. The exported
SavedModel chains both, so serving takes raw strings.

`build_training_model` wraps the core for `fit`: it multiplies in P(examined | position) from a
one-parameter-per-position tower (PAL) and, with `purchase_model="ctcvr"`, chains
P(click | examined) and P(purchase | click) (ESMM), so the losses see the probabilities of what
was logged, at the position it was logged at. Serving scores `purchase_probability`, which
leaves the position out: the ranking is the model's estimate of P(purchase | examined), the
quantity the best possible order sorts by.
"""
from __future__ import annotations

import dataclasses

import numpy as np
import tensorflow as tf
import tf_keras as keras

from trainer import wide
from trainer.bert import BertEncoder
from trainer.config import (
    CLICK_LIST_OUTPUT,
    CLICK_OUTPUT,
    POSITION_KEY,
    PRICE_FEATURE,
    PURCHASE_LIST_OUTPUT,
    PURCHASE_OUTPUT,
    TrainConfig,
)
from trainer.interaction import QueryDocumentInteraction
from trainer.row_evidence import attach_evidence
from trainer.text import PairTokenizer, TextInputs, shared_text_inputs


@dataclasses.dataclass
class Vocabularies:
    """What the model's lookups were built from; each is written as an asset of the export."""

    wordpiece_path: str
    wordpiece: list[str]
    ids: dict[str, list[str]]  # feature -> ids in row order (row 0 is the out-of-vocabulary row)
    price_log_mean: float
    price_log_std: float
    # Mean log1p(price) per category, from the first window (frozen like the price normalisation):
    # a price is judged against its category's, as shoppers do. Missing: the global mean.
    category_log_price: dict[str, float] = dataclasses.field(default_factory=dict)


def raw_input_specs(config: TrainConfig) -> dict[str, tf.TensorSpec]:
    """The serving signature's inputs: batched strings and the float price, no position."""
    specs = {name: tf.TensorSpec([None], tf.string, name=name) for name in config.string_inputs()}
    specs[PRICE_FEATURE] = tf.TensorSpec([None], tf.float32, name=PRICE_FEATURE)
    return specs


class Preprocessor(tf.Module):
    """Raw features -> model inputs. Weightless, so warm start never has to touch it.

    The text part is the process's shared, traced `TextInputs` for this vocabulary (or one around
    `tokenizer` when given, as tests do to compare tokenizer settings).
    """

    def __init__(self, config: TrainConfig, vocabs: Vocabularies, tokenizer: PairTokenizer | None = None):
        super().__init__(name="preprocessor")
        if tokenizer is None:
            self._text = shared_text_inputs(vocabs.wordpiece_path, vocabs.wordpiece, config.bert.max_seq_length)
        else:
            self._text = TextInputs(tokenizer)
        self.tokenizer = self._text.tokenizer  # tracked: its vocabulary file is an asset of the export
        # Row 0 is the shared row for ids never seen in training (num_oov_indices=1).
        self.lookups = {
            feature: keras.layers.StringLookup(vocabulary=vocabs.ids[feature][1:], num_oov_indices=1)
            for feature in config.id_features()
        }
        self.price_log_mean = float(vocabs.price_log_mean)
        self.price_log_std = max(float(vocabs.price_log_std), 1e-6)
        categories = vocabs.ids["category"]
        self.category_price = tf.constant(
            [vocabs.category_log_price.get(c, self.price_log_mean) if row else self.price_log_mean
             for row, c in enumerate(categories)], dtype=tf.float32)

    def __call__(self, features: dict[str, tf.Tensor]) -> dict[str, tf.Tensor]:
        out = dict(self._text(features["query"], features["title"], features["brand"], features["category"]))
        for feature, lookup in self.lookups.items():
            out[f"{feature}_row"] = lookup(features[feature])
        price = tf.math.log1p(tf.maximum(tf.cast(features[PRICE_FEATURE], tf.float32), 0.0))
        out["price_norm"] = (price - self.price_log_mean) / self.price_log_std
        out["price_relative"] = price - tf.gather(self.category_price, out["category_row"])
        return out


def build_core(config: TrainConfig, vocabs: Vocabularies) -> keras.Model:
    """The network: encoder inputs, id rows, price and lexical match -> {'purchase_logit', 'click_logit'}."""
    bert_config = dataclasses.replace(config.bert, vocab_size=len(vocabs.wordpiece))
    # The width is each batch's longest pair (trainer/text.py), at most max_seq_length.
    inputs = {
        name: keras.Input(shape=(None,), dtype=tf.int64, name=name)
        for name in ("input_word_ids", "input_mask", "input_type_ids")
    }
    for feature in config.id_features():
        inputs[f"{feature}_row"] = keras.Input(shape=(), dtype=tf.int64, name=f"{feature}_row")
    inputs["price_norm"] = keras.Input(shape=(), dtype=tf.float32, name="price_norm")
    inputs["price_relative"] = keras.Input(shape=(), dtype=tf.float32, name="price_relative")
    inputs["match"] = keras.Input(shape=(2,), dtype=tf.float32, name="match")

    encoder = BertEncoder(bert_config, name="bert")
    pooled = encoder({k: inputs[k] for k in ("input_word_ids", "input_mask", "input_type_ids")})[
        "pooled_output"
    ]
    side = [pooled]
    if config.interaction_dim > 0:
        words = vocabs.wordpiece
        special = tuple(words.index(t) for t in ("[CLS]", "[SEP]") if t in words)
        side.append(QueryDocumentInteraction(len(words), config.interaction_dim, special, name="interaction")(
            inputs["input_word_ids"], inputs["input_mask"], inputs["input_type_ids"]))
    for feature in config.id_features() if config.id_embedding_dim > 0 else ():
        embed = keras.layers.Embedding(
            len(vocabs.ids[feature]), config.id_embedding_dim, name=f"{feature}_embedding",
            embeddings_initializer=keras.initializers.TruncatedNormal(stddev=0.02),
        )
        side.append(embed(inputs[f"{feature}_row"]))
    price_relative = keras.layers.Reshape((1,), name="price_relative_column")(inputs["price_relative"])
    side.append(keras.layers.Reshape((1,), name="price")(inputs["price_norm"]))
    side.append(price_relative)
    side.append(inputs["match"])

    hidden = keras.layers.Dense(config.head_hidden_size, activation="gelu", name="head/dense")(
        keras.layers.Concatenate(name="head/concat")(side)
    )
    hidden = keras.layers.Dropout(config.bert.dropout_rate, name="head/dropout")(hidden)
    purchase = keras.layers.Dense(1, name="head/purchase_logit")(hidden)
    click = keras.layers.Dense(1, name="head/click_logit")(hidden)
    if config.wide:
        wide = _wide_logits(config, vocabs, inputs, price_relative)
        click = keras.layers.Add(name="click_wide_and_deep")([click, wide[:, :1]])
        purchase = keras.layers.Add(name="purchase_wide_and_deep")([purchase, wide[:, 1:]])
    outputs = {
        "purchase_logit": keras.layers.Reshape((), name="purchase_logit")(purchase),
        "click_logit": keras.layers.Reshape((), name="click_logit")(click),
    }
    core = keras.Model(inputs=inputs, outputs=outputs, name="ranker")
    attach_evidence(core, config, {feature: len(vocabs.ids[feature]) for feature in config.id_features()})
    return core


def _wide_logits(config: TrainConfig, vocabs: Vocabularies, inputs: dict, price_relative) -> tf.Tensor:
    """The wide part's (click, purchase) logit contributions (trainer/wide.py)."""
    l2 = config.wide_l2
    terms = [wide.dense_terms(l2, "wide/dense")(keras.layers.Concatenate(name="wide/features")(
        [price_relative, price_relative * price_relative, inputs["match"]]))]
    for feature in config.id_features():
        terms.append(wide.id_bias(len(vocabs.ids[feature]), l2, f"{feature}_bias")(inputs[f"{feature}_row"]))
    words = vocabs.wordpiece
    special = tuple(words.index(t) for t in ("[CLS]", "[SEP]") if t in words)
    text = (inputs["input_word_ids"], inputs["input_mask"], inputs["input_type_ids"])
    for feature in ("category", "brand"):
        cross = wide.HashedQueryCross(config.wide_cross_buckets, l2, special, name=f"wide/query_{feature}")
        terms.append(cross(*text, inputs[f"{feature}_row"]))
    return keras.layers.Add(name="wide/logits")(terms)


POSITION_TOWER = "position_bias"


def purchase_probability(outputs: dict[str, tf.Tensor], config: TrainConfig) -> tf.Tensor:
    """The served score: P(purchase | the product is examined), from the core's two logits."""
    if config.purchase_model == "ctcvr":
        return tf.sigmoid(outputs["click_logit"]) * tf.sigmoid(outputs["purchase_logit"])
    return tf.sigmoid(outputs["purchase_logit"])


def build_position_tower(config: TrainConfig) -> keras.Model:
    """Position -> log P(examined | position): one learned logit per position, nothing else.

    Shallow on purpose (PAL, YouTube 2019): it can only explain how much a slot is looked at,
    so what depends on the product stays in the main tower. Its rows start equal, so the
    examination curve is learned from the logs alone (a shop does not know its own curve).
    """
    position = keras.Input(shape=(), dtype=tf.int64, name=POSITION_KEY)
    row = tf.clip_by_value(position, 1, config.max_position)
    logit = keras.layers.Embedding(config.max_position + 1, 1, embeddings_initializer="zeros",
                                   name=f"{POSITION_TOWER}/examination")(row)
    log_examined = tf.math.log_sigmoid(tf.reshape(logit, [-1]))
    return keras.Model(inputs=position, outputs=log_examined, name=POSITION_TOWER)


def examination_table(weights: dict) -> np.ndarray | None:
    """The position tower's logits by position (row 0 unused) from a weights dict, if it has one."""
    for name, value in weights.items():
        if name.startswith(f"{POSITION_TOWER}/examination/"):
            return value.reshape(-1).astype("float32")
    return None


def build_training_model(core: keras.Model, tower: keras.Model | None, config: TrainConfig) -> keras.Model:
    """The core plus, in training only, the position tower: outputs log P(click), log P(purchase).

    Log-probabilities, because the ctcvr purchase probability is a product of three sigmoids and
    its log is a sum of stable log-sigmoids (`log_prob_bce` turns them into the log-loss).
    """
    inputs = {name: keras.Input(shape=t.shape[1:], dtype=t.dtype, name=name) for name, t in core.input.items()}
    outputs = core(inputs)
    log_click = tf.math.log_sigmoid(outputs["click_logit"])
    buy = tf.math.log_sigmoid(outputs["purchase_logit"])
    log_purchase = log_click + buy if config.purchase_model == "ctcvr" else buy
    if tower is not None:
        inputs[POSITION_KEY] = keras.Input(shape=(), dtype=tf.int64, name=POSITION_KEY)
        log_examined = tower(inputs[POSITION_KEY])
        log_click, log_purchase = log_click + log_examined, log_purchase + log_examined
    named = {CLICK_OUTPUT: keras.layers.Identity(name=CLICK_OUTPUT)(log_click),
             PURCHASE_OUTPUT: keras.layers.Identity(name=PURCHASE_OUTPUT)(log_purchase),
             CLICK_LIST_OUTPUT: keras.layers.Identity(name=CLICK_LIST_OUTPUT)(log_click),
             PURCHASE_LIST_OUTPUT: keras.layers.Identity(name=PURCHASE_LIST_OUTPUT)(log_purchase)}
    return keras.Model(inputs=inputs, outputs=named, name="ranker_training")


def listwise_softmax_loss(list_size: int):
    """Softmax cross-entropy of each page's log-probabilities against its label distribution.

    Rows arrive flattened, `list_size` per page; padding carries label -1 and is left out of the
    softmax. Pages without an event contribute nothing. Per row, so Keras' mean over rows times
    `list_size` is the mean over pages.
    """
    def loss(y_true, log_p):
        y = tf.reshape(tf.cast(y_true, tf.float32), [-1, list_size])
        s = tf.reshape(log_p, [-1, list_size])
        valid = y >= 0.0
        y = tf.where(valid, y, 0.0)
        s = tf.where(valid, s, -1e9)
        log_share = s - tf.reduce_logsumexp(s, axis=1, keepdims=True)
        target = tf.math.divide_no_nan(y, tf.reduce_sum(y, axis=1, keepdims=True))
        per_row = tf.where(valid, -target * log_share, 0.0)
        return tf.reshape(per_row, [-1]) * float(list_size)

    return loss


def log_prob_bce(y_true: tf.Tensor, log_p: tf.Tensor) -> tf.Tensor:
    """Binary log-loss from log P(y=1), stable where a sigmoid of a logit would not apply."""
    y = tf.cast(y_true, tf.float32)
    log_p = tf.minimum(log_p, -1e-7)
    log_not = tf.math.log(-tf.math.expm1(log_p))
    return -(y * log_p + (1.0 - y) * log_not)


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
