"""Distillation from the base model: the soft labels, and what they do to a warm-started update."""
from __future__ import annotations

import numpy as np
import pytest
import tensorflow as tf

from tests.helpers import write_examples
from trainer import data, export
from trainer.config import TrainConfig
from trainer.model import examination_table
from trainer.task import _with_soft_labels, train

TINY = {
    "epochs": 2, "batch_size": 16, "vocab_size": 200, "seed": 3,
    "bert": {"hidden_size": 16, "num_layers": 1, "num_heads": 2, "intermediate_size": 32, "max_seq_length": 16},
}


def _split(root, name: str, n: int, seed: int, flip: bool = False) -> str:
    write_examples(str(root / f"Split-{name}" / "data_tfrecord-00000-of-00001.gz"), n, seed, flip_purchases=flip)
    return str(root / f"Split-{name}" / "*")


@pytest.fixture(scope="module")
def base(tmp_path_factory):
    """A teacher trained on clean labels, and a poisoned span (every purchase flipped) to update on."""
    import tensorflow_text  # noqa: F401  registers the tokenizer's ops for loading

    tmp = tmp_path_factory.mktemp("distill")
    clean = tmp / "clean"
    train(TrainConfig.from_dict(TINY), [_split(clean, "train", 400, 0)], [_split(clean, "eval", 80, 1)],
          str(tmp / "base"), str(tmp / "logs-base"), base_model=None)
    poisoned = tmp / "poisoned"
    files = (_split(poisoned, "train", 400, 2, flip=True), _split(poisoned, "eval", 80, 3, flip=True))
    return tmp, str(tmp / "base"), files, _split(tmp / "probe", "eval", 128, 4)


def test_soft_labels_mix_the_label_with_the_teachers_probability(base):
    _, base_path, (poisoned_train, _), _ = base
    raw = data.make_dataset([poisoned_train], 16, shuffle=False, seed=0)
    base_model = export.load_base_model(base_path)
    mixed = _with_soft_labels(raw, base_model, weight=0.4)
    teacher = tf.saved_model.load(base_path).signatures["serving_default"]
    (features, labels), (features_m, labels_m) = next(iter(raw)), next(iter(mixed))
    served = teacher(**_served_inputs(features))["score"].numpy()
    # The soft label is the teacher's probability of the impression as logged: its P(purchase |
    # examined) times its own P(examined | position).
    examined = 1.0 / (1.0 + np.exp(-examination_table(base_model.weights)[features["position"].numpy()]))
    expected = 0.6 * labels["purchase"].numpy() + 0.4 * served * examined
    np.testing.assert_allclose(labels_m["purchase"].numpy(), expected, rtol=1e-5, atol=1e-6)
    np.testing.assert_array_equal(labels_m["click"].numpy(), labels["click"].numpy())
    for name, value in features.items():
        np.testing.assert_array_equal(features_m[name].numpy(), value.numpy())
    # The teacher is a model, not a constant: its probabilities vary across the batch.
    assert np.ptp(expected - 0.6 * labels["purchase"].numpy()) > 1e-3


def test_distillation_holds_an_update_near_the_teacher_on_poisoned_labels(base):
    tmp, base_path, (poisoned_train, poisoned_eval), probe = base
    scores = {}
    for weight in (0.0, 0.9):
        out = str(tmp / f"student-{weight}")
        config = TrainConfig.from_dict({**TINY, "distill_weight": weight})
        facts = train(config, [poisoned_train], [poisoned_eval], out, str(tmp / f"logs-{weight}"), base_path)
        assert facts["warm_started"]
        scores[weight] = _score(out, probe)
    teacher = _score(base_path, probe)
    drift = {w: float(np.mean(np.abs(s - teacher))) for w, s in scores.items()}
    # Flipped labels drag the plain update away from what the teacher learned; distillation
    # keeps most of it.
    print("drift from the teacher", drift)
    assert drift[0.9] < 0.5 * drift[0.0], drift


def _score(model_path: str, pattern: str) -> np.ndarray:
    serve = tf.saved_model.load(model_path).signatures["serving_default"]
    out = [serve(**_served_inputs(features))["score"].numpy()
           for features, _ in data.make_dataset([pattern], 64, False, 0)]
    return np.concatenate(out)


def _served_inputs(features: dict) -> dict:
    """What a logged batch shares with the serving signature: no position, no user (logged only)."""
    return {k: v for k, v in features.items() if k not in ("position", "user_id")}


