"""Warm start restores every weight and keeps each known id's learned row when ids grow."""
import numpy as np
import pytest

from trainer import vocab as vocab_lib
from trainer.config import TrainConfig
from trainer.model import Vocabularies, build_core
from trainer.warm_start import pull_toward_start, restore_weights, shrink_and_perturb


def _vocabs(tmp_path, products):
    words = ["[PAD]", "[UNK]", "[CLS]", "[SEP]", "[MASK]", "shoes", "跑", "鞋"]
    path = tmp_path / "vocab.txt"
    vocab_lib.write_lines(str(path), words)
    ids = {"product_id": ["[UNK]", *products], "brand": ["[UNK]", "nike"], "category": ["[UNK]", "shoes"]}
    return Vocabularies(str(path), words, ids, 3.0, 1.0)


def _weights(model):
    return {v.name: v.numpy() for v in model.variables}


def test_known_ids_keep_rows_new_ids_get_fresh_rows(tmp_path):
    config = TrainConfig()
    old_vocabs = _vocabs(tmp_path, ["p1", "p2", "p3"])
    old = build_core(config, old_vocabs)
    rng = np.random.default_rng(0)
    for v in old.variables:  # make every weight distinctive, as if trained
        v.assign(rng.normal(size=v.shape).astype(np.float32))
    base = _weights(old)

    # A new window: p2 gone from the data but kept, p9 and p4 new.
    new_vocabs = _vocabs(tmp_path, ["p1", "p2", "p3", "p9", "p4"])
    config.seed = 7
    new = build_core(config, new_vocabs)
    fresh = _weights(new)["product_id_embedding/embeddings:0"].copy()
    report = restore_weights(new, base, old_vocabs, new_vocabs)

    table = _weights(new)["product_id_embedding/embeddings:0"]
    old_table = base["product_id_embedding/embeddings:0"]
    np.testing.assert_array_equal(table[:4], old_table[:4])  # [UNK], p1, p2, p3 kept
    np.testing.assert_array_equal(table[4:], fresh[4:])  # p9, p4 keep their fresh init
    assert not any(np.allclose(table[4], row) for row in old_table)
    assert report.remapped_rows["product_id"] == 4 and report.new_ids["product_id"] == 2
    bias = _weights(new)["product_id_bias/embeddings:0"]  # the wide part's per-id table follows ids too
    np.testing.assert_array_equal(bias[:4], base["product_id_bias/embeddings:0"][:4])
    np.testing.assert_array_equal(bias[4:], 0.0)
    evidence = _weights(new)["product_id_evidence/embeddings:0"]  # so does the evidence each row has seen
    np.testing.assert_array_equal(evidence[:4], base["product_id_evidence/embeddings:0"][:4])
    np.testing.assert_array_equal(evidence[4:], 0.0)
    for name, value in base.items():
        if not any(f"{kind}/embeddings" in name for kind in ("embedding", "_bias", "_evidence")):
            np.testing.assert_array_equal(_weights(new)[name], value, err_msg=name)
    assert report.restored == len(new.variables)


def test_reordered_ids_follow_their_id_not_their_index(tmp_path):
    config = TrainConfig()
    old_vocabs = _vocabs(tmp_path, ["p1", "p2"])
    old = build_core(config, old_vocabs)
    base = _weights(old)
    new_vocabs = _vocabs(tmp_path, ["p2", "p1"])
    new = build_core(config, new_vocabs)
    restore_weights(new, base, old_vocabs, new_vocabs)
    table = _weights(new)["product_id_embedding/embeddings:0"]
    old_table = base["product_id_embedding/embeddings:0"]
    np.testing.assert_array_equal(table[1], old_table[2])
    np.testing.assert_array_equal(table[2], old_table[1])


def test_architecture_change_names_the_variable(tmp_path):
    vocabs = _vocabs(tmp_path, ["p1"])
    base = _weights(build_core(TrainConfig(), vocabs))
    wider = TrainConfig(head_hidden_size=32)
    with pytest.raises(ValueError, match=r"head/dense/kernel.*from-scratch"):
        restore_weights(build_core(wider, vocabs), base, vocabs, vocabs)


