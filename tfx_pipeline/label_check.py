"""The label gate: a span's clicks and purchases must still fall with position.

Why: labels joined to the wrong impressions (a broken join, an off-by-one in the click pipeline,
rows shuffled across the span) keep every rate, every range and every per-feature distribution
TFDV looks at, so the schema and drift gates pass them; the model would then train on noise, and
an evaluation on the same span's (equally broken) test split cannot tell. What such labels lose is
their relation to the page: on every real results page shoppers click and buy the top more than
the bottom (position bias, and whichever ranker ordered the page), so the rate by position falls
steeply. Mis-joined labels are flat in position.

The gate weighs the evidence, from the logs alone: the likelihood of the span's labels if their
rate by position keeps the previous validated span's profile (scaled, so a market-wide change in
rates passes) against the likelihood if it is flat. The previous span must itself show the profile
clearly (by the same margin), or there is nothing to compare with. A span is stopped only when flat is more
likely by `EVIDENCE_NATS` (odds of about 22 000 to 1), so a small span with little evidence
passes and blessing remains the next guard. A shop whose page has no position effect (some grid
layouts) turns the gate off with `--no-label-position-check`.
"""
from __future__ import annotations

import dataclasses

import numpy as np

EVIDENCE_NATS = 10.0
# Prior pseudo-impressions per position at the reference's overall rate: positions the reference
# saw rarely do not get extreme rates.
SMOOTHING = 20.0
_EPS = 1e-6


@dataclasses.dataclass(frozen=True)
class Evidence:
    """log-likelihood(flat) - log-likelihood(the reference's profile), in nats, and the rates behind it."""

    column: str
    nats: float
    top_rate: float  # the span's rate at position 1
    rest_rate: float  # and below it
    reference_top_rate: float
    reference_rest_rate: float

    @property
    def flat(self) -> bool:
        return self.nats > EVIDENCE_NATS

    def describe(self) -> str:
        return (f"'{self.column}' no longer falls with position: its rate is {self.top_rate:.3f} at position 1 "
                f"and {self.rest_rate:.3f} below it (the previous validated span: {self.reference_top_rate:.3f} and "
                f"{self.reference_rest_rate:.3f}); a rate flat in position is {self.nats:.0f} nats more likely than "
                f"the previous span's profile. The labels look joined to the wrong impressions: check how this "
                f"span's clicks and purchases were joined to its rows, fix and land it again, or rerun with "
                f"--no-label-position-check if your results page has no position effect")


def profile(positions: np.ndarray, labels: np.ndarray, max_position: int) -> np.ndarray:
    """Relative rate by position (1 = the overall rate), smoothed toward 1; index 0 unused."""
    positions = np.clip(positions.astype(np.int64), 1, max_position)
    shown = np.bincount(positions, minlength=max_position + 1).astype(np.float64)
    hits = np.bincount(positions, weights=labels.astype(np.float64), minlength=max_position + 1)
    overall = hits.sum() / max(shown.sum(), 1.0)
    if overall <= 0.0:
        return np.ones(max_position + 1)
    rates = (hits + SMOOTHING * overall) / (shown + SMOOTHING)
    return rates / overall


def evidence(column: str, positions: np.ndarray, labels: np.ndarray,
             reference_positions: np.ndarray, reference_labels: np.ndarray) -> Evidence:
    """How much better "flat in position" explains the span's `labels` than the reference's profile."""
    labels = (labels > 0).astype(np.float64)
    reference_labels = (reference_labels > 0).astype(np.float64)
    max_position = int(max(positions.max(initial=1), reference_positions.max(initial=1)))
    relative = profile(reference_positions, reference_labels, max_position)
    if _flat_minus_shaped(reference_labels, relative[np.clip(reference_positions, 1, max_position)]) > -EVIDENCE_NATS:
        nats = 0.0  # the reference itself shows no clear position effect: nothing to compare with
    else:
        nats = _flat_minus_shaped(labels, relative[np.clip(positions, 1, max_position)])
    return Evidence(column, nats, *_top_and_rest(positions, labels), *_top_and_rest(reference_positions, reference_labels))


def _flat_minus_shaped(labels: np.ndarray, shape: np.ndarray) -> float:
    """log L(a rate flat in position) - log L(a rate proportional to `shape`), both fitted to `labels`."""
    total = labels.sum()
    if total == 0 or total == len(labels):
        return 0.0  # no label varies: nothing to weigh (TFDV's rate checks cover an all-0 column)
    flat = np.full(len(labels), total / len(labels))
    # The scale that keeps the expected count equal to the observed one (the Poisson MLE).
    shaped = np.clip(shape * total / shape.sum(), _EPS, 1 - _EPS)
    return float(_log_likelihood(labels, flat) - _log_likelihood(labels, shaped))


def _log_likelihood(labels: np.ndarray, p: np.ndarray) -> float:
    return float(np.sum(labels * np.log(p) + (1 - labels) * np.log1p(-p)))


def _top_and_rest(positions: np.ndarray, labels: np.ndarray) -> tuple[float, float]:
    top = positions <= 1
    return (float(labels[top].mean()) if top.any() else 0.0,
            float(labels[~top].mean()) if (~top).any() else 0.0)
