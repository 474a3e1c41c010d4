"""The counterfactual comparison: gap share, the paired bootstrap interval, score-to-order."""
import datetime

import numpy as np
import pytest

from freshrank import counterfactual
from freshrank.market import Market


@pytest.fixture(scope="module")
def market_and_searches():
    market = Market(seed=3, market_start=datetime.date(2026, 11, 1), drift="mild")
    return market, market.searches(datetime.date(2026, 11, 2), 800)


def test_legacy_scores_zero_share_and_the_oracle_all_of_it(market_and_searches):
    market, searches = market_and_searches
    same = counterfactual.compare(market, searches, market.legacy_rankings(searches))
    assert same.gap_share == pytest.approx(0.0, abs=1e-12)
    assert same.diff_ci == (pytest.approx(0.0, abs=1e-9), pytest.approx(0.0, abs=1e-9))
    assert not same.beats_legacy
    best = counterfactual.compare(market, searches, market.oracle_rankings(searches))
    assert best.gap_share == pytest.approx(1.0)
    assert best.beats_legacy and best.diff_ci[0] > 0
    assert best.oracle_per_100 > best.legacy_per_100 > best.random_per_100


def test_the_interval_covers_the_difference_and_shrinks_with_more_searches(market_and_searches):
    market, searches = market_and_searches
    # A ranking between legacy and the oracle: the oracle order on every other search.
    oracle, legacy = market.oracle_rankings(searches), market.legacy_rankings(searches)
    mixed = [o if i % 2 else lg for i, (o, lg) in enumerate(zip(oracle, legacy, strict=True))]
    full = counterfactual.compare(market, searches, mixed)
    part = counterfactual.compare(market, searches[:200], mixed[:200])
    assert full.diff_ci[0] < full.diff_per_100 < full.diff_ci[1]
    assert 0.3 < full.gap_share < 0.7
    assert (full.diff_ci[1] - full.diff_ci[0]) < (part.diff_ci[1] - part.diff_ci[0])


def test_scores_become_orders_best_first_with_ties_in_retrieval_order(market_and_searches):
    _, searches = market_and_searches
    search = searches[0]
    scores = np.zeros(len(search.candidates))
    scores[3] = 1.0
    order = counterfactual.rank_by_scores([search], [scores])[0]
    ids = search.candidate_ids
    assert order[0] == ids[3] and order[1:] == [i for j, i in enumerate(ids) if j != 3]


def test_score_searches_sends_every_candidate_once_with_its_query_and_user(market_and_searches):
    _, searches = market_and_searches
    seen = {}

    def score_rows(columns):
        seen.update(columns)
        return np.arange(len(columns["query"]), dtype=float)

    pages = counterfactual.score_searches(searches[:3], score_rows)
    assert [len(p) for p in pages] == [len(s.candidates) for s in searches[:3]]
    assert seen["query"][0] == searches[0].query and seen["user_id"][-1] == searches[2].user_id
    assert seen["product_id"] == [c["product_id"] for s in searches[:3] for c in s.candidates]
