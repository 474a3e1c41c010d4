"""Initialising the encoder from an original Google BERT checkpoint directory.

The directory holds `bert_config.json`, `vocab.txt` and `bert_model.ckpt.*`. Our encoder's
variables carry the checkpoint's names (`bert/encoder/layer_0/attention/self/query/kernel`),
so the mapping is by name; every mismatch is reported with the variable it concerns.
"""
from __future__ import annotations

import json
import os

import tensorflow as tf
import tf_keras as keras

from trainer import vocab as vocab_lib
from trainer.config import BertConfig

CHECKPOINT_PREFIX = "bert_model.ckpt"


def _require(directory: str, name: str) -> str:
    path = os.path.join(directory, name)
    if not tf.io.gfile.exists(path):
        raise FileNotFoundError(
            f"--init-checkpoint {directory}: {name} is missing; a Google BERT checkpoint directory "
            "holds bert_config.json, vocab.txt and bert_model.ckpt.*"
        )
    return path


def read_checkpoint_vocab(directory: str) -> list[str]:
    vocab = vocab_lib.read_lines(_require(directory, "vocab.txt"))
    vocab_lib.check_bert_vocab(vocab, os.path.join(directory, "vocab.txt"))
    return vocab


def read_bert_config(directory: str, max_seq_length: int, dropout: float | None = None) -> BertConfig:
    with tf.io.gfile.GFile(_require(directory, "bert_config.json")) as f:
        raw = json.load(f)
    act = raw.get("hidden_act", "gelu")
    if act != "gelu":
        raise ValueError(f"{directory}/bert_config.json: hidden_act {act!r} is not supported (only gelu)")
    return BertConfig(
        vocab_size=int(raw["vocab_size"]),
        hidden_size=int(raw["hidden_size"]),
        num_layers=int(raw["num_hidden_layers"]),
        num_heads=int(raw["num_attention_heads"]),
        intermediate_size=int(raw["intermediate_size"]),
        max_seq_length=min(max_seq_length, int(raw["max_position_embeddings"])),
        max_position_embeddings=int(raw["max_position_embeddings"]),
        type_vocab_size=int(raw.get("type_vocab_size", 2)),
        dropout_rate=float(raw.get("hidden_dropout_prob", 0.1)) if dropout is None else dropout,
        attention_dropout_rate=float(raw.get("attention_probs_dropout_prob", 0.1)),
        initializer_range=float(raw.get("initializer_range", 0.02)),
    )


def load_encoder_weights(model: keras.Model, directory: str) -> int:
    """Assigns every `bert/...` variable of the model from the checkpoint; returns how many."""
    _require(directory, CHECKPOINT_PREFIX + ".index")
    reader = tf.train.load_checkpoint(os.path.join(directory, CHECKPOINT_PREFIX))
    shapes = reader.get_variable_to_shape_map()
    assigned = 0
    for variable in model.variables:
        name = variable.name.split(":")[0]
        if not name.startswith("bert/"):
            continue
        if name not in shapes:
            raise ValueError(f"checkpoint {directory} has no variable {name}, which the encoder needs")
        if tuple(shapes[name]) != tuple(variable.shape):
            raise ValueError(
                f"checkpoint variable {name} has shape {tuple(shapes[name])}, the encoder expects "
                f"{tuple(variable.shape)}; check bert_config.json against the checkpoint"
            )
        variable.assign(reader.get_tensor(name))
        assigned += 1
    return assigned
