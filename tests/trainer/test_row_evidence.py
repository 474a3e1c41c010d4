"""Per-row rates from the evidence each id row has seen (trainer/row_evidence.py)."""
from __future__ import annotations

import dataclasses

import numpy as np
import pytest
import tensorflow as tf
import tf_keras as keras

from tests.helpers import write_examples
from trainer import data
from trainer.config import TrainConfig
from trainer.part_rates import PartRateAdamW
from trainer.row_evidence import EVIDENCE, rate_scales, table_name


def test_a_rows_rate_is_its_new_evidence_against_all_it_has():
    new = np.array([7.0, 3.0, 3.0, 0.0, 0.0, 5.0])
    old = np.array([9.0, 0.0, 3.0, 4.0, 0.0, 10.0])
    # Row 0 (unknown ids) always 1; a new id 1; as much new as old 1/2; nothing new 0 (the row
    # stays); no evidence either way 1; old evidence halved per update: 5 / (5 + 5).
    np.testing.assert_allclose(rate_scales(new, old, 1.0), [1.0, 1.0, 0.5, 0.0, 1.0, 1 / 3])
    np.testing.assert_allclose(rate_scales(new, old, 0.5)[5], 0.5)
    # Old evidence forgotten at once: every row at the full rate, the plain update.
    np.testing.assert_allclose(rate_scales(new, old, 0.0), 1.0)


def _table_run(strategy, factors, sparse: bool) -> np.ndarray:
    """Six AdamW steps on a [4, 3] table (no weight decay: its step depends on the weights)."""
    rng = np.random.default_rng(0)
    with strategy.scope():
        table = tf.Variable(rng.normal(size=(4, 3)).astype("float32"), name="product_id_embedding/embeddings")
        settings = dict(learning_rate=3e-3, weight_decay=0.0, epsilon=1e-6, clipnorm=1.0)
        if factors is None:
            optimizer = keras.optimizers.AdamW(**settings)
        else:
            optimizer = PartRateAdamW([], 1.0, row_scales=[(table, np.asarray(factors)[:, None])], **settings)
        optimizer.build([table])

    @tf.function
    def step(values):
        gradient = (tf.IndexedSlices(values[:3], tf.constant([0, 1, 2]), tf.constant([4, 3])) if sparse
                    else values)
        strategy.run(lambda g: optimizer.apply_gradients([(g, table)]), args=(gradient,))

    for _ in range(6):
        step(tf.constant(rng.normal(size=(4, 3)).astype("float32")))
    return table.numpy()


def _mirrored() -> tf.distribute.MirroredStrategy:
    """Reduced without collectives: in one process, a MirroredStrategy's collective keys clash with
    those of one another test file created before it (TF 2.16: CollectiveReduceV2 shape errors)."""
    return tf.distribute.MirroredStrategy(["/cpu:0"], cross_device_ops=tf.distribute.ReductionToOneDevice())


@pytest.mark.parametrize("sparse", [False, True], ids=["dense", "sparse"])
@pytest.mark.parametrize("distributed", [False, True], ids=["default_strategy", "mirrored"])
def test_each_rows_adam_step_is_its_factor_times_the_plain_step(distributed, sparse):
    """Adam's moments do not depend on the rate, so a row at factor f moves exactly f times as far
    as plain AdamW moves it on the same gradients (sparse ones too, as embedding lookups give),
    also through MirroredStrategy's distributed apply."""
    strategy = _mirrored() if distributed else tf.distribute.get_strategy()
    start = np.random.default_rng(0).normal(size=(4, 3)).astype("float32")
    plain = _table_run(strategy, None, sparse) - start
    scaled = _table_run(strategy, [1.0, 0.5, 0.0, 0.25], sparse) - start
    assert np.abs(plain[:3]).min() > 1e-4
    np.testing.assert_allclose(scaled[0], plain[0], rtol=1e-5, atol=1e-8)
    np.testing.assert_allclose(scaled[1], 0.5 * plain[1], rtol=1e-4, atol=1e-8)
    np.testing.assert_array_equal(scaled[2], 0.0)
    np.testing.assert_allclose(scaled[3], 0.25 * plain[3], rtol=1e-4, atol=1e-8)


def test_factors_that_do_not_fit_the_table_are_refused():
    table = tf.Variable(tf.zeros([4, 3]), name="t")
    with pytest.raises(ValueError, match=r"row scales of shape \(3, 1\) do not fit t:0 \(4, 3\)"):
        PartRateAdamW([], 1.0, row_scales=[(table, np.ones((3, 1)))], learning_rate=1e-3)


TINY = {
    "epochs": 1, "batch_size": 16, "vocab_size": 200, "seed": 3, "warm_start_epochs": 1,
    "bert": {"hidden_size": 16, "num_layers": 1, "num_heads": 2, "intermediate_size": 32, "max_seq_length": 16},
}


def _window(root, name: str, seed: int, products=None) -> tuple[str, str]:
    files = []
    for split, n, offset in (("train", 200, 0), ("eval", 40, 1)):
        write_examples(str(root / name / f"Split-{split}" / "data_tfrecord-00000-of-00001.gz"), n, seed + offset,
                       products=products)
        files.append(str(root / name / f"Split-{split}" / "*"))
    return files[0], files[1]


def _rows(trained, name: str) -> dict[str, np.ndarray]:
    """product id -> its row of the table `name` (embedding, bias or evidence)."""
    table = {v.name: v.numpy() for v in trained.variables()}[f"product_id_{name}/embeddings:0"]
    return {pid: table[row] for row, pid in enumerate(trained.vocabs.ids["product_id"]) if row}


