"""Market behaviour: drift strength, position bias, purchases following hidden relevance, query text."""

import datetime
import re
from collections import Counter

import numpy as np
import pytest

from freshrank.market import CATEGORY_NAMES, DEFAULT_PAGE_SIZE, Market, Search

START = datetime.date(2026, 11, 1)
WEEK_LATER = START + datetime.timedelta(days=7)


def _tvd(a: dict, b: dict) -> float:
    return 0.5 * sum(abs(a.get(k, 0.0) - b.get(k, 0.0)) for k in set(a) | set(b))


def _impression_share(searches: list[Search]) -> dict:
    c = Counter(x["category"] for s in searches for x in s.candidates)
    n = sum(c.values())
    return {k: v / n for k, v in c.items()}


@pytest.fixture(scope="module")
def mild():
    return Market(seed=0, market_start=START, drift="mild")


@pytest.fixture(scope="module")
def strong():
    return Market(seed=0, market_start=START, drift="strong")


@pytest.fixture(scope="module")
def day1_searches(mild):
    return mild.searches(START, 1500)


def test_category_share_of_impressions_shifts_within_a_week(mild):
    # Population level (no sampling noise): season + category fads move the search mix.
    # Measured TVD over 7 days for seeds 0-5: 0.05-0.10 (seed 0: 0.070).
    assert _tvd(mild.category_demand(START), mild.category_demand(WEEK_LATER)) > 0.04
    # In the impressions themselves. The noise floor is the TVD between two halves of
    # the same day (each half has half the requests, so it over-estimates the noise of
    # a full-day vs full-day comparison by ~sqrt(2)); measured ~0.022 here vs a shift of ~0.068.
    a, b = mild.searches(START, 8000), mild.searches(WEEK_LATER, 8000)
    shift = _tvd(_impression_share(a), _impression_share(b))
    noise = _tvd(_impression_share(a[::2]), _impression_share(a[1::2]))
    assert shift > 0.04
    assert shift > 1.5 * noise


def test_strong_drift_moves_more_than_mild(mild, strong):
    def movement(m: Market) -> tuple[float, float, int]:
        f0, f7 = m.catalog_frame(START), m.catalog_frame(WEEK_LATER)
        n0 = len(f0["price"])
        repriced = float(np.mean(f0["price"] != f7["price"][:n0]))
        return _tvd(m.category_demand(START), m.category_demand(WEEK_LATER)), repriced, len(f7["price"]) - n0

    tvd_m, rep_m, new_m = movement(mild)
    tvd_s, rep_s, new_s = movement(strong)
    assert tvd_s > 1.5 * tvd_m  # measured 0.21 vs 0.07
    assert rep_s > 1.5 * rep_m  # measured ~0.54 vs ~0.25 of products re-priced or on promotion
    assert new_s > 1.5 * new_m  # measured ~580 vs ~250 launches
    # mild still changes: a sizeable minority of prices moves, most stay put (prices are sticky)
    assert 0.05 < rep_m < 0.5


def test_catalog_frame_tracks_launches_and_prices(mild):
    f0, f7 = mild.catalog_frame(START), mild.catalog_frame(WEEK_LATER)
    n0 = len(f0["product_id"])
    assert list(f7["product_id"][:n0]) == list(f0["product_id"])  # ids are stable
    launched = f7["launch_day"][n0:]
    assert len(launched) > 0
    assert (launched > np.datetime64(START)).all() and (launched <= np.datetime64(WEEK_LATER)).all()
    assert set(f7["category"]) <= set(CATEGORY_NAMES)
    assert (f7["price"] > 0).all()
    # re-pricing, not only promotions: some products off promotion on both days changed price
    calm = (f0["discount"] == 0) & (f7["discount"][:n0] == 0)
    repriced = calm & (f0["price"] != f7["price"][:n0])
    assert repriced.sum() > 0.05 * calm.sum()
    assert (f7["discount"][:n0] > 0).any()  # and some are on promotion
    assert len(set(f7["brand"])) <= 200


def test_position_bias_under_random_ranking(mild, day1_searches):
    rng = np.random.default_rng(0)
    clicks = np.zeros(DEFAULT_PAGE_SIZE)
    for s in day1_searches:
        ids = s.candidate_ids
        rng.shuffle(ids)
        for r in mild.respond(s, ids):
            clicks[r["position"] - 1] += r["clicked"]
    ctr = clicks / len(day1_searches)
    # measured ~0.27 at position 1 vs ~0.045 at position 10 (same items on average)
    assert ctr[0] > 3 * ctr[-1]
    assert ctr[0] > ctr[4] > ctr[-1]


