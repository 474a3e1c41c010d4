"""Initialising the encoder from a pretrained BERT checkpoint directory, in either of two layouts.

* Google's original release: `bert_config.json`, `vocab.txt` and `bert_model.ckpt.*`. Our
  encoder's variables carry the checkpoint's names (`bert/encoder/layer_0/attention/self/query/kernel`),
  so the mapping is by name.
* Hugging Face: `config.json`, `model.safetensors` and `vocab.txt`, read with safetensors' numpy
  API; the name mapping and the [out, in] transposes are in `hf_checkpoint.py`.

Either way `vocab.txt` ships unchanged as the model's asset, every mismatch is reported with the
variable or tensor it concerns, and `init_layers` keeps the bottom K encoder layers of a deeper
checkpoint (the layers above are not read).
"""
from __future__ import annotations

import json
import logging
import os
import re

import tensorflow as tf
import tf_keras as keras

from trainer import hf_checkpoint as hf
from trainer import vocab as vocab_lib
from trainer.config import BertConfig

log = logging.getLogger(__name__)

CHECKPOINT_PREFIX = "bert_model.ckpt"
GOOGLE, HUGGING_FACE = "google", "huggingface"
_LAYOUTS = (
    "a Google BERT checkpoint directory holds bert_config.json, vocab.txt and bert_model.ckpt.*; "
    "a Hugging Face one config.json, model.safetensors and vocab.txt"
)
_LAYER = re.compile(r"^bert/encoder/layer_(\d+)/")


def checkpoint_layout(directory: str) -> str:
    """GOOGLE or HUGGING_FACE; a Hugging Face directory is recognised by config.json + model.safetensors."""
    return HUGGING_FACE if hf.is_hf_directory(directory) else GOOGLE


def _require(directory: str, name: str) -> str:
    path = os.path.join(directory, name)
    if not tf.io.gfile.exists(path):
        hint = ""
        if name == hf.WEIGHTS_FILE and tf.io.gfile.exists(os.path.join(directory, "pytorch_model.bin")):
            hint = ("; pytorch_model.bin is there, but freshrank reads no PyTorch files: convert it to "
                    "model.safetensors where torch is installed")
        raise FileNotFoundError(f"--init-checkpoint {directory}: {name} is missing; {_LAYOUTS}{hint}")
    return path


def read_checkpoint_vocab(directory: str) -> list[str]:
    """vocab.txt, checked: special tokens, [PAD] first, no token repeated (the lookup table refuses one)."""
    path = _require(directory, "vocab.txt")
    vocab = vocab_lib.read_lines(path)
    vocab_lib.check_bert_vocab(vocab, path)
    if checkpoint_layout(directory) == HUGGING_FACE:
        _check_uncased(directory)
    return vocab


def _check_uncased(directory: str) -> None:
    """The in-graph tokenizer lowercases and strips accents; a cased vocabulary would lose its capitals."""
    path = os.path.join(directory, "tokenizer_config.json")
    if not tf.io.gfile.exists(path):
        return
    with tf.io.gfile.GFile(path) as f:
        raw = json.load(f)
    if raw.get("do_lower_case") is False:
        raise ValueError(
            f"{path} says do_lower_case false: a cased model; freshrank's in-graph tokenizer lowercases "
            "(lower_case=True), so only uncased checkpoints fit"
        )


def read_bert_config(
    directory: str, max_seq_length: int, dropout: float | None = None, init_layers: int | None = None
) -> BertConfig:
    """The encoder shape the checkpoint fixes; with `init_layers`, only its bottom K layers."""
    layout = checkpoint_layout(directory)
    name = hf.CONFIG_FILE if layout == HUGGING_FACE else "bert_config.json"
    source = f"{directory}/{name}"
    with tf.io.gfile.GFile(_require(directory, name)) as f:
        raw = json.load(f)
    if layout == HUGGING_FACE:
        hf.check_config(raw, source)
    act = raw.get("hidden_act", "gelu")
    if act != "gelu":
        raise ValueError(f"{source}: hidden_act {act!r} is not supported (only gelu)")
    try:
        held = int(raw["num_hidden_layers"])
        config = BertConfig(
            vocab_size=int(raw["vocab_size"]),
            hidden_size=int(raw["hidden_size"]),
            num_layers=_kept_layers(directory, held, init_layers),
            num_heads=int(raw["num_attention_heads"]),
            intermediate_size=int(raw["intermediate_size"]),
            max_seq_length=min(max_seq_length, int(raw["max_position_embeddings"])),
            max_position_embeddings=int(raw["max_position_embeddings"]),
            type_vocab_size=int(raw.get("type_vocab_size", 2)),
            dropout_rate=float(raw.get("hidden_dropout_prob", 0.1)) if dropout is None else dropout,
            attention_dropout_rate=float(raw.get("attention_probs_dropout_prob", 0.1)),
            initializer_range=float(raw.get("initializer_range", 0.02)),
        )
    except KeyError as error:
        raise ValueError(f"{source} lacks {error.args[0]!r}") from None
    if config.hidden_size % config.num_heads:
        raise ValueError(f"{source}: hidden_size {config.hidden_size} is not divisible by "
                         f"num_attention_heads {config.num_heads}")
    return config


