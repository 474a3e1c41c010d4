"""In-graph tokenization: clients send raw strings, the SavedModel turns them into BERT inputs.

Keeping the tokenizer inside the graph means serving cannot drift from training and a
gRPC client needs no Python-side preprocessing. The pair is encoded as
`[CLS] query [SEP] title brand category [SEP]`, trimmed round-robin to `max_seq_length`.

A batch is padded only to its longest pair, not to `max_seq_length`: the encoder's cost grows
with the padded width (attention with its square), padding is masked out of attention, pooling
and the interaction layer, and real pairs are short (22 wordpieces on average, the longest of a
batch ~30-34, against the 48 allowed, on the generated market). So the width is dynamic and the
scores are those of the fully padded batch up to float rounding.
"""
from __future__ import annotations

import collections
import os

import tensorflow as tf
import tensorflow_text as tf_text
import tf_keras as keras


class PairTokenizer(keras.layers.Layer):
    """Maps (query, product text) string batches to word ids, input mask and segment ids."""

    def __init__(self, vocab_path: str, vocab: list[str], max_seq_length: int, pad_to_longest: bool = True,
                 **kwargs):
        super().__init__(trainable=False, **kwargs)
        self.max_seq_length = max_seq_length
        self.vocab_path = vocab_path
        self.pad_to_longest = pad_to_longest  # False: always max_seq_length wide (the tests compare both)
        self._cls_id = vocab.index("[CLS]")
        self._sep_id = vocab.index("[SEP]")
        self._pad_id = vocab.index("[PAD]")
        # A file-backed table: the vocabulary ships as an asset of every exported model.
        self.tokenizer = tf_text.BertTokenizer(
            vocab_path, token_out_type=tf.int64, lower_case=True, unknown_token="[UNK]"
        )
        self.budget = max_seq_length - 3

    def wordpieces(self, text: tf.Tensor) -> tf.RaggedTensor:
        return self.tokenizer.tokenize(text).merge_dims(-2, -1)

    def call(self, query: tf.Tensor, document: tf.Tensor) -> dict[str, tf.Tensor]:
        return self.encode(self.wordpieces(query), self.wordpieces(document))

    def encode(self, q: tf.RaggedTensor, d: tf.RaggedTensor) -> dict[str, tf.Tensor]:
        q, d = round_robin_trim(q, d, self.budget)
        ids, segments = tf_text.combine_segments(
            [q, d], start_of_sequence_id=self._cls_id, end_of_segment_id=self._sep_id
        )
        word_ids, mask = tf_text.pad_model_inputs(ids, self.max_seq_length, pad_value=self._pad_id)
        type_ids, _ = tf_text.pad_model_inputs(segments, self.max_seq_length, pad_value=0)
        if self.pad_to_longest:
            # At least one column, so an empty batch keeps a valid shape.
            width = tf.maximum(tf.reduce_max(tf.reduce_sum(mask, axis=1)), 1)
            word_ids, mask, type_ids = word_ids[:, :width], mask[:, :width], type_ids[:, :width]
        return {"input_word_ids": word_ids, "input_mask": mask, "input_type_ids": type_ids}


class TextInputs:
    """The text part of preprocessing, (query, title, brand, category) -> encoder inputs and the
    lexical match, as one traced function with a fixed signature.

    Why one function: tracing the tokenization graph (WordPiece, trimming, ragged ops) takes about
    1.3 s of one core, and a fit traced it three times (training map, eval map, scorer or export);
    a bench process fits dozens of models on the same vocabulary. Users of this object trace a
    call to the function instead of its graph, and `shared_text_inputs` hands the same object to
    every model of a process that has the same vocabulary. Deliberately not a tf.Module: the
    models that call it track the tokenizer (its table is an asset of the export), not this.
    """

    def __init__(self, tokenizer: PairTokenizer):
        self.tokenizer = tokenizer
        column = tf.TensorSpec([None], tf.string)
        self._fn = tf.function(self._inputs, input_signature=[column] * 4, autograph=False)

    def __call__(self, query: tf.Tensor, title: tf.Tensor, brand: tf.Tensor, category: tf.Tensor) -> dict:
        return self._fn(query, title, brand, category)

    def _inputs(self, query, title, brand, category) -> dict[str, tf.Tensor]:
        tokenizer = self.tokenizer
        # The three columns are tokenized as one batch and cut apart again: the same rows, one
        # copy of the tokenizer's graph (a few hundred nodes) instead of three, which is what loading
        # a version and starting a tf.data pipeline spend their time on.
        rows = tf.shape(query, out_type=tf.int64)[0]
        pieces = tokenizer.wordpieces(tf.concat([query, product_text(title, brand, category), brand], axis=0))
        q, words, brand_words = pieces[:rows], pieces[rows:2 * rows], pieces[2 * rows:]
        out = dict(tokenizer.encode(q, words))
        out["match"] = tf.stack([overlap(q, words), overlap(q, brand_words)], axis=1)
        return out


