"""The bench's AUC and NDCG@10 against their definitions (and TFMA's conventions)."""
from __future__ import annotations

import itertools
import math

import numpy as np
import pytest

from freshrank.bench.metrics import auc, ndcg_at_k, weighted_auc


def _pairwise_auc(labels, scores) -> float:
    pos = [s for s, y in zip(scores, labels, strict=True) if y]
    neg = [s for s, y in zip(scores, labels, strict=True) if not y]
    wins = sum(1.0 if p > n else 0.5 if p == n else 0.0 for p, n in itertools.product(pos, neg))
    return wins / (len(pos) * len(neg))


def test_auc_is_the_pairwise_probability_with_half_credit_for_ties():
    rng = np.random.default_rng(0)
    labels = rng.random(300) < 0.2
    scores = np.round(rng.random(300), 1)  # many ties
    assert auc(labels, scores) == pytest.approx(_pairwise_auc(labels, scores))
    assert auc([0, 1], [0.2, 0.9]) == 1.0 and auc([1, 0], [0.2, 0.9]) == 0.0
    assert math.isnan(auc([0, 0], [0.1, 0.2]))


def test_ndcg_skips_pages_without_a_purchase_and_cuts_at_k():
    # Page a: the purchase ranked 2nd -> 1/log2(3); page b: ranked 1st -> 1; page c: no purchase.
    groups = ["a", "a", "b", "b", "c"]
    gains = [0, 1, 1, 0, 0]
    scores = [0.9, 0.1, 0.9, 0.1, 0.5]
    assert ndcg_at_k(groups, gains, scores) == pytest.approx((1 / math.log2(3) + 1.0) / 2)
    # A purchase ranked 11th is outside the top 10: the page's NDCG@10 is 0.
    page = ["p"] * 11
    assert ndcg_at_k(page, [0] * 10 + [1], np.linspace(1, 0, 11)) == 0.0
    assert math.isnan(ndcg_at_k(["x"], [0], [0.3]))


def test_ndcg_uses_gain_over_log2_rank_plus_one_like_tfma():
    gains = np.array([1, 0, 1, 0])
    scores = np.array([0.1, 0.4, 0.3, 0.2])  # order: 0, 1(gain 1 at rank 2), 0, 1(rank 4)
    dcg = 1 / math.log2(3) + 1 / math.log2(5)
    ideal = 1 + 1 / math.log2(3)
    assert ndcg_at_k(["q"] * 4, gains, scores) == pytest.approx(dcg / ideal)


def test_weighted_auc_counts_each_pair_by_the_product_of_its_weights():
    rng = np.random.default_rng(1)
    labels = rng.random(200) < 0.3
    scores = np.round(rng.random(200), 1)
    weights = rng.uniform(1, 10, 200)
    pos = [(s, w) for s, w, y in zip(scores, weights, labels, strict=True) if y]
    neg = [(s, w) for s, w, y in zip(scores, weights, labels, strict=True) if not y]
    wins = sum(wp * wn * (1.0 if sp > sn else 0.5 if sp == sn else 0.0) for (sp, wp), (sn, wn) in itertools.product(pos, neg))
    expected = wins / (sum(w for _, w in pos) * sum(w for _, w in neg))
    assert weighted_auc(labels, scores, weights) == pytest.approx(expected)
    assert weighted_auc(labels, scores, np.ones(200)) == pytest.approx(auc(labels, scores))
