"""In-graph tokenization of the (query, product) pair and the lexical-match feature."""
import numpy as np
import tensorflow as tf

from trainer import vocab as vocab_lib
from trainer.text import PairTokenizer, overlap


def _tokenizer(tmp_path, max_seq_length=12, pad_to_longest=True):
    words = ["[PAD]", "[UNK]", "[CLS]", "[SEP]", "[MASK]", "nike", "running", "shoes", "跑", "鞋", "red"]
    path = tmp_path / "vocab.txt"
    vocab_lib.write_lines(str(path), words)
    return PairTokenizer(str(path), words, max_seq_length, pad_to_longest=pad_to_longest), words


def test_pair_is_cls_query_sep_document_sep_padded(tmp_path):
    tok, words = _tokenizer(tmp_path, pad_to_longest=False)
    out = tok(tf.constant(["Nike 跑鞋"]), tf.constant(["red running shoes"]))
    ids = [words[i] for i in out["input_word_ids"].numpy()[0]]
    assert ids == ["[CLS]", "nike", "跑", "鞋", "[SEP]", "red", "running", "shoes", "[SEP]",
                   "[PAD]", "[PAD]", "[PAD]"]
    assert out["input_type_ids"].numpy()[0].tolist() == [0] * 5 + [1] * 4 + [0] * 3
    assert out["input_mask"].numpy()[0].tolist() == [1] * 9 + [0] * 3


def test_a_batch_is_padded_to_its_longest_pair_only(tmp_path):
    tok, words = _tokenizer(tmp_path)
    out = tok(tf.constant(["nike", "red"]), tf.constant(["red running shoes", "shoes"]))
    assert out["input_word_ids"].shape == (2, 7)  # the longest pair, not max_seq_length (12)
    assert [words[i] for i in out["input_word_ids"].numpy()[1]] == ["[CLS]", "red", "[SEP]", "shoes", "[SEP]",
                                                                    "[PAD]", "[PAD]"]
    assert out["input_mask"].numpy().tolist() == [[1] * 7, [1] * 5 + [0] * 2]
    full, _ = _tokenizer(tmp_path, pad_to_longest=False)
    padded = full(tf.constant(["nike", "red"]), tf.constant(["red running shoes", "shoes"]))
    for name, value in out.items():
        np.testing.assert_array_equal(value.numpy(), padded[name].numpy()[:, :7])
        assert not padded[name].numpy()[:, 7:].any()  # what was cut off is padding only
    empty = tok(tf.constant([], tf.string), tf.constant([], tf.string))
    assert empty["input_word_ids"].shape == (0, 1)


def test_long_pairs_are_trimmed_to_the_sequence_length(tmp_path):
    tok, _ = _tokenizer(tmp_path, max_seq_length=8)
    out = tok(tf.constant(["nike running shoes red"]), tf.constant(["red running shoes nike 跑 鞋"]))
    assert out["input_word_ids"].shape == (1, 8)
    assert out["input_mask"].numpy().sum() == 8


def test_overlap_is_the_share_of_distinct_query_pieces_found(tmp_path):
    tok, _ = _tokenizer(tmp_path)
    q = tok.wordpieces(tf.constant(["nike 跑鞋", "red red", "", "unknownword"]))
    d = tok.wordpieces(tf.constant(["nike running shoes", "red", "nike", "nike"]))
    np.testing.assert_allclose(overlap(q, d).numpy(), [1 / 3, 1.0, 0.0, 0.0])


def test_trim_matches_tf_text_round_robin_trimmer():
    import tensorflow_text as tf_text

    from trainer.text import round_robin_trim

    rng = np.random.default_rng(0)
    lengths = [(0, 0), (3, 100), (100, 3), (20, 20), (5, 4), (4, 5), (1, 0), (0, 9), (8, 9)]
    for budget in (1, 8, 9, 45):
        first = tf.ragged.constant([list(rng.integers(5, 50, a)) for a, _ in lengths], dtype=tf.int64)
        second = tf.ragged.constant([list(rng.integers(5, 50, b)) for _, b in lengths], dtype=tf.int64)
        ours = round_robin_trim(first, second, budget)
        theirs = tf_text.RoundRobinTrimmer(max_seq_length=budget).trim([first, second])
        for a, b in zip(ours, theirs, strict=True):
            assert a.to_list() == b.to_list(), budget


