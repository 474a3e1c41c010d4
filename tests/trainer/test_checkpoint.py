"""Initialising from an original Google BERT checkpoint directory, checked against a numpy BERT.

The checkpoint is written here the way google-research/bert's TF1 code wrote them: plain graph
variables named `bert/embeddings/word_embeddings`, `bert/encoder/layer_0/attention/self/query/kernel`,
... saved with `tf.compat.v1.train.Saver`, next to `bert_config.json` and `vocab.txt`. A reference
forward pass in numpy, reading only the checkpoint, proves the name mapping: a swapped query/key,
a transposed kernel or a misplaced LayerNorm would change the outputs.
"""
from __future__ import annotations

import json
import os

import numpy as np
import pytest
import tensorflow as tf
from scipy.special import erf

from tests.helpers import write_examples
from trainer import checkpoint as ckpt
from trainer.config import ID_FEATURES, TrainConfig
from trainer.model import Vocabularies, build_core

# Tiny, but with every shape distinct so a transposed or swapped variable cannot fit by accident.
BERT_JSON = {
    "attention_probs_dropout_prob": 0.1,
    "hidden_act": "gelu",
    "hidden_dropout_prob": 0.1,
    "hidden_size": 24,
    "initializer_range": 0.02,
    "intermediate_size": 40,
    "max_position_embeddings": 64,
    "num_attention_heads": 3,
    "num_hidden_layers": 2,
    "type_vocab_size": 2,
    "vocab_size": None,  # filled from VOCAB
}
VOCAB = (
    ["[PAD]", "[UNK]", "[CLS]", "[SEP]", "[MASK]", "[unused0]"]
    + ["the", "running", "shoes", "phone", "red", "nike", "xiaomi", "run", "##ning", "##s", "5g", "case"]
    + ["跑", "鞋", "男", "手", "机", "红", "色", "##ing", ",", "."]
)


def _encoder_arrays(cfg: dict, rng: np.random.Generator) -> dict[str, np.ndarray]:
    h, i = cfg["hidden_size"], cfg["intermediate_size"]

    def normal(*shape):
        # Large enough that every weight visibly moves the output (0.02 would drown in LayerNorm).
        return rng.normal(0.0, 0.4, size=shape).astype(np.float32)

    arrays = {
        "bert/embeddings/word_embeddings": normal(cfg["vocab_size"], h),
        "bert/embeddings/position_embeddings": normal(cfg["max_position_embeddings"], h),
        "bert/embeddings/token_type_embeddings": normal(cfg["type_vocab_size"], h),
        "bert/embeddings/LayerNorm/gamma": 1.0 + normal(h),
        "bert/embeddings/LayerNorm/beta": normal(h),
        "bert/pooler/dense/kernel": normal(h, h),
        "bert/pooler/dense/bias": normal(h),
    }
    for n in range(cfg["num_hidden_layers"]):
        p = f"bert/encoder/layer_{n}/"
        for name in ("attention/self/query", "attention/self/key", "attention/self/value", "attention/output/dense"):
            arrays[p + name + "/kernel"] = normal(h, h)
            arrays[p + name + "/bias"] = normal(h)
        arrays[p + "intermediate/dense/kernel"] = normal(h, i)
        arrays[p + "intermediate/dense/bias"] = normal(i)
        arrays[p + "output/dense/kernel"] = normal(i, h)
        arrays[p + "output/dense/bias"] = normal(h)
        for norm in ("attention/output/LayerNorm", "output/LayerNorm"):
            arrays[p + norm + "/gamma"] = 1.0 + normal(h)
            arrays[p + norm + "/beta"] = normal(h)
    return arrays


