"""Scoring ExampleGen-shaped TFRecords with a ranker, as the served model would.

A bench scores the same few splits with dozens of models, so each split is parsed once
(`read_split`, cached by its file pattern) and every model scores the parsed columns. A ranker
is anything that maps raw feature columns to scores: a model still in memory
(`trainer.task.Trained.score`) or an exported SavedModel's `serving_default`.
"""
from __future__ import annotations

import dataclasses
import functools
from collections.abc import Callable

import numpy as np

from trainer.config import (
    CLICK_KEY,
    GROUP_KEY,
    LABEL_KEY,
    POSITION_KEY,
    PRICE_FEATURE,
    TEXT_FEATURES,
    USER_KEY,
)

ScoreRows = Callable[[dict[str, list]], np.ndarray]


@dataclasses.dataclass(frozen=True)
class Split:
    """One split's logged examples: the model inputs and what the log says happened."""

    columns: dict[str, np.ndarray]  # the served inputs, as a Predict request carries them
    groups: np.ndarray
    labels: np.ndarray
    clicks: np.ndarray
    positions: np.ndarray

    @property
    def items(self) -> np.ndarray:
        return self.columns["product_id"]


@dataclasses.dataclass
class Scored:
    """One split's examples with a model's scores, enough for (weighted) AUC and NDCG@10."""

    groups: np.ndarray
    labels: np.ndarray
    scores: np.ndarray
    positions: np.ndarray | None = None

    @staticmethod
    def concat(parts: list[Scored]) -> Scored:
        positions = None if any(p.positions is None for p in parts) else np.concatenate([p.positions for p in parts])
        return Scored(*(np.concatenate([getattr(p, f) for p in parts]) for f in ("groups", "labels", "scores")),
                      positions=positions)


@functools.lru_cache(maxsize=64)
def read_split(patterns: tuple[str, ...]) -> Split:
    """Parses every example under `patterns` once; later calls return the same arrays."""
    import tensorflow as tf

    from trainer.data import feature_spec, records

    spec = feature_spec(with_labels=True)
    spec[GROUP_KEY] = tf.io.FixedLenFeature([], tf.string, default_value="")
    parts: dict[str, list[np.ndarray]] = {}
    for batch in records(list(patterns)).batch(4096).map(lambda x: tf.io.parse_example(x, spec)):
        for name, value in batch.items():
            parts.setdefault(name, []).append(value.numpy())
    if not parts:
        raise ValueError(f"no examples under {list(patterns)}")
    flat = {name: np.concatenate(values) for name, values in parts.items()}
    text = {name: np.char.decode(flat[name].astype(bytes), "utf-8") for name in (*TEXT_FEATURES, USER_KEY)}
    columns = {**text, PRICE_FEATURE: flat[PRICE_FEATURE].astype(np.float32)}
    return Split(columns, flat[GROUP_KEY], flat[LABEL_KEY], flat[CLICK_KEY], flat[POSITION_KEY])


class Scorer:
    """A ranker's scores for whole splits, in batches."""

    def __init__(self, score_rows: ScoreRows, batch_size: int = 4096):
        self.score_columns = score_rows
        self.batch_size = batch_size

    @classmethod
    def saved_model(cls, export_dir: str) -> Scorer:
        from freshrank.counterfactual import saved_model_scorer

        return cls(saved_model_scorer(export_dir))

    def score(self, patterns: list[str]) -> Scored:
        split = read_split(tuple(patterns))
        n = len(split.labels)
        scores = [np.asarray(self.score_columns({k: v[i:i + self.batch_size] for k, v in split.columns.items()}))
                  for i in range(0, n, self.batch_size)]
        return Scored(split.groups, split.labels, np.concatenate(scores).reshape(-1), split.positions)