def test_a_ranker_scores_the_same_whatever_the_padding(tmp_path):
    """Padding only to the batch's longest pair changes no score: padding is masked everywhere."""
    from trainer.config import TrainConfig
    from trainer.model import Preprocessor, Vocabularies, build_core, purchase_probability

    words = ["[PAD]", "[UNK]", "[CLS]", "[SEP]", "[MASK]", "nike", "running", "shoes", "跑", "鞋", "red"]
    vocab_lib.write_lines(str(tmp_path / "vocab.txt"), words)
    ids = {"product_id": ["[UNK]", "p1", "p2"], "brand": ["[UNK]", "nike"], "category": ["[UNK]", "shoes"]}
    vocabs = Vocabularies(str(tmp_path / "vocab.txt"), words, ids, 3.0, 1.0)
    features = {"query": tf.constant(["nike", "red shoes", "跑鞋 nike running"]),
                "title": tf.constant(["red running shoes nike", "shoes", "running 跑鞋"]),
                "brand": tf.constant(["nike", "", "nike"]), "category": tf.constant(["shoes", "shoes", ""]),
                "product_id": tf.constant(["p1", "p2", "p9"]), "user_id": tf.constant(["u", "u", "v"]),
                "price": tf.constant([10.0, 25.0, 99.0])}
    for pooling in ("cls", "mean"):
        config = TrainConfig()
        config.bert.pooling = pooling
        core = build_core(config, vocabs)
        rng = np.random.default_rng(0)
        for v in core.variables:  # distinctive weights, as if trained
            v.assign(rng.normal(scale=0.2, size=v.shape).astype(np.float32))
        longest = Preprocessor(config, vocabs)
        full = Preprocessor(config, vocabs, tokenizer=PairTokenizer(vocabs.wordpiece_path, words,
                                                                     config.bert.max_seq_length, pad_to_longest=False))
        assert longest(features)["input_word_ids"].shape[1] < full(features)["input_word_ids"].shape[1]
        scores = [purchase_probability(core(p(features), training=False), config).numpy() for p in (longest, full)]
        np.testing.assert_allclose(scores[0], scores[1], rtol=1e-5, atol=1e-7)


def test_the_text_inputs_of_one_vocabulary_are_built_once_per_process_while_their_file_exists(tmp_path):
    """Fits share one traced text function per vocabulary; one whose file is gone is rebuilt."""
    import os

    from trainer.text import product_text, shared_text_inputs

    words = ["[PAD]", "[UNK]", "[CLS]", "[SEP]", "[MASK]", "nike", "running", "shoes", "跑", "鞋", "red", "qq"]
    paths = []
    for name in ("first", "second"):  # two fits' scratch copies of the same vocabulary
        (tmp_path / name).mkdir()
        paths.append(str(tmp_path / name / "vocab.txt"))
        vocab_lib.write_lines(paths[-1], words)
    columns = [tf.constant(["nike 跑鞋", "red", ""]), tf.constant(["red running shoes", "shoes", "x"]),
               tf.constant(["nike", "", "nike"]), tf.constant(["shoes", "run_shoes", ""])]
    first = shared_text_inputs(paths[0], words, 12)
    assert shared_text_inputs(paths[1], words, 12) is first
    assert shared_text_inputs(paths[1], words, 16) is not first  # another length is another function
    expected = first(*columns)
    os.remove(paths[0])
    rebuilt = shared_text_inputs(paths[1], words, 12)
    assert rebuilt is not first and rebuilt.tokenizer.vocab_path == paths[1]
    for name, value in rebuilt(*columns).items():
        np.testing.assert_array_equal(value.numpy(), expected[name].numpy())
    # The columns are tokenized as one batch: the same as tokenizing each on its own.
    tok = PairTokenizer(paths[1], words, 12)
    query, brand = tok.wordpieces(columns[0]), tok.wordpieces(columns[2])
    document = tok.wordpieces(product_text(columns[1], columns[2], columns[3]))
    separately = {**tok.encode(query, document),
                  "match": tf.stack([overlap(query, document), overlap(query, brand)], axis=1)}
    assert set(separately) == set(expected)
    for name, value in separately.items():
        np.testing.assert_array_equal(value.numpy(), expected[name].numpy())
