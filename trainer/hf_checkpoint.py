"""Initialising the encoder from a Hugging Face BERT directory: config.json, model.safetensors, vocab.txt.

The weights are read with the `safetensors` package's numpy API; PyTorch is never imported.
Hugging Face names map mechanically onto our encoder's (Google-style) variable names:

    bert/embeddings/word_embeddings               <- embeddings.word_embeddings.weight
    bert/embeddings/LayerNorm/gamma, beta         <- embeddings.LayerNorm.weight, bias (old files: gamma, beta)
    bert/encoder/layer_N/attention/self/query/... <- encoder.layer.N.attention.self.query.weight, bias
    bert/pooler/dense/kernel                      <- pooler.dense.weight

Every `.../kernel` is a PyTorch Linear weight stored [out, in], so it is transposed. A `bert.`
name prefix (BertForSequenceClassification, BertForPreTraining, ...) is accepted; tensors the
encoder has no use for (`embeddings.position_ids`, `cls.*`, layers above the ones kept) are ignored.
"""
from __future__ import annotations

import os
import re
import shutil
import tempfile

import numpy as np
import tensorflow as tf

CONFIG_FILE = "config.json"
WEIGHTS_FILE = "model.safetensors"
PREFIXES = ("", "bert.")
_LAYER = re.compile(r"^encoder\.layer\.(\d+)\.")


def is_hf_directory(directory: str) -> bool:
    """config.json with model.safetensors; config.json alone (no bert_config.json) also counts, so the
    missing weights file is reported as such rather than as a missing Google checkpoint."""
    if not tf.io.gfile.exists(os.path.join(directory, CONFIG_FILE)):
        return False
    return tf.io.gfile.exists(os.path.join(directory, WEIGHTS_FILE)) or not tf.io.gfile.exists(
        os.path.join(directory, "bert_config.json")
    )


def check_config(raw: dict, source: str) -> None:
    """Refuses Hugging Face configs whose model our post-LayerNorm, absolute-position BERT would compute wrongly."""
    problems = []
    model_type = raw.get("model_type", "bert")
    if model_type != "bert":
        # RoBERTa offsets positions by padding_idx + 1, DistilBERT names everything differently, ...
        problems.append(f"model_type {model_type!r} is not 'bert'")
    position = raw.get("position_embedding_type", "absolute")
    if position != "absolute":
        problems.append(f"position_embedding_type {position!r} is not supported (only 'absolute')")
    eps = float(raw.get("layer_norm_eps", 1e-12))
    if abs(eps - 1e-12) > 1e-15:
        problems.append(f"layer_norm_eps {eps} differs from the encoder's 1e-12")
    if raw.get("is_decoder") or raw.get("add_cross_attention"):
        problems.append("decoder / cross-attention BERTs are not supported")
    act = raw.get("hidden_act", "gelu")
    if act != "gelu":
        # Hugging Face's "gelu" is the exact erf GELU, which the encoder uses; gelu_new and
        # gelu_pytorch_tanh are the tanh approximation.
        problems.append(f"hidden_act {act!r} is not supported (only gelu, the exact erf form)")
    if problems:
        raise ValueError(f"{source}: " + "; ".join(problems))


def hf_names(variable_name: str) -> tuple[tuple[str, ...], bool]:
    """Our `bert/...` variable name (no `:0`) -> the Hugging Face names it may have, and whether to transpose."""
    if not variable_name.startswith("bert/"):
        raise ValueError(f"{variable_name} is not an encoder variable")
    *head, leaf = variable_name[len("bert/"):].split("/")
    if len(head) >= 2 and head[0] == "encoder" and head[1].startswith("layer_"):
        head = ["encoder", "layer", head[1][len("layer_"):], *head[2:]]
    stem = ".".join(head)
    if leaf == "kernel":
        return (f"{stem}.weight",), True
    if leaf == "bias":
        return (f"{stem}.bias",), False
    if leaf == "gamma":  # LayerNorm scale: `weight` today, `gamma` in files from before transformers 4
        return (f"{stem}.weight", f"{stem}.gamma"), False
    if leaf == "beta":
        return (f"{stem}.bias", f"{stem}.beta"), False
    if leaf.endswith("_embeddings"):
        return (f"{stem}.{leaf}.weight",), False
    raise ValueError(f"encoder variable {variable_name} has no Hugging Face counterpart")