def test_a_warm_started_update_runs_warm_start_epochs_and_stops_on_the_purchase_objective(base):
    """The update takes `warm_start_epochs` passes (the first model `epochs`), and the eval
    split's purchase objective, which early stopping watches by default, is in the epoch logs."""
    from trainer.task import fit

    tmp, base_path, (poisoned_train, poisoned_eval), _ = base
    config = TrainConfig.from_dict({**TINY, "epochs": 3, "warm_start_epochs": 1, "early_stopping_patience": 5})
    assert config.early_stopping_metric == "purchase"
    trained = fit(config, [poisoned_train], [poisoned_eval], None, export.load_base_model(base_path))
    assert trained.facts["warm_started"] and trained.facts["epochs_run"] == 1
    scratch = fit(config, [poisoned_train], [poisoned_eval], None, None)
    assert scratch.facts["epochs_run"] == 3
    objective = trained.facts["val_purchase_objective"]
    assert np.isfinite(objective) and objective > 0
    # Handed over as weights alone (how the bench ships a model to another process), it is rebuilt
    # scoring exactly as before.
    import dataclasses

    from freshrank.bench.scoring import read_split
    from trainer.task import rebuild

    rebuilt = rebuild(dataclasses.replace(trained.as_base(), teacher=None))
    columns = read_split((poisoned_eval,)).columns
    np.testing.assert_allclose(rebuilt.score(columns), trained.score(columns), rtol=1e-5, atol=1e-7)
    assert np.ptp(trained.score(columns)) > 0


def test_partial_mode_leaves_the_frozen_layers_as_the_base_had_them_and_anchoring_holds_the_rest(base):
    """Partial mode must freeze what it says (embeddings and the bottom block), and train the top;
    the L2 pull toward the base keeps a full update nearer the base on poisoned labels."""
    from trainer.flops import training_flops_per_example
    from trainer.task import fit

    tmp, base_path, (poisoned_train, poisoned_eval), _ = base
    base_model = export.load_base_model(base_path)
    moved = {}
    for name, extra in (("partial", {"update_mode": "partial"}), ("full", {}), ("anchored", {"anchor_weight": 1.0})):
        config = TrainConfig.from_dict({**TINY, "epochs": 1, **extra})
        trained = fit(config, [poisoned_train], [poisoned_eval], None, base_model)
        after = {v.name: v.numpy() for v in trained.variables()}
        moved[name] = {k: float(np.abs(after[k] - base_model.weights[k]).max()) for k in after
                       if k in base_model.weights and after[k].shape == base_model.weights[k].shape}
        if name == "partial":
            flops = training_flops_per_example(trained.core, trained.config)
    frozen = [k for k in moved["partial"] if k.startswith("bert/embeddings/") or "/layer_0/" in k]
    assert frozen and all(moved["partial"][k] == 0.0 for k in frozen), {k: moved["partial"][k] for k in frozen}
    assert max(moved["partial"][k] for k in moved["partial"] if "/pooler/" in k or k.startswith("head/")) > 0
    assert max(moved["full"][k] for k in frozen) > 0
    # The frozen prefix runs forward only.
    assert flops["backward"] < 2 * flops["forward"]
    head = [k for k in moved["full"] if k.startswith("head/")]
    assert sum(moved["anchored"][k] for k in head) < sum(moved["full"][k] for k in head)


def test_the_eval_split_is_replayed_from_memory_batch_for_batch_and_a_large_one_streams(tmp_path, monkeypatch):
    from trainer import task

    pattern = _split(tmp_path, "eval", 90, 5)
    streamed = data.make_page_dataset([pattern], 4, 10, shuffle=False, seed=0)
    replayed, first = task._in_memory(streamed, [pattern])
    for _ in range(2):  # as Keras does, an epoch after another
        batches = list(zip(streamed, replayed, strict=True))
        assert len(batches) > 2
        for one, other in batches:
            tf.nest.map_structure(lambda a, b: np.testing.assert_array_equal(a.numpy(), b.numpy()), one, other)
    tf.nest.map_structure(lambda a, b: np.testing.assert_array_equal(a.numpy(), b.numpy()), first, batches[0][1])
    monkeypatch.setattr(task, "IN_MEMORY_EVAL_BYTES", 10)
    assert task._in_memory(streamed, [pattern]) == (streamed, None)