def _kept_layers(directory: str, held: int, init_layers: int | None) -> int:
    if init_layers is None:
        return held
    if init_layers < 1:
        raise ValueError(f"--init-layers must be >= 1, got {init_layers}")
    if init_layers > held:
        raise ValueError(_too_many_layers(directory, init_layers, held))
    return init_layers


def _too_many_layers(directory: str, wanted: int, held: int) -> str:
    return (f"--init-layers {wanted}: checkpoint {directory} holds only {held} encoder layers; "
            f"pass --init-layers between 1 and {held} (or leave it out to keep all {held})")


def _weights_lack_layers(weights: str, layers: int, held: int) -> str:
    return (f"the encoder has {layers} layers, but {weights} holds weights for only {held}; "
            "the config disagrees with the weights, or pass --init-layers <= " + str(held))


def _encoder_variables(model: keras.Model) -> tuple[list[tf.Variable], int]:
    """The model's `bert/...` variables, and how many encoder layers they make up."""
    variables = [v for v in model.variables if v.name.startswith("bert/")]
    indices = {int(m.group(1)) for v in variables if (m := _LAYER.match(v.name))}
    return variables, (max(indices) + 1 if indices else 0)


def load_encoder_weights(model: keras.Model, directory: str, init_layers: int | None = None) -> int:
    """Assigns every `bert/...` variable of the model from the checkpoint; returns how many.

    The model's encoder may be shallower than the checkpoint (built from `read_bert_config(...,
    init_layers=K)`): its K layers take the checkpoint's bottom K, the rest is not read.
    """
    variables, layers = _encoder_variables(model)
    if init_layers is not None and init_layers != layers:
        raise ValueError(f"init_layers {init_layers}, but the encoder was built with {layers} layers")
    layout = checkpoint_layout(directory)
    if layout == HUGGING_FACE:
        _require(directory, hf.WEIGHTS_FILE)
        with hf.SafetensorsWeights(directory) as weights:
            held = weights.layers_held()
            if layers > held:
                raise ValueError(_weights_lack_layers(f"{directory}/{hf.WEIGHTS_FILE}", layers, held))
            vocab_path = os.path.join(directory, "vocab.txt")
            vocab_lines = len(vocab_lib.read_lines(vocab_path)) if tf.io.gfile.exists(vocab_path) else None
            assigned = hf.assign_encoder(weights, variables, vocab_lines)
    else:
        assigned, held = _load_google(variables, layers, directory)
    log.info("initialised %d encoder variables from %s (%s layout, bottom %d of %d layers)",
             assigned, directory, layout, layers, held)
    return assigned


def _load_google(variables: list[tf.Variable], layers: int, directory: str) -> tuple[int, int]:
    _require(directory, CHECKPOINT_PREFIX + ".index")
    reader = tf.train.load_checkpoint(os.path.join(directory, CHECKPOINT_PREFIX))
    shapes = reader.get_variable_to_shape_map()
    held_indices = {int(m.group(1)) for n in shapes if (m := _LAYER.match(n))}
    held = max(held_indices) + 1 if held_indices else 0
    if layers > held:
        raise ValueError(_weights_lack_layers(f"{directory}/{CHECKPOINT_PREFIX}", layers, held))
    assigned = 0
    for variable in variables:
        name = variable.name.split(":")[0]
        if name not in shapes:
            raise ValueError(f"checkpoint {directory} has no variable {name}, which the encoder needs")
        if tuple(shapes[name]) != tuple(variable.shape):
            raise ValueError(
                f"checkpoint variable {name} has shape {tuple(shapes[name])}, the encoder expects "
                f"{tuple(variable.shape)}; check bert_config.json against the checkpoint"
            )
        variable.assign(reader.get_tensor(name))
        assigned += 1
    return assigned, held