class SafetensorsWeights:
    """The tensors of one model.safetensors file, opened lazily (only what the encoder keeps is read)."""

    def __init__(self, directory: str):
        from safetensors import safe_open

        self.directory = directory
        self.path = os.path.join(directory, WEIGHTS_FILE)
        self._tmp = None
        local = self.path
        if "://" in self.path:  # gs://...: safetensors memory-maps a local file
            self._tmp = tempfile.mkdtemp(prefix="freshrank-hf-")
            local = os.path.join(self._tmp, WEIGHTS_FILE)
            tf.io.gfile.copy(self.path, local)
        try:
            self._file = safe_open(local, framework="numpy")
        except Exception as error:  # noqa: BLE001 - the library raises its own error types
            self.close()
            raise ValueError(f"{self.path} is not a readable safetensors file: {error}") from None
        self.names = set(self._file.keys())
        try:
            self.prefix = self._find_prefix()
        except ValueError:
            self.close()
            raise

    def _find_prefix(self) -> str:
        for prefix in PREFIXES:
            if prefix + "embeddings.word_embeddings.weight" in self.names:
                return prefix
        sample = sorted(self.names)[:5]
        raise ValueError(
            f"{self.path} has no tensor embeddings.word_embeddings.weight (nor bert.embeddings.word_embeddings."
            f"weight): it does not look like a BERT model; its first tensors are {sample}"
        )

    def layers_held(self) -> int:
        """Encoder layers in the file: one more than the highest `encoder.layer.N` index."""
        indices = set()
        for name in self.names:
            match = _LAYER.match(name[len(self.prefix):]) if name.startswith(self.prefix) else None
            if match:
                indices.add(int(match.group(1)))
        return max(indices) + 1 if indices else 0

    def find(self, candidates: tuple[str, ...]) -> str | None:
        for name in candidates:
            if self.prefix + name in self.names:
                return self.prefix + name
        return None

    def shape(self, name: str) -> tuple[int, ...]:
        return tuple(int(d) for d in self._file.get_slice(name).get_shape())

    def tensor(self, name: str) -> np.ndarray:
        try:
            value = self._file.get_tensor(name)
        except Exception as error:  # noqa: BLE001 - bfloat16 where nothing registered it with numpy
            raise ValueError(f"{self.path}: tensor {name} cannot be read into numpy ({error}); "
                             "save the model in float32 or float16") from None
        # float16 and bfloat16 (a numpy dtype once TensorFlow has registered ml_dtypes) widen exactly.
        if not (np.issubdtype(value.dtype, np.floating) or value.dtype.name == "bfloat16"):
            raise ValueError(f"{self.path}: tensor {name} has dtype {value.dtype}, not a float")
        return value.astype(np.float32)

    def __enter__(self) -> SafetensorsWeights:
        return self

    def __exit__(self, *exc) -> None:
        self.close()

    def close(self) -> None:
        self._file = None
        if self._tmp:
            shutil.rmtree(self._tmp, ignore_errors=True)
            self._tmp = None


def assign_encoder(weights: SafetensorsWeights, variables: list[tf.Variable], vocab_lines: int | None) -> int:
    """Assigns each `bert/...` variable from the file, transposing dense kernels; returns how many."""
    assigned = 0
    for variable in variables:
        var_name = variable.name.split(":")[0]
        candidates, transpose = hf_names(var_name)
        name = weights.find(candidates)
        if name is None:
            also = f" (nor {weights.prefix}{candidates[1]})" if len(candidates) > 1 else ""
            raise ValueError(
                f"{weights.path} has no tensor {weights.prefix}{candidates[0]}{also}, which the encoder's "
                f"{var_name} needs"
            )
        expected = tuple(int(d) for d in variable.shape)
        if transpose:
            expected = expected[::-1]
        got = weights.shape(name)
        if got != expected:
            hint = "check config.json against the weights"
            if var_name.endswith("word_embeddings") and vocab_lines is not None:
                hint = f"vocab.txt has {vocab_lines} lines, one per row; {hint}"
            order = " ([out, in], as PyTorch stores it)" if transpose else ""
            raise ValueError(
                f"tensor {name} in {weights.path} has shape {got}, the encoder expects {expected}{order} "
                f"for {var_name}; {hint}"
            )
        value = weights.tensor(name)
        variable.assign(value.T if transpose else value)
        assigned += 1
    return assigned
