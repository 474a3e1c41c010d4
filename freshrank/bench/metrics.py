"""AUC and NDCG@10 with the Evaluator's definitions, computed directly on scored examples.

The pipeline's Evaluator (tfx_pipeline/evaluation.py) runs TFMA: AUC of `purchased` over all
impressions, and NDCG@10 with `purchased` as the gain over each result page (`request_id`),
skipping pages without a purchase (they have no ideal order), averaged over pages. TFMA's NDCG
sorts a page by prediction, sums gain / log2(rank + 1) over the top k and divides by the same
sum over the ideal order; `ndcg_at_k` does exactly that. TFMA's AUC is a Riemann sum over 10,000
thresholds; `auc` is the exact rank statistic (ties count half), which it approximates. The
bench computes them here because it scores thousands of small models' predictions in one
process, where a Beam job per evaluation would cost more than the training it measures.
"""
from __future__ import annotations

import math

import numpy as np

NDCG_K = 10


def auc(labels: np.ndarray, scores: np.ndarray) -> float:
    """Area under the ROC curve (Mann-Whitney U, average ranks for ties); nan with one class only."""
    labels = np.asarray(labels) > 0
    scores = np.asarray(scores, dtype=np.float64)
    positives = int(labels.sum())
    negatives = len(labels) - positives
    if positives == 0 or negatives == 0:
        return math.nan
    order = np.argsort(scores, kind="mergesort")
    ranks = np.empty(len(scores), dtype=np.float64)
    sorted_scores = scores[order]
    # Average rank within each run of tied scores.
    boundaries = np.flatnonzero(np.diff(sorted_scores)) + 1
    starts = np.concatenate([[0], boundaries])
    ends = np.concatenate([boundaries, [len(scores)]])
    for start, end in zip(starts, ends, strict=True):
        ranks[order[start:end]] = (start + end + 1) / 2.0
    return float((ranks[labels].sum() - positives * (positives + 1) / 2.0) / (positives * negatives))


def weighted_auc(labels: np.ndarray, scores: np.ndarray, weights: np.ndarray) -> float:
    """AUC with example weights, as TFMA's weighted AUC: each positive-negative pair counts
    w_pos x w_neg (ties half); nan with one class only."""
    labels = np.asarray(labels) > 0
    scores = np.asarray(scores, dtype=np.float64)
    weights = np.asarray(weights, dtype=np.float64)
    w_pos, w_neg = weights[labels].sum(), weights[~labels].sum()
    if w_pos <= 0 or w_neg <= 0:
        return math.nan
    unique, inverse = np.unique(scores, return_inverse=True)
    neg_at = np.bincount(inverse, weights * ~labels, len(unique))
    pos_at = np.bincount(inverse, weights * labels, len(unique))
    below = np.cumsum(neg_at) - neg_at  # negative weight strictly below each score
    return float((pos_at * (below + 0.5 * neg_at)).sum() / (w_pos * w_neg))


def ndcg_at_k(groups: np.ndarray, gains: np.ndarray, scores: np.ndarray, k: int = NDCG_K) -> float:
    """Mean NDCG@k over groups with a positive gain; nan when no group has one."""
    groups = np.asarray(groups)
    gains = np.asarray(gains, dtype=np.float64)
    scores = np.asarray(scores, dtype=np.float64)
    order = np.argsort(groups, kind="stable")
    groups, gains, scores = groups[order], gains[order], scores[order]
    cuts = np.flatnonzero(groups[1:] != groups[:-1]) + 1
    discounts = 1.0 / np.log2(np.arange(2, k + 2))
    values = []
    for page_gains, page_scores in zip(np.split(gains, cuts), np.split(scores, cuts), strict=True):
        if page_gains.max() <= 0:
            continue
        ranked = page_gains[np.argsort(page_scores, kind="stable")[::-1]][:k]
        ideal = np.sort(page_gains)[::-1][:k]
        values.append(float((ranked * discounts[: len(ranked)]).sum() / (ideal * discounts[: len(ideal)]).sum()))
    return float(np.mean(values)) if values else math.nan


def evaluate(groups: np.ndarray, labels: np.ndarray, scores: np.ndarray,
             weights: np.ndarray | None = None) -> dict[str, float]:
    """{'auc', 'ndcg@10', 'examples'} for one scored set.

    With `weights` (inverse propensities), as the pipeline's Evaluator weighs them: AUC with
    example weights, NDCG@10 with gain = purchased x weight (TFMA's NDCG takes one weight per
    page, so the propensity enters through the gain).
    """
    if weights is None:
        return {"auc": auc(labels, scores), "ndcg@10": ndcg_at_k(groups, labels, scores), "examples": len(labels)}
    gains = (np.asarray(labels) > 0) * np.asarray(weights, dtype=np.float64)
    return {"auc": weighted_auc(labels, scores, weights), "ndcg@10": ndcg_at_k(groups, gains, scores),
            "examples": len(labels)}