def test_respond_honours_the_given_order(mild, day1_searches):
    # Same pages, shown best-first vs reversed: the items the legacy ranking puts on top
    # get clicked more when they really are on top.
    top_clicks_first = top_clicks_reversed = 0
    for s in day1_searches[:800]:
        ranked = mild.default_ranking(s)
        top = set(ranked[:3])
        top_clicks_first += sum(r["clicked"] for r in mild.respond(s, ranked) if r["product_id"] in top)
        rev = mild.respond(s, ranked[::-1])
        assert [r["position"] for r in rev] == list(range(1, 11))
        assert [r["product_id"] for r in rev] == ranked[::-1]
        top_clicks_reversed += sum(r["clicked"] for r in rev if r["product_id"] in top)
    assert top_clicks_first > 2 * top_clicks_reversed


def test_purchases_track_hidden_relevance(mild, day1_searches):
    rng = np.random.default_rng(1)
    on_cat, off_cat, brand_hit, brand_miss = [], [], [], []
    for s in day1_searches:
        ids = s.candidate_ids
        rng.shuffle(ids)  # random order so position bias does not confound relevance
        for r in mild.respond(s, ids):
            (on_cat if r["category"] == s.intent.category else off_cat).append(r["purchased"])
            if s.intent.brand is not None and r["category"] == s.intent.category:
                (brand_hit if r["brand"] == s.intent.brand else brand_miss).append(r["purchased"])
    assert len(off_cat) > 500 and len(brand_hit) > 200 and len(brand_miss) > 200
    assert np.mean(on_cat) > 5 * np.mean(off_cat)
    assert np.mean(brand_hit) > 1.5 * np.mean(brand_miss)


def test_respond_is_deterministic_across_instances(mild, day1_searches):
    s = day1_searches[7]
    ranked = mild.default_ranking(s)
    again = Market(seed=0, market_start=START, drift="mild")
    s2 = again.searches(START, 1500)[7]
    assert s2 == s
    assert again.default_ranking(s2) == ranked
    assert again.respond(s2, ranked) == mild.respond(s, ranked)


def test_respond_rejects_non_permutations(mild, day1_searches):
    s = day1_searches[0]
    ids = s.candidate_ids
    for bad in (ids[:-1], ids[:-1] + ids[:1], ids[:-1] + ["p9999999"], ids + ["p9999999"], "p0000001"):
        with pytest.raises(ValueError, match="permutation"):
            mild.respond(s, bad)
    other = Market(seed=1, market_start=START)
    with pytest.raises(ValueError, match="different Market"):
        other.respond(s, ids)


def test_searches_have_retrieved_unranked_candidates(day1_searches):
    in_cat = []
    for s in day1_searches:
        ids = s.candidate_ids
        assert len(ids) == DEFAULT_PAGE_SIZE == len(set(ids))
        assert set(s.candidates[0]) == {"product_id", "title", "brand", "category", "price"}
        in_cat.append(np.mean([c["category"] == s.intent.category for c in s.candidates]))
    assert 0.8 < np.mean(in_cat) < 0.97  # mostly on-category, with some retrieval noise


def test_queries_mix_chinese_and_english(day1_searches):
    def lang(q: str) -> str:
        zh, en = bool(re.search(r"[\u4e00-\u9fff]", q)), bool(re.search(r"[A-Za-z]", q))
        return "mixed" if zh and en else "zh" if zh else "en"

    share = Counter(lang(s.query) for s in day1_searches)
    n = len(day1_searches)
    assert 0.3 < share["zh"] / n < 0.5
    assert 0.4 < share["en"] / n < 0.6
    assert 0.03 < share["mixed"] / n < 0.2
    assert any(re.search(r"[\u4e00-\u9fff]", s.candidates[0]["title"]) for s in day1_searches[:20])


def test_market_validates_inputs(mild):
    with pytest.raises(ValueError, match="drift"):
        Market(drift="chaos")
    with pytest.raises(ValueError, match="before market_start"):
        mild.searches(START - datetime.timedelta(days=1), 10)
    with pytest.raises(ValueError, match="n_requests"):
        mild.searches(START, 0)
    with pytest.raises(TypeError):
        mild.searches("2026-11-01", 10)