_SHARED: collections.OrderedDict[tuple, TextInputs] = collections.OrderedDict()
_SHARED_MAX = 4  # full retraining learns a new vocabulary per fit: keep a few, not every one


def shared_text_inputs(vocab_path: str, vocab: list[str], max_seq_length: int) -> TextInputs:
    """The process's TextInputs for this vocabulary, built on first use.

    A cached one is reused only while the vocabulary file it was built from still exists: an
    export copies that file into the SavedModel's assets (same content, whichever fit wrote it),
    and `trainer.task.train` deletes its scratch copy once exported.
    """
    key = (tuple(vocab), max_seq_length)
    cached = _SHARED.get(key)
    if cached is not None and os.path.exists(cached.tokenizer.vocab_path):
        _SHARED.move_to_end(key)
        return cached
    text = TextInputs(PairTokenizer(vocab_path, vocab, max_seq_length))
    _SHARED[key] = text
    while len(_SHARED) > _SHARED_MAX:
        _SHARED.popitem(last=False)
    return text


def round_robin_trim(
    first: tf.RaggedTensor, second: tf.RaggedTensor, budget: int
) -> tuple[tf.RaggedTensor, tf.RaggedTensor]:
    """Trims two segments as tf_text.RoundRobinTrimmer does, in core TensorFlow ops.

    RoundRobinTrimmer's kernel (TFText>RoundRobinTrim) arrived in TF.Text 2.13, and TF Serving
    2.16 links TF.Text 2.12.1 (tensorflow/serving#4057): a model using it does not load there.
    Taking tokens in turns gives the first segment min(len1, max(ceil(budget/2), budget - len2)).
    """
    len1, len2 = first.row_lengths(), second.row_lengths()
    total = tf.constant(budget, dtype=len1.dtype)
    half = tf.constant((budget + 1) // 2, dtype=len1.dtype)
    keep1 = tf.minimum(len1, tf.maximum(half, total - len2))
    keep2 = tf.minimum(len2, total - keep1)
    mask1 = tf.ragged.range(len1) < tf.expand_dims(keep1, 1)
    mask2 = tf.ragged.range(len2) < tf.expand_dims(keep2, 1)
    return tf.ragged.boolean_mask(first, mask1), tf.ragged.boolean_mask(second, mask2)


def overlap(query: tf.RaggedTensor, other: tf.RaggedTensor) -> tf.Tensor:
    """Share of the query's distinct wordpieces found in `other`: the lexical-match signal.

    Classic learning-to-rank systems feed it beside the encoder; it lets a small model
    rank sensibly after one day of data, before attention has learned to match words.
    """
    q, o = query.to_sparse(), other.to_sparse()
    common = tf.sets.size(tf.sets.intersection(q, o))
    distinct = tf.maximum(tf.sets.size(q), 1)
    return tf.cast(common, tf.float32) / tf.cast(distinct, tf.float32)


def product_text(title: tf.Tensor, brand: tf.Tensor, category: tf.Tensor) -> tf.Tensor:
    """The document side of the pair; brand and category go in as words the encoder can match."""
    category_words = tf.strings.regex_replace(category, "_", " ")
    return tf.strings.join([title, brand, category_words], separator=" ")
