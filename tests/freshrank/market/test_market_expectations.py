"""Exact expected outcomes: they agree with what `respond` draws, and the oracle order is the ceiling."""
import datetime

import numpy as np
import pytest

from freshrank.market import Market

DAY = datetime.date(2026, 11, 3)


@pytest.fixture(scope="module")
def market():
    return Market(seed=7, market_start=datetime.date(2026, 11, 1), drift="strong")


@pytest.fixture(scope="module")
def searches(market):
    return market.searches(DAY, 6000)


def _reversed(rankings):
    return [list(reversed(r)) for r in rankings]


@pytest.mark.parametrize("order", ["legacy", "reversed", "oracle"])
def test_exact_expectation_agrees_with_monte_carlo_through_respond(market, searches, order):
    legacy = market.legacy_rankings(searches)
    rankings = {"legacy": legacy, "reversed": _reversed(legacy), "oracle": market.oracle_rankings(searches)}[order]
    expected = market.expected_outcomes(searches, rankings)
    rows = [market.respond(s, r) for s, r in zip(searches, rankings, strict=True)]
    bought = np.array([sum(x["purchased"] for x in page) for page in rows], dtype=float)
    clicked = np.array([sum(x["clicked"] for x in page) for page in rows], dtype=float)
    # Each search's outcomes are independent draws: the realised mean lies within a few
    # standard errors of the exact mean (the error estimated from the realised spread).
    for realised, exact in ((bought, expected.purchases), (clicked, expected.clicks)):
        error = realised.std(ddof=1) / np.sqrt(len(realised))
        assert abs(realised.mean() - exact.mean()) < 4 * error, (order, realised.mean(), exact.mean(), error)
    # Not vacuous: the orders differ by far more than that error.
    assert expected.per_100() > 0


def test_orders_differ_in_expectation_as_position_bias_says(market, searches):
    legacy = market.legacy_rankings(searches)
    best = market.expected_outcomes(searches, market.oracle_rankings(searches)).purchases.mean()
    shown = market.expected_outcomes(searches, legacy).purchases.mean()
    worst = market.expected_outcomes(searches, _reversed(market.oracle_rankings(searches))).purchases.mean()
    random = market.random_order_outcomes(searches).purchases.mean()
    assert best > shown > random > worst


def test_the_oracle_order_is_never_beaten_on_any_page(market, searches):
    rng = np.random.default_rng(0)
    sample = searches[:500]
    oracle = market.expected_outcomes(sample, market.oracle_rankings(sample)).purchases
    others = [market.legacy_rankings(sample), _reversed(market.legacy_rankings(sample))]
    others += [[list(rng.permutation(s.candidate_ids)) for s in sample] for _ in range(20)]
    for rankings in others:
        other = market.expected_outcomes(sample, rankings).purchases
        assert np.all(other <= oracle + 1e-12)
    # Swapping any two adjacent products of an oracle page never helps either.
    for search, ranking in zip(sample[:50], market.oracle_rankings(sample[:50]), strict=True):
        best = market.expected_outcomes([search], [ranking]).purchases[0]
        for i in range(len(ranking) - 1):
            swapped = ranking[:i] + [ranking[i + 1], ranking[i]] + ranking[i + 2:]
            assert market.expected_outcomes([search], [swapped]).purchases[0] <= best + 1e-12


def test_a_ranking_that_is_not_a_permutation_is_refused(market, searches):
    search = searches[0]
    with pytest.raises(ValueError, match="permutation"):
        market.expected_outcomes([search], [search.candidate_ids[:-1]])
    with pytest.raises(ValueError, match="rankings for"):
        market.expected_outcomes([search], [])


def test_probe_searches_are_the_same_day_but_no_logged_page(market, searches):
    # Forgetting is measured on these once every logged page trains some update: they must be the
    # day's market (same catalogue, similar purchase rates) and none of its logged searches.
    probe = market.probe_searches(DAY, 2000)
    assert probe == market.probe_searches(DAY, 2000)  # deterministic
    assert all(s.request_id.startswith("rp20261103-") and s.day == DAY for s in probe)
    logged_pages = {(s.user_index, s.query, s.candidate_index) for s in searches}
    assert not logged_pages & {(s.user_index, s.query, s.candidate_index) for s in probe}
    logged_ids = {s.request_id for s in searches}
    assert not logged_ids & {s.request_id for s in probe}
    # The same day's shop: the legacy order sells at the same rate on both, within sampling error.
    rates = []
    for pages in (searches, probe):
        per_search = market.expected_outcomes(pages, market.legacy_rankings(pages)).purchases
        rates.append((per_search.mean(), per_search.std(ddof=1) / np.sqrt(len(per_search))))
    (a, sa), (b, sb) = rates
    assert abs(a - b) < 4 * np.hypot(sa, sb), rates
