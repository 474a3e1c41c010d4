"""How much evidence each id row has seen, and the per-row learning rate a warm update derives from it.

Why: a product id's row (its embedding and its wide-part bias) is a running estimate of what
shoppers think of that product. Retraining from scratch fits it on every span of the window at
once; a warm update on the newest span alone fits it at the full peak rate to one day's few
impressions of that product, so a row learned from five days is overwritten by the sixth
(docs/warm-start.md: the chain plateaus on mild drift where full retraining keeps gaining).
Production click models meet the same problem with per-coordinate learning rates that shrink
with the evidence a coordinate has seen (FTRL-Proximal, McMahan et al., KDD 2013). Here each
id row's peak rate in a warm update is scaled by

    n_new / (n_new + decay x n_old)

with n_new the row's impressions in this update's training window and n_old the evidence the
base model carries for it: a new product learns at the full rate, a product seen as often before
as today moves half as far (at decay 1), a row with nothing new stays where it is (instead of
drifting with Adam's momentum and weight decay). `decay` (`TrainConfig.row_evidence_decay`) discounts old
evidence per update, so under drift yesterday's evidence weighs less; 1.0 is a stationary market.

The evidence travels with the model as a non-trainable `[rows, 1]` table per id feature, named
like the id tables (`<feature>_evidence/embeddings`), so warm start remaps it by id exactly as
it remaps the embeddings (trainer/warm_start.py), and a TF Serving export carries it unused.
"""
from __future__ import annotations

import collections

import numpy as np
import tensorflow as tf
import tf_keras as keras

from trainer.config import TrainConfig

# The per-id tables whose rows the rate scales: the deep part's embeddings, the wide part's biases.
ROW_TABLE_KINDS = ("embedding", "bias")
EVIDENCE = "evidence"


def table_name(feature: str, kind: str) -> str:
    """The variable name of `feature`'s per-id table of this kind (an Embedding layer's, or ours)."""
    return f"{feature}_{kind}/embeddings:0"


def attach_evidence(core: keras.Model, config: TrainConfig, rows: dict[str, int]) -> None:
    """Gives `core` a zeroed evidence table per id feature (tracked, so saved and restored with it)."""
    for feature in config.id_features():
        name = table_name(feature, EVIDENCE).removesuffix(":0")
        setattr(core, f"{feature}_{EVIDENCE}", tf.Variable(tf.zeros([rows[feature], 1]), trainable=False, name=name))


def evidence_tables(core: keras.Model, config: TrainConfig) -> dict[str, tf.Variable]:
    return {feature: getattr(core, f"{feature}_{EVIDENCE}") for feature in config.id_features()}


def window_counts(ids: dict[str, list[str]], id_counts: dict[str, collections.Counter],
                  features: tuple[str, ...]) -> dict[str, np.ndarray]:
    """Impressions of each row's id in the training window (row 0, the unknown ids' row, gets 0)."""
    out = {}
    for feature in features:
        counts = id_counts.get(feature, collections.Counter())
        out[feature] = np.array([0.0 if row == 0 else float(counts.get(i, 0)) for row, i in enumerate(ids[feature])],
                                dtype=np.float32)
    return out


def rate_scales(new: np.ndarray, old: np.ndarray, decay: float) -> np.ndarray:
    """n_new / (n_new + decay x n_old) per row; 1 where neither has evidence (row 0, unseen ids)."""
    old = decay * np.asarray(old, dtype=np.float64)
    new = np.asarray(new, dtype=np.float64)
    total = new + old
    scales = np.divide(new, total, out=np.ones_like(total), where=total > 0)
    scales[0] = 1.0  # the shared row of unknown ids is no one id's estimate
    return scales.astype(np.float32)


def row_rate_scales(model: keras.Model, core: keras.Model, config: TrainConfig,
                    new: dict[str, np.ndarray]) -> list[tuple[tf.Variable, np.ndarray]]:
    """(trainable id table, its `[rows, 1]` rate factors), from the restored evidence and `new`."""
    old = {feature: table.numpy()[:, 0] for feature, table in evidence_tables(core, config).items()}
    trainable = {v.name: v for v in model.trainable_variables}
    out = []
    for feature in config.id_features():
        scales = rate_scales(new[feature], old[feature], config.row_evidence_decay)[:, None]
        for kind in ROW_TABLE_KINDS:
            variable = trainable.get(table_name(feature, kind))
            if variable is not None:
                out.append((variable, scales))
    return out


def shared_rate_scale(core: keras.Model, config: TrainConfig, new: dict[str, np.ndarray]) -> float:
    """N_new / (N_new + decay x N_old) over all impressions: the weights every impression trains.

    Totals are read off the id feature with the most recorded impressions (every impression has
    one id per feature; the unknown ids' row records none)."""
    old = {feature: float(table.numpy().sum()) for feature, table in evidence_tables(core, config).items()}
    feature = max(old, key=lambda f: (old[f], float(new[f].sum())))
    n_new, n_old = float(new[feature].sum()), config.row_evidence_decay * old[feature]
    return 1.0 if n_new + n_old <= 0 else n_new / (n_new + n_old)


def record_evidence(core: keras.Model, config: TrainConfig, new: dict[str, np.ndarray]) -> None:
    """The evidence the trained model carries on: this window's counts plus the decayed old evidence
    (the restored table on a warm start, zeros on a fresh model)."""
    decay = 1.0 if config.row_evidence_decay is None else config.row_evidence_decay
    for feature, table in evidence_tables(core, config).items():
        table.assign((new[feature] + decay * table.numpy()[:, 0])[:, None].astype(np.float32))