def test_user_rows_survive_warm_start_by_id(tmp_path):
    """With user features, shoppers are an id feature like products: a returning user keeps the
    row learned for them, wherever the grown vocabulary puts them."""
    config = TrainConfig(user_features=True)
    old_vocabs = _vocabs(tmp_path, ["p1"])
    old_vocabs.ids["user_id"] = ["[UNK]", "u000001", "u000002"]
    old = build_core(config, old_vocabs)
    rng = np.random.default_rng(1)
    for v in old.variables:
        v.assign(rng.normal(size=v.shape).astype(np.float32))
    base = _weights(old)
    new_vocabs = _vocabs(tmp_path, ["p1"])
    new_vocabs.ids["user_id"] = ["[UNK]", "u000002", "u000009", "u000001"]
    new = build_core(config, new_vocabs)
    fresh = _weights(new)["user_id_embedding/embeddings:0"].copy()
    report = restore_weights(new, base, old_vocabs, new_vocabs)
    table, old_table = _weights(new)["user_id_embedding/embeddings:0"], base["user_id_embedding/embeddings:0"]
    np.testing.assert_array_equal(table[1], old_table[2])  # u000002
    np.testing.assert_array_equal(table[3], old_table[1])  # u000001
    np.testing.assert_array_equal(table[2], fresh[2])  # u000009: new, fresh row
    assert report.remapped_rows["user_id"] == 3 and report.new_ids["user_id"] == 1


def test_pulling_toward_the_start_averages_known_weights_and_leaves_new_ids_alone(tmp_path):
    """base_weight_share (measured, off by default): WiSE-FT-style averaging with the base model."""
    config = TrainConfig()
    old_vocabs = _vocabs(tmp_path, ["p1", "p2"])
    old = build_core(config, old_vocabs)
    new_vocabs = _vocabs(tmp_path, ["p1", "p2", "p9"])
    new = build_core(config, new_vocabs)
    report = restore_weights(new, _weights(old), old_vocabs, new_vocabs)
    start = _weights(new)
    for v in new.variables:  # "training" moved every weight by +1
        v.assign(v.numpy() + 1.0)
    pull_toward_start(new, start, report.base_rows, share=0.25)
    after = _weights(new)
    table = "product_id_embedding/embeddings:0"
    np.testing.assert_allclose(after[table][:3], start[table][:3] + 0.75, atol=1e-6)  # [UNK], p1, p2
    np.testing.assert_allclose(after[table][3], start[table][3] + 1.0, atol=1e-6)  # p9: new, kept as trained
    dense = next(n for n in after if "embedding" not in n and "_bias/" not in n)
    np.testing.assert_allclose(after[dense], start[dense] + 0.75, atol=1e-6)


def test_shrink_and_perturb_mixes_base_and_fresh_weights_and_leaves_new_ids_alone(tmp_path):
    """warm_start_shrink / warm_start_perturb (measured, off by default): Ash & Adams' shrink and perturb."""
    config = TrainConfig()
    old_vocabs = _vocabs(tmp_path, ["p1", "p2"])
    old = build_core(config, old_vocabs)
    new_vocabs = _vocabs(tmp_path, ["p1", "p2", "p9"])
    new = build_core(config, new_vocabs)
    fresh = _weights(new)
    report = restore_weights(new, _weights(old), old_vocabs, new_vocabs)
    restored = _weights(new)
    shrink_and_perturb(new, fresh, report.base_rows, shrink=0.5, perturb=0.1)
    after = _weights(new)
    table = "product_id_embedding/embeddings:0"
    np.testing.assert_allclose(after[table][:3], 0.5 * restored[table][:3] + 0.1 * fresh[table][:3], atol=1e-6)
    np.testing.assert_array_equal(after[table][3], fresh[table][3])  # p9: never seen by the base model
    dense = next(n for n in after if "embedding" not in n and "_bias/" not in n and np.any(fresh[n] != restored[n]))
    np.testing.assert_allclose(after[dense], 0.5 * restored[dense] + 0.1 * fresh[dense], atol=1e-6)
    assert not np.allclose(after[dense], restored[dense])


def test_shrink_outside_its_range_is_refused():
    with pytest.raises(ValueError, match="warm_start_shrink must lie in"):
        TrainConfig(warm_start_shrink=0.0).validate()