def write_google_checkpoint(
    directory: str, seed: int = 0, drop: tuple[str, ...] = (), reshape: dict[str, tuple] | None = None,
    **config_overrides,
) -> dict[str, np.ndarray]:
    """bert_config.json, vocab.txt and bert_model.ckpt.* as Google published them; returns the arrays."""
    os.makedirs(directory, exist_ok=True)
    cfg = dict(BERT_JSON, vocab_size=len(VOCAB))
    rng = np.random.default_rng(seed)
    arrays = _encoder_arrays(cfg, rng)
    for name, shape in (reshape or {}).items():
        arrays[name] = rng.normal(size=shape).astype(np.float32)
    for name in drop:
        del arrays[name]
    # What else a pre-training checkpoint holds; the encoder must ignore it.
    extras = {
        "cls/predictions/transform/dense/kernel": rng.normal(size=(cfg["hidden_size"],) * 2).astype(np.float32),
        "cls/predictions/output_bias": np.zeros(len(VOCAB), np.float32),
        "cls/seq_relationship/output_weights": np.zeros((2, cfg["hidden_size"]), np.float32),
    }
    with tf.Graph().as_default():
        variables = [tf.compat.v1.Variable(v, name=k) for k, v in {**arrays, **extras}.items()]
        variables.append(tf.compat.v1.Variable(np.int64(1000), name="global_step"))
        saver = tf.compat.v1.train.Saver(variables)
        with tf.compat.v1.Session() as session:
            session.run(tf.compat.v1.global_variables_initializer())
            saver.save(session, os.path.join(directory, ckpt.CHECKPOINT_PREFIX), write_meta_graph=False)
    with open(os.path.join(directory, "bert_config.json"), "w") as f:
        json.dump(dict(cfg, **config_overrides), f, indent=2)
    with open(os.path.join(directory, "vocab.txt"), "w", encoding="utf-8") as f:
        f.write("".join(token + "\n" for token in VOCAB))
    return arrays


def _build(directory: str, max_seq_length: int = 16, init_layers: int | None = None):
    bert = ckpt.read_bert_config(directory, max_seq_length, init_layers=init_layers)
    vocab = ckpt.read_checkpoint_vocab(directory)
    ids = {f: ["[UNK]", "x"] for f in ID_FEATURES}
    vocabs = Vocabularies(os.path.join(directory, "vocab.txt"), vocab, ids, 0.0, 1.0)
    return build_core(TrainConfig(bert=bert), vocabs)


# ---------------------------------------------------------------- numpy reference BERT


def _layer_norm(x, gamma, beta, eps=1e-12):
    mean = x.mean(-1, keepdims=True)
    var = ((x - mean) ** 2).mean(-1, keepdims=True)
    return (x - mean) / np.sqrt(var + eps) * gamma + beta


def _gelu(x):
    return 0.5 * x * (1.0 + erf(x / np.sqrt(2.0)))


def _softmax(x):
    e = np.exp(x - x.max(-1, keepdims=True))
    return e / e.sum(-1, keepdims=True)


def reference_bert(w: dict[str, np.ndarray], cfg: dict, word_ids, mask, type_ids):
    """google-research/bert modeling.py's forward pass (dropout off), from checkpoint arrays only;
    through the bottom cfg["num_hidden_layers"] layers."""
    w = {k: v.astype(np.float64) for k, v in w.items()}
    batch, seq = word_ids.shape
    heads, h = cfg["num_attention_heads"], cfg["hidden_size"]
    d = h // heads
    x = (
        w["bert/embeddings/word_embeddings"][word_ids]
        + w["bert/embeddings/token_type_embeddings"][type_ids]
        + w["bert/embeddings/position_embeddings"][:seq][None]
    )
    x = _layer_norm(x, w["bert/embeddings/LayerNorm/gamma"], w["bert/embeddings/LayerNorm/beta"])
    bias = (1.0 - mask[:, None, None, :].astype(np.float64)) * -10000.0

    def dense(t, name):
        return t @ w[name + "/kernel"] + w[name + "/bias"]

    def split(t):
        return t.reshape(batch, seq, heads, d).transpose(0, 2, 1, 3)

    for n in range(cfg["num_hidden_layers"]):
        p = f"bert/encoder/layer_{n}/"
        q, k, v = (split(dense(x, p + f"attention/self/{m}")) for m in ("query", "key", "value"))
        probs = _softmax(q @ k.transpose(0, 1, 3, 2) / np.sqrt(d) + bias)
        context = (probs @ v).transpose(0, 2, 1, 3).reshape(batch, seq, h)
        attended = _layer_norm(
            x + dense(context, p + "attention/output/dense"),
            w[p + "attention/output/LayerNorm/gamma"], w[p + "attention/output/LayerNorm/beta"],
        )
        ffn = dense(_gelu(dense(attended, p + "intermediate/dense")), p + "output/dense")
        x = _layer_norm(attended + ffn, w[p + "output/LayerNorm/gamma"], w[p + "output/LayerNorm/beta"])
    pooled = np.tanh(dense(x[:, 0], "bert/pooler/dense"))
    return x, pooled