@pytest.fixture(scope="module")
def first(tmp_path_factory):
    from trainer.task import fit

    tmp = tmp_path_factory.mktemp("row_evidence")
    train_files, eval_files = _window(tmp, "day1", 0)
    return tmp, fit(TrainConfig.from_dict(TINY), [train_files], [eval_files], None, None), train_files


def test_a_model_carries_its_windows_impressions_per_id_and_an_update_adds_its_own(first):
    """From scratch the evidence is the window's impressions per id; an update on a day without
    p3 and p4 leaves their rows exactly as they were (no new evidence, rate 0), moves the others,
    and carries old evidence x decay + the day's impressions."""
    from trainer.task import fit

    tmp, base, day1 = first
    counts1 = data.scan([day1]).id_counts["product_id"]
    assert {pid: float(row[0]) for pid, row in _rows(base, "evidence").items()} == \
        {pid: float(counts1[pid]) for pid in base.vocabs.ids["product_id"][1:]}

    day2_train, day2_eval = _window(tmp, "day2", 5, products=(0, 1, 2))
    counts2 = data.scan([day2_train]).id_counts["product_id"]
    assert set(counts2) == {"p0", "p1", "p2"}
    moved = {}
    for name, decay in (("off", None), ("rows", 0.5)):
        config = TrainConfig.from_dict({**TINY, "row_evidence_decay": decay})
        trained = fit(config, [day2_train], [day2_eval], None, base.as_base())
        evidence = {pid: float(row[0]) for pid, row in _rows(trained, "evidence").items()}
        kept = 0.5 if decay else 1.0
        assert evidence == pytest.approx({pid: counts2[pid] + kept * counts1[pid] for pid in evidence})
        before, after = _rows(base, "embedding"), _rows(trained, "embedding")
        moved[name] = {pid: float(np.abs(after[pid] - before[pid]).max()) for pid in before}
        bias_before, bias_after = _rows(base, "bias"), _rows(trained, "bias")
        moved[name + " bias"] = {pid: float(np.abs(bias_after[pid] - bias_before[pid]).max()) for pid in before}
    for table in ("rows", "rows bias"):
        assert moved[table]["p3"] == 0.0 and moved[table]["p4"] == 0.0, moved[table]
        assert min(moved[table][pid] for pid in ("p0", "p1", "p2")) > 0, moved[table]
    # Without the lever an absent id's embedding still drifts (AdamW's weight decay).
    assert moved["off"]["p3"] > 0


def test_an_export_from_before_the_evidence_tables_warm_starts_with_no_recorded_evidence(first):
    from trainer.task import fit

    tmp, base, day1 = first
    old = base.as_base()
    old = dataclasses.replace(old, weights={k: v for k, v in old.weights.items() if "_evidence/" not in k})
    day2_train, day2_eval = _window(tmp, "day2b", 7)
    trained = fit(TrainConfig.from_dict({**TINY, "row_evidence_decay": 1.0}), [day2_train], [day2_eval], None, old)
    counts2 = data.scan([day2_train]).id_counts["product_id"]
    evidence = {pid: float(row[0]) for pid, row in _rows(trained, "evidence").items()}
    assert evidence == pytest.approx({pid: float(counts2[pid]) for pid in evidence})


def test_the_shared_weights_rate_is_all_new_evidence_against_all_recorded(first):
    """shared_evidence_rate: N_new / (N_new + decay x N_old) over every impression, read off the id
    feature with the most recorded evidence; the id tables keep their per-row factors."""
    from trainer.row_evidence import evidence_tables, shared_rate_scale
    from trainer.task import _compile

    tmp, base, day1 = first
    config = TrainConfig.from_dict({**TINY, "shared_evidence_rate": True})
    core = keras.Model()
    for feature, table in evidence_tables_of(base, config).items():
        setattr(core, f"{feature}_evidence", tf.Variable(table, trainable=False))
    recorded = {f: float(t.numpy().sum()) for f, t in evidence_tables(core, config).items()}
    n_old = max(recorded.values())
    assert n_old == data.scan([day1]).num_examples  # every impression has a known product id here
    new = {f: np.full(len(t.numpy()), 2.0, dtype=np.float32) for f, t in evidence_tables(core, config).items()}
    n_new = float(new[max(recorded, key=recorded.get)].sum())
    assert shared_rate_scale(core, config, new) == pytest.approx(n_new / (n_new + 0.5 * n_old))

    inputs = keras.Input((1,))
    ids = keras.layers.Embedding(3, 2, name="product_id_embedding")
    dense = keras.layers.Dense(1, name="head")
    model = keras.Model(inputs, dense(keras.layers.Flatten()(ids(inputs))))
    rows = np.array([[1.0], [0.25], [0.0]], dtype=np.float32)
    _compile(model, config, steps_per_epoch=4, warm=True, list_size=2, row_scales=[(ids.embeddings, rows)],
             shared_scale=0.4)
    optimizer = model.optimizer
    np.testing.assert_allclose(optimizer.rate_scale_of(ids.embeddings).numpy(), rows)
    assert optimizer.rate_scale_of(dense.kernel) == pytest.approx(0.4)
    assert optimizer.rate_scale_of(dense.bias) == pytest.approx(0.4)


def evidence_tables_of(trained, config: TrainConfig) -> dict[str, np.ndarray]:
    variables = {v.name: v.numpy() for v in trained.variables()}
    return {f: variables[table_name(f, EVIDENCE)] for f in config.id_features()}


def test_shared_evidence_rate_needs_per_row_rates_and_no_encoder_rate():
    with pytest.raises(ValueError, match="shared_evidence_rate needs row_evidence_decay set"):
        TrainConfig.from_dict({"shared_evidence_rate": True, "row_evidence_decay": None})
    with pytest.raises(ValueError, match="and encoder_learning_rate null"):
        TrainConfig.from_dict({"shared_evidence_rate": True, "encoder_learning_rate": 1e-4})
