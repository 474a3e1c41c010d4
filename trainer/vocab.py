"""WordPiece and id vocabularies.

The WordPiece vocabulary is decided once and then frozen: the pretrained checkpoint's
`vocab.txt` when one is given, otherwise one learned from the first window's text. Every
later update reuses the base model's file, because re-learning it would scramble the rows of
the word embedding the warm start carries over.

Id vocabularies (products, brands, categories) instead grow: known ids keep their row index,
ids seen for the first time are appended, so warm start can copy every learned row.
"""
from __future__ import annotations

import collections
import os
from collections.abc import Iterable, Sequence

import tensorflow as tf

RESERVED_TOKENS = ("[PAD]", "[UNK]", "[CLS]", "[SEP]", "[MASK]")
BERT_TOKENIZER_PARAMS = {"lower_case": True}


def learn_wordpiece_vocab(texts: Iterable[str], vocab_size: int) -> list[str]:
    """Learns a BERT WordPiece vocabulary; CJK characters become single-character tokens."""
    from tensorflow_text.tools.wordpiece_vocab import bert_vocab_from_dataset as bvd

    texts = [t for t in texts if t]
    if not texts:
        raise ValueError("no text to learn a vocabulary from: the training window has no rows")
    dataset = tf.data.Dataset.from_tensor_slices(texts).batch(1024)
    vocab = bvd.bert_vocab_from_dataset(
        dataset,
        vocab_size=vocab_size,
        reserved_tokens=list(RESERVED_TOKENS),
        bert_tokenizer_params=BERT_TOKENIZER_PARAMS,
        learn_params={},
    )
    return list(vocab)


def write_lines(path: str, lines: Sequence[str]) -> None:
    tf.io.gfile.makedirs(os.path.dirname(path))
    with tf.io.gfile.GFile(path, "w") as f:
        for line in lines:
            if "\n" in line:
                raise ValueError(f"vocabulary entry {line!r} holds a newline")
            f.write(line + "\n")


def read_lines(path: str) -> list[str]:
    with tf.io.gfile.GFile(path, "r") as f:
        return [line.rstrip("\n") for line in f]


def check_bert_vocab(vocab: Sequence[str], source: str) -> None:
    check_unique_tokens(vocab, source)
    missing = [t for t in ("[PAD]", "[UNK]", "[CLS]", "[SEP]") if t not in vocab]
    if missing:
        raise ValueError(f"vocabulary {source} lacks the special tokens {missing}")
    if vocab[0] != "[PAD]":
        raise ValueError(f"vocabulary {source} must have [PAD] as its first line (id 0)")


def check_unique_tokens(vocab: Sequence[str], source: str) -> None:
    """Refuses a repeated token, naming both lines (1-based) and the ids (0-based) TensorFlow would report.

    The tokenizer's file-backed lookup table maps each line to its line number and fails on a
    repeated key ("HashTable has different value for same key"), only once the trainer builds it.
    """
    first_line: dict[str, int] = {}
    repeats: list[tuple[str, int, int]] = []
    for index, token in enumerate(vocab):
        first = first_line.setdefault(token, index)
        if first != index:
            repeats.append((token, first, index))
    if not repeats:
        return
    token, first, again = repeats[0]
    others = len(repeats) - 1
    more = f" (and {others} more repeated token{'s' if others > 1 else ''})" if others else ""
    raise ValueError(
        f"vocabulary {source} repeats the token {token!r}: line {first + 1} and line {again + 1} "
        f"(ids {first} and {again}){more}. TensorFlow's lookup table refuses a repeated token. Do not "
        "delete the line: a pretrained embedding's rows follow line order, so every later token would "
        "get its neighbour's row; replace the repeat with a token that never occurs (e.g. "
        f"[unused_repeat_{again}]) so that lines and rows stay aligned"
    )


def grow_id_vocab(known: Sequence[str], counts: collections.Counter, limit: int) -> list[str]:
    """Keeps every known id at its index and appends new ids, most frequent first, up to `limit`."""
    known_set = set(known)
    fresh = sorted((i for i in counts if i not in known_set and i), key=lambda i: (-counts[i], i))
    room = max(0, limit - len(known))
    return list(known) + fresh[:room]
