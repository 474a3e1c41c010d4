"""Scoring ExampleGen-shaped TFRecords with an exported ranker, as the served model would."""
from __future__ import annotations

import dataclasses

import numpy as np

from trainer.config import GROUP_KEY, LABEL_KEY, PRICE_FEATURE, TEXT_FEATURES


@dataclasses.dataclass
class Scored:
    """One split's examples with the model's scores, enough for AUC and NDCG@10."""

    groups: np.ndarray
    labels: np.ndarray
    scores: np.ndarray

    @staticmethod
    def concat(parts: list[Scored]) -> Scored:
        return Scored(*(np.concatenate([getattr(p, f) for p in parts]) for f in ("groups", "labels", "scores")))


class Scorer:
    """An exported SavedModel's `serving_default`, loaded once (tokenizer included)."""

    def __init__(self, export_dir: str, batch_size: int = 1024):
        import tensorflow as tf
        import tensorflow_text  # noqa: F401  (the tokenizer's ops)

        self._loaded = tf.saved_model.load(export_dir)
        self._fn = self._loaded.signatures["serving_default"]
        self.batch_size = batch_size

    def score_columns(self, columns: dict[str, list]):
        """The served score of raw feature columns (as `freshrank.counterfactual.score_searches` passes them)."""
        import tensorflow as tf

        names = set(self._fn.structured_input_signature[1])
        feeds = {k: tf.constant(v, dtype=tf.float32 if k == PRICE_FEATURE else tf.string)
                 for k, v in columns.items() if k in names}
        return self._fn(**feeds)["score"].numpy()

    def score(self, patterns: list[str]) -> Scored:
        import tensorflow as tf

        from trainer.data import feature_spec, records

        spec = feature_spec(with_labels=True)
        spec[GROUP_KEY] = tf.io.FixedLenFeature([], tf.string, default_value="")
        groups, labels, scores = [], [], []
        for batch in records(patterns).batch(self.batch_size).map(lambda x: tf.io.parse_example(x, spec)):
            inputs = {name: batch[name] for name in (*TEXT_FEATURES, PRICE_FEATURE)}
            scores.append(self._fn(**inputs)["score"].numpy())
            groups.append(batch[GROUP_KEY].numpy())
            labels.append(batch[LABEL_KEY].numpy())
        if not scores:
            raise ValueError(f"no examples under {patterns}")
        return Scored(np.concatenate(groups), np.concatenate(labels), np.concatenate(scores))
