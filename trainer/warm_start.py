"""Warm start: every weight of the base model restored, id embeddings remapped by id.

Id vocabularies grow between updates, so embedding rows are matched by id, not by index:
known ids keep their learned row, new ids keep the fresh initialisation of the new model
(`tf.keras.utils.warmstart_embedding_matrix` semantics, done here by name for all tables).
The optimizer starts fresh: AdamW moments from a different data window mislead more than
they help, and the learning-rate warm-up absorbs the cold moments.
"""
from __future__ import annotations

import dataclasses

import numpy as np
import tf_keras as keras

from trainer.model import Vocabularies
from trainer.row_evidence import EVIDENCE, ROW_TABLE_KINDS, table_name


@dataclasses.dataclass
class WarmStartReport:
    restored: int
    remapped_rows: dict[str, int]  # feature -> rows copied from the base model
    new_ids: dict[str, int]  # feature -> ids without a base row
    # variable name -> True for the rows that came from the base model (id tables only)
    base_rows: dict[str, np.ndarray] = dataclasses.field(default_factory=dict)


def pull_toward_start(model: keras.Model, start: dict[str, np.ndarray], base_rows: dict[str, np.ndarray],
                      share: float) -> None:
    """Moves every weight `share` of the way back to where the update started (the base model's value).

    Weight averaging between a model and its own fine-tuned copy (WiSE-FT, Wortsman et al. 2022):
    the update keeps `1 - share` of what it learned from the new span, so one span's noise moves
    the model less. Rows of ids the base model never saw keep what they learned: their start was
    a random initialisation, not knowledge.
    """
    _blend(model, start, base_rows, 1.0 - share, share)


def shrink_and_perturb(model: keras.Model, fresh: dict[str, np.ndarray], base_rows: dict[str, np.ndarray],
                       shrink: float, perturb: float) -> None:
    """Every restored weight becomes `shrink` x its value + `perturb` x its fresh initial value.

    Shrink and perturb (Ash & Adams, "On warm-starting neural network training", NeurIPS 2020):
    a network warm-started from one it trained on part of the data generalises worse than a fresh
    one trained on all of it; shrinking toward zero and adding a little of a fresh initialisation
    keeps what was learned as a direction while restoring the gradients' reach. Rows of ids the
    base model never saw are a fresh initialisation already and stay as they are.
    """
    _blend(model, fresh, base_rows, shrink, perturb)


def _blend(model: keras.Model, other: dict[str, np.ndarray], base_rows: dict[str, np.ndarray],
           own: float, others: float) -> None:
    """Each variable named in `other` becomes own x itself + others x other[name], except the
    rows of ids the base model never saw (False in `base_rows`), which keep their current value."""
    for variable in model.variables:
        if variable.name not in other:
            continue
        current = variable.numpy()
        mixed = own * current + others * other[variable.name]
        rows = base_rows.get(variable.name)
        if rows is not None:
            mixed[~rows] = current[~rows]
        variable.assign(mixed)


def restore_weights(
    model: keras.Model,
    base_weights: dict[str, np.ndarray],
    base_vocabs: Vocabularies,
    vocabs: Vocabularies,
) -> WarmStartReport:
    # Tables with a row per id: the deep part's embeddings, the wide part's biases and the
    # evidence each row has seen (trainer/row_evidence.py).
    embedding_vars = {table_name(feature, kind): feature for feature in vocabs.ids
                      for kind in (*ROW_TABLE_KINDS, EVIDENCE)}
    # Exports from before the evidence tables: their rows start with no recorded evidence.
    optional = {table_name(feature, EVIDENCE) for feature in vocabs.ids}
    missing = sorted(set(base_weights) - {v.name for v in model.variables})
    if missing:
        raise ValueError(
            f"base model variable {missing[0]} has no counterpart in the new model "
            f"({len(missing)} unmatched); the architecture changed: use --from-scratch"
        )
    restored, remapped, fresh, base_rows = 0, {}, {}, {}
    for variable in model.variables:
        if variable.name not in base_weights:
            if variable.name in optional:
                continue
            raise ValueError(
                f"variable {variable.name} is not in the base model; the architecture changed: "
                "use --from-scratch"
            )
        old = base_weights[variable.name]
        feature = embedding_vars.get(variable.name)
        if feature is not None:
            new, copied = remap_rows(variable.numpy(), old, base_vocabs.ids[feature], vocabs.ids[feature])
            variable.assign(new)
            old_ids = set(base_vocabs.ids[feature][: old.shape[0]])
            base_rows[variable.name] = np.array([row == 0 or i in old_ids for row, i in enumerate(vocabs.ids[feature])])
            remapped[feature] = copied
            fresh[feature] = len(vocabs.ids[feature]) - copied
        else:
            if tuple(old.shape) != tuple(variable.shape):
                raise ValueError(
                    f"variable {variable.name}: base model shape {tuple(old.shape)} != new model "
                    f"shape {tuple(variable.shape)}; use --from-scratch"
                )
            variable.assign(old)
        restored += 1
    return WarmStartReport(restored, remapped, fresh, base_rows)


def remap_rows(
    fresh: np.ndarray, old: np.ndarray, old_ids: list[str], new_ids: list[str]
) -> tuple[np.ndarray, int]:
    """Rows of `old` moved to where each id sits in `new_ids`; row 0 (unknown ids) carried over."""
    if fresh.shape[1] != old.shape[1]:
        raise ValueError(f"embedding width changed ({old.shape[1]} -> {fresh.shape[1]}); use --from-scratch")
    out = fresh.copy()
    old_index = {i: row for row, i in enumerate(old_ids)}
    copied = 0
    for row, i in enumerate(new_ids):
        src = 0 if row == 0 else old_index.get(i)
        if src is not None and src < old.shape[0]:
            out[row] = old[src]
            copied += 1
    return out, copied