# ---------------------------------------------------------------- tests


def test_checkpoint_lists_the_original_flat_names(tmp_path):
    write_google_checkpoint(str(tmp_path))
    names = tf.train.load_checkpoint(str(tmp_path / "bert_model.ckpt")).get_variable_to_shape_map()
    assert names["bert/encoder/layer_0/attention/self/query/kernel"] == [24, 24]
    assert names["bert/encoder/layer_1/intermediate/dense/kernel"] == [24, 40]
    assert names["bert/embeddings/word_embeddings"] == [len(VOCAB), 24]
    assert "global_step" in names and "cls/predictions/output_bias" in names


def test_loaded_encoder_matches_numpy_bert_from_the_checkpoint(tmp_path):
    arrays = write_google_checkpoint(str(tmp_path))
    cfg = dict(BERT_JSON, vocab_size=len(VOCAB))
    model = _build(str(tmp_path))
    assigned = ckpt.load_encoder_weights(model, str(tmp_path))
    assert assigned == len(arrays)  # every encoder variable, nothing from cls/ or global_step

    rng = np.random.default_rng(1)
    seq = 16
    word_ids = rng.integers(5, len(VOCAB), size=(3, seq))
    word_ids[:, 0] = VOCAB.index("[CLS]")
    lengths = np.array([16, 9, 4])  # full, half, short: the mask must hide padding from attention
    mask = (np.arange(seq)[None, :] < lengths[:, None]).astype(np.int64)
    word_ids = np.where(mask == 1, word_ids, 0)
    type_ids = ((np.arange(seq)[None, :] >= lengths[:, None] // 2) & (mask == 1)).astype(np.int64)

    encoder = model.get_layer("bert")
    out = encoder(
        {"input_word_ids": tf.constant(word_ids), "input_mask": tf.constant(mask),
         "input_type_ids": tf.constant(type_ids)},
        training=False,
    )
    sequence, pooled = reference_bert(arrays, cfg, word_ids, mask, type_ids)
    # Padded positions are computed too (and ignored downstream); compare them all.
    np.testing.assert_allclose(out["sequence_output"].numpy(), sequence, atol=2e-4, rtol=1e-4)
    np.testing.assert_allclose(out["pooled_output"].numpy(), pooled, atol=2e-4, rtol=1e-4)
    # The comparison is sensitive: the same model before loading disagrees completely.
    fresh = _build(str(tmp_path)).get_layer("bert")
    fresh_pooled = fresh(
        {"input_word_ids": tf.constant(word_ids), "input_mask": tf.constant(mask),
         "input_type_ids": tf.constant(type_ids)}, training=False,
    )["pooled_output"].numpy()
    assert np.abs(fresh_pooled - pooled).max() > 0.1


def test_config_and_vocab_come_from_the_directory(tmp_path):
    write_google_checkpoint(str(tmp_path))
    bert = ckpt.read_bert_config(str(tmp_path), max_seq_length=128)
    assert (bert.hidden_size, bert.num_layers, bert.num_heads, bert.intermediate_size) == (24, 2, 3, 40)
    assert bert.max_seq_length == 64  # capped by max_position_embeddings
    assert bert.vocab_size == len(VOCAB)
    assert ckpt.read_checkpoint_vocab(str(tmp_path)) == VOCAB


def test_shape_mismatch_names_the_variable(tmp_path):
    name = "bert/encoder/layer_1/intermediate/dense/kernel"
    write_google_checkpoint(str(tmp_path), reshape={name: (24, 48)})
    model = _build(str(tmp_path))
    with pytest.raises(ValueError, match=rf"{name} has shape \(24, 48\).*expects \(24, 40\)"):
        ckpt.load_encoder_weights(model, str(tmp_path))


def test_config_disagreeing_with_checkpoint_names_the_variable(tmp_path):
    write_google_checkpoint(str(tmp_path), intermediate_size=32)  # json lies about the weights
    model = _build(str(tmp_path))
    with pytest.raises(ValueError, match=r"layer_0/intermediate/dense/kernel.*bert_config.json"):
        ckpt.load_encoder_weights(model, str(tmp_path))


def test_missing_variable_is_named(tmp_path):
    name = "bert/encoder/layer_1/attention/output/LayerNorm/beta"
    write_google_checkpoint(str(tmp_path), drop=(name,))
    model = _build(str(tmp_path))
    with pytest.raises(ValueError, match=rf"has no variable {name}\b"):
        ckpt.load_encoder_weights(model, str(tmp_path))


@pytest.mark.parametrize("missing", ["bert_config.json", "vocab.txt", "bert_model.ckpt.index"])
def test_missing_file_is_named(tmp_path, missing):
    write_google_checkpoint(str(tmp_path))
    model = _build(str(tmp_path))
    os.remove(tmp_path / missing)
    with pytest.raises(FileNotFoundError, match=rf"{missing} is missing.*bert_config.json, vocab.txt"):
        if missing == "bert_config.json":
            ckpt.read_bert_config(str(tmp_path), 16)
        elif missing == "vocab.txt":
            ckpt.read_checkpoint_vocab(str(tmp_path))
        else:
            ckpt.load_encoder_weights(model, str(tmp_path))


def test_unsupported_activation_is_refused(tmp_path):
    write_google_checkpoint(str(tmp_path), hidden_act="relu")
    with pytest.raises(ValueError, match="hidden_act 'relu'"):
        ckpt.read_bert_config(str(tmp_path), 16)


def _batch(seq: int = 16):
    rng = np.random.default_rng(1)
    word_ids = rng.integers(5, len(VOCAB), size=(3, seq))
    word_ids[:, 0] = VOCAB.index("[CLS]")
    lengths = np.array([16, 9, 4])
    mask = (np.arange(seq)[None, :] < lengths[:, None]).astype(np.int64)
    word_ids = np.where(mask == 1, word_ids, 0)
    type_ids = ((np.arange(seq)[None, :] >= lengths[:, None] // 2) & (mask == 1)).astype(np.int64)
    return word_ids, mask, type_ids


def test_init_layers_keeps_the_bottom_layers_of_a_google_checkpoint(tmp_path):
    arrays = write_google_checkpoint(str(tmp_path))
    model = _build(str(tmp_path), init_layers=1)
    encoder = model.get_layer("bert")
    assert len(encoder.blocks) == 1
    per_layer = sum(1 for k in arrays if k.startswith("bert/encoder/layer_0/"))
    assert ckpt.load_encoder_weights(model, str(tmp_path), init_layers=1) == len(arrays) - per_layer
    word_ids, mask, type_ids = _batch()
    out = encoder({"input_word_ids": tf.constant(word_ids), "input_mask": tf.constant(mask),
                   "input_type_ids": tf.constant(type_ids)}, training=False)
    one = dict(BERT_JSON, vocab_size=len(VOCAB), num_hidden_layers=1)
    sequence, pooled = reference_bert(arrays, one, word_ids, mask, type_ids)
    np.testing.assert_allclose(out["sequence_output"].numpy(), sequence, atol=2e-4, rtol=1e-4)
    np.testing.assert_allclose(out["pooled_output"].numpy(), pooled, atol=2e-4, rtol=1e-4)
    _, both = reference_bert(arrays, dict(one, num_hidden_layers=2), word_ids, mask, type_ids)
    assert np.abs(both - out["pooled_output"].numpy()).max() > 0.1  # layer 0 alone, not both


def test_init_layers_above_a_google_checkpoint_is_refused(tmp_path):
    write_google_checkpoint(str(tmp_path))
    with pytest.raises(ValueError, match=r"--init-layers 3: checkpoint .* holds only 2 encoder layers"):
        ckpt.read_bert_config(str(tmp_path), 16, init_layers=3)


def test_config_claiming_more_layers_than_the_google_checkpoint_holds(tmp_path):
    write_google_checkpoint(str(tmp_path), num_hidden_layers=3)  # the weights hold 2
    model = _build(str(tmp_path))
    with pytest.raises(ValueError, match=r"the encoder has 3 layers, but .*bert_model\.ckpt holds weights for only 2"):
        ckpt.load_encoder_weights(model, str(tmp_path))


def test_repeated_token_in_a_google_vocab_is_named(tmp_path):
    write_google_checkpoint(str(tmp_path))
    lines = (tmp_path / "vocab.txt").read_text(encoding="utf-8").splitlines()
    lines[VOCAB.index("跑")] = "机"  # 机 comes later too
    (tmp_path / "vocab.txt").write_text("".join(t + "\n" for t in lines), encoding="utf-8")
    first, again = VOCAB.index("跑"), VOCAB.index("机")
    with pytest.raises(ValueError, match=rf"vocab\.txt repeats the token '机': line {first + 1} and line "
                                         rf"{again + 1} \(ids {first} and {again}\)"):
        ckpt.read_checkpoint_vocab(str(tmp_path))


# ---------------------------------------------------------------- through train()


def test_train_from_checkpoint_ships_its_vocab_unchanged(tmp_path):
    from trainer.task import train

    ckpt_dir = str(tmp_path / "uncased_L-2_H-24_A-3")
    write_google_checkpoint(ckpt_dir)
    data_dir = tmp_path / "examples"
    write_examples(str(data_dir / "Split-train" / "data_tfrecord-00000-of-00001.gz"), 48, seed=0)
    write_examples(str(data_dir / "Split-eval" / "data_tfrecord-00000-of-00001.gz"), 16, seed=1)
    config = TrainConfig(init_checkpoint=ckpt_dir, epochs=1, steps_per_epoch=2, batch_size=8)
    serving = str(tmp_path / "serving")
    facts = train(
        config, [str(data_dir / "Split-train" / "*")], [str(data_dir / "Split-eval" / "*")],
        serving, str(tmp_path / "logs"), base_model=None,
    )

    with open(os.path.join(ckpt_dir, "vocab.txt"), "rb") as f:
        original = f.read()
    with open(os.path.join(serving, "assets", "vocab.txt"), "rb") as f:
        shipped = f.read()
    assert shipped == original
    info = json.load(open(os.path.join(serving, "assets.extra", "freshrank", "model.json")))
    bert = info["train_config"]["bert"]
    assert (bert["hidden_size"], bert["num_layers"], bert["num_heads"], bert["intermediate_size"]) == (24, 2, 3, 40)
    assert bert["vocab_size"] == len(VOCAB)
    assert facts["total_parameters"] > 0
    loaded = tf.saved_model.load(serving)
    score = loaded.signatures["serving_default"](
        query=tf.constant(["跑鞋 男"]), title=tf.constant(["跑 鞋 男 run"]), brand=tf.constant(["nike"]),
        category=tf.constant(["shoes"]), product_id=tf.constant(["p3"]), price=tf.constant([99.0]),
    )["score"].numpy()
    assert 0.0 < float(score[0]) < 1.0
