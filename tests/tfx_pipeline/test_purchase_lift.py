"""The logged estimate of an order's purchases: exact on the logged order, unbiased on a
position-based shopper, and a paired difference that tells a better order from a worse one."""
from __future__ import annotations

import numpy as np
import pytest

from tfx_pipeline.purchase_lift import lift, page_purchases, paired

PAGE = 10
CURVE = np.r_[1.0, np.arange(1, 51, dtype=np.float64) ** -0.8]  # entry 0 unused, as propensity's curves


def _logs(rng: np.random.Generator, pages: int, relevance: np.ndarray | None = None):
    """Pages shown in a random (logged) order to position-based shoppers: P(buy) = e(position) x rate."""
    groups = np.repeat(np.arange(pages), PAGE)
    rates = rng.uniform(0.0, 0.3, (pages, PAGE)) if relevance is None else relevance
    logged = np.argsort(rng.random((pages, PAGE)), axis=1)  # logged[q, i]: the position - 1 of item i
    positions = (logged + 1).reshape(-1)
    bought = rng.random(pages * PAGE) < CURVE[positions] * rates.reshape(-1)
    return groups, positions, bought.astype(np.int64), rates


def _true_purchases(rates: np.ndarray, scores: np.ndarray) -> float:
    """Expected purchases per page of ordering each page by `scores` (best first)."""
    ranks = np.argsort(np.argsort(-scores.reshape(rates.shape), axis=1), axis=1) + 1
    return float((CURVE[ranks] * rates).sum(axis=1).mean())


def test_the_logged_order_is_credited_exactly_the_purchases_it_made():
    rng = np.random.default_rng(0)
    groups, positions, bought, _ = _logs(rng, 50)
    keys, per_page = page_purchases(groups, positions, bought, -positions.astype(float), CURVE)
    assert list(keys) == list(range(50))
    np.testing.assert_allclose(per_page, np.bincount(groups, bought))


def test_the_estimate_of_another_order_is_unbiased_for_position_based_shoppers():
    rng = np.random.default_rng(1)
    rates = rng.uniform(0.0, 0.1, (4000, PAGE))  # low rates: no weight needs clipping to matter much
    scores = (rates + rng.normal(0, 0.02, rates.shape)).reshape(-1)  # a decent model's order
    estimates = []
    for _ in range(5):
        groups, positions, bought, _ = _logs(rng, 4000, relevance=rates)
        estimates.append(page_purchases(groups, positions, bought, scores, CURVE)[1].mean())
    truth = _true_purchases(rates, scores)
    # Positions 1-10 of this curve need weights up to 6.3 (< the clip at 10): unbiased.
    assert np.mean(estimates) == pytest.approx(truth, rel=0.03)
    # Unweighted, the same order is credited what the logging order's positions allowed: biased low.
    groups, positions, bought, _ = _logs(rng, 4000, relevance=rates)
    naive = page_purchases(groups, positions, bought, scores, CURVE, weighted=False)[1].mean()
    assert naive < 0.8 * truth


def test_the_paired_lift_prefers_the_better_order_and_is_zero_between_equal_ones():
    rng = np.random.default_rng(2)
    groups, positions, bought, rates = _logs(rng, 600)
    good, bad = rates.reshape(-1), -rates.reshape(-1)
    better = lift(groups, positions, bought, good, bad, CURVE)
    assert better.per_100 > 0 and better.z() > 3 and better.blesses(0.0)
    worse = lift(groups, positions, bought, bad, good, CURVE)
    assert worse.per_100 == pytest.approx(-better.per_100) and not worse.blesses(2.0)
    same = lift(groups, positions, bought, good, good, CURVE)
    assert same.per_100 == 0 and same.standard_error == 0 and same.blesses(0.0)


def test_examples_in_any_order_give_the_same_pages():
    rng = np.random.default_rng(3)
    groups, positions, bought, rates = _logs(rng, 40)
    scores = rates.reshape(-1)
    shuffle = rng.permutation(len(groups))
    _, in_order = page_purchases(groups, positions, bought, scores, CURVE)
    _, shuffled = page_purchases(groups[shuffle], positions[shuffle], bought[shuffle], scores[shuffle], CURVE)
    np.testing.assert_allclose(in_order, shuffled)


def test_a_paired_difference_is_per_100_searches_with_its_standard_error():
    result = paired(np.array([0.1, -0.1, 0.3, 0.1]))
    assert result.per_100 == pytest.approx(10.0)
    assert result.standard_error == pytest.approx(100 * np.std([0.1, -0.1, 0.3, 0.1], ddof=1) / 2)
    assert result.pages == 4 and paired(np.array([])).pages == 0
