"""The ``Market`` facade: one day's searches, the legacy ranking, and shopper responses.

State on day d is a pure function of (seed, market_start, drift, sizes, d);
every random draw comes from a stream keyed by (seed, day index, purpose) or a
hash of (seed, day index, purpose, request, slot).  Hence the same request gets
the same outcome whether it is simulated alone through ``respond`` or inside a
whole day by ``simulate``.
"""

from __future__ import annotations

import datetime
from collections import OrderedDict
from collections.abc import Sequence
from dataclasses import dataclass, field

import numpy as np

from .catalog import N_CATEGORIES, Catalog, DayView, product_id
from .drift import get_profile
from .rand import Purpose, day_rng
from .retrieval import legacy_scores, retrieve
from .shoppers import (
    POSITION_BIAS_POWER,
    Intents,
    Users,
    attribute_text,
    draw_outcomes,
    expected_category_share,
    outcome_probabilities,
    query_texts,
    sample_intents,
    user_id,
)
from .spans import SPAN_COLUMNS, check_day
from .vocab import CATEGORY_NAMES

DEFAULT_PAGE_SIZE = 10
DEFAULT_MARKET_START = datetime.date(2026, 11, 1)

# Relative search volume per hour of day (UTC here stands in for shop time): lunch and evening peaks.
_HOURLY = np.array([0.6, 0.4, 0.25, 0.15, 0.1, 0.12, 0.3, 0.6, 0.9, 1.0, 1.1, 1.2,
                    1.3, 1.1, 1.0, 1.0, 1.0, 1.1, 1.3, 1.6, 1.9, 2.1, 1.9, 1.2])


@dataclass(frozen=True)
class Intent:
    """Hidden meaning of a search (ground truth for analysis; never written to spans)."""

    category: str
    brand: str | None
    attribute: str | None  # English text of the wanted feature or colour
    category_code: int
    brand_code: int
    attribute_code: int


@dataclass(frozen=True)
class Search:
    """One search request with its retrieved, unranked candidates and no outcomes yet.

    ``candidates`` are dicts with product_id, title, brand, category, price.
    The remaining fields are internal (hidden from the CSV) and let ``respond``
    replay the shopper deterministically.
    """

    request_id: str
    event_time: str
    user_id: str
    query: str
    day: datetime.date
    candidates: list[dict]
    request_index: int = field(repr=False)
    intent: Intent = field(repr=False)
    user_index: int = field(repr=False)
    candidate_index: tuple[int, ...] = field(repr=False)
    market_key: tuple = field(repr=False, compare=False)

    @property
    def candidate_ids(self) -> list[str]:
        return [c["product_id"] for c in self.candidates]


@dataclass(frozen=True)
class PageOutcomes:
    """Exact expected clicks and purchases per search for one ordering of each page.

    Computed from the market's own probabilities (position bias included), so two orderings of
    the same pages can be compared with no sampling noise. For evaluation only: a shop never
    knows these numbers.
    """

    clicks: np.ndarray  # (searches,) expected clicks on the page as ordered
    purchases: np.ndarray  # (searches,) expected purchases on the page as ordered

    def per_100(self) -> float:
        """Expected purchases per 100 searches (the headline figure)."""
        return 100.0 * float(self.purchases.mean()) if len(self.purchases) else float("nan")


@dataclass(frozen=True)
class _DayBatch:
    """One day's searches as arrays (the vectorized form of a list of Search)."""

    day: datetime.date
    view: DayView
    request_ids: list[str]
    event_times: list[str]
    user_idx: np.ndarray
    queries: list[str]
    intents: Intents
    cand: np.ndarray  # (requests, page_size) product indices, unranked order

    @property
    def request_index(self) -> np.ndarray:
        return np.arange(len(self.request_ids))


def positive_int(value: object, name: str, minimum: int = 1) -> int:
    if isinstance(value, bool) or not isinstance(value, (int, np.integer)) or value < minimum:
        raise ValueError(f"{name} must be an integer >= {minimum}, got {value!r}")
    return int(value)


class Market:
    """A simulated e-commerce shop whose catalogue, prices and demand drift every day."""

    def __init__(self, seed: int = 0, market_start: datetime.date = DEFAULT_MARKET_START,
                 drift: str = "mild", n_products: int = 3000, n_users: int = 2000,
                 page_size: int = DEFAULT_PAGE_SIZE) -> None:
        self.seed = positive_int(seed, "seed", 0)
        self.market_start = check_day(market_start, "market_start")
        self.profile = get_profile(drift)
        self.drift = drift
        self.n_products = positive_int(n_products, "n_products", 100)
        self.n_users = positive_int(n_users, "n_users", 1)
        self.page_size = positive_int(page_size, "page_size", 1)
        if self.page_size > 50:
            raise ValueError(f"page_size must be <= 50, got {page_size}")
        self._catalog = Catalog(self.seed, self.market_start, self.profile, self.n_products, self.page_size)
        self._users = Users.generate(self.seed, self.n_users)
        self._views: OrderedDict[int, DayView] = OrderedDict()
        self._key = (self.seed, self.market_start, self.drift, self.n_products, self.n_users, self.page_size)

    def __repr__(self) -> str:
        return (f"Market(seed={self.seed}, market_start={self.market_start}, drift={self.drift!r}, "
                f"n_products={self.n_products}, n_users={self.n_users}, page_size={self.page_size})")

    # ------------------------------------------------------------ days
    def day_index(self, day: datetime.date) -> int:
        """Days since market_start; the market does not exist before it."""
        day = check_day(day)
        t = (day - self.market_start).days
        if t < 0:
            raise ValueError(f"day {day} is before market_start {self.market_start}")
        return t

    def _view(self, day: datetime.date) -> DayView:
        t = self.day_index(day)
        v = self._views.get(t)
        if v is None:
            v = self._catalog.view(t, check_day(day))
            self._views[t] = v
            while len(self._views) > 4:
                self._views.popitem(last=False)
        else:
            self._views.move_to_end(t)
        return v

    def _batch(self, day: datetime.date, n_requests: int, probe: bool = False) -> _DayBatch:
        n = positive_int(n_requests, "n_requests")
        day = check_day(day)
        view = self._view(day)
        t = view.day_index
        search_purpose, retrieve_purpose = ((Purpose.PROBE_SEARCH, Purpose.PROBE_RETRIEVE) if probe
                                            else (Purpose.SEARCH, Purpose.RETRIEVE))
        rng = day_rng(self.seed, t, search_purpose)
        users = rng.choice(self.n_users, n, p=self._users.activity)
        hour = rng.choice(24, n, p=_HOURLY / _HOURLY.sum())
        seconds = hour * 3600 + rng.integers(0, 3600, n)
        order = np.argsort(seconds, kind="stable")
        users, seconds = users[order], seconds[order]
        intents = sample_intents(view, self._users, users, rng)
        queries = query_texts(view, intents, rng)
        cand = retrieve(view, intents, self.page_size, day_rng(self.seed, t, retrieve_purpose))
        stamp = ("p" if probe else "") + day.strftime("%Y%m%d")
        iso = day.isoformat()
        return _DayBatch(
            day=day, view=view,
            request_ids=[f"r{stamp}-{i + 1:06d}" for i in range(n)],
            event_times=[f"{iso}T{s // 3600:02d}:{s // 60 % 60:02d}:{s % 60:02d}Z" for s in seconds.tolist()],
            user_idx=users, queries=queries, intents=intents, cand=cand,
        )

    # ------------------------------------------------------------ public API
    def searches(self, day: datetime.date, n_requests: int) -> list[Search]:
        """The day's searches with their retrieved candidates (unranked, no outcomes)."""
        return self._searches(self._batch(day, n_requests))

    def probe_searches(self, day: datetime.date, n_requests: int) -> list[Search]:
        """More searches of the same day that no simulated log holds (request ids `rp<date>-...`).

        The same shoppers, catalogue and intents' distribution as `searches(day, n)`, drawn from
        random streams of their own, so a model trained on every logged page of the day has never
        seen them: what measuring forgetting needs once every logged page trains some update.
        """
        return self._searches(self._batch(day, n_requests, probe=True))

    def _searches(self, b: _DayBatch) -> list[Search]:
        v = b.view
        titles, brand_en = v.titles, v.brand_en
        cats = v.category.tolist()
        brands = v.brand.tolist()
        prices = v.price.tolist()
        out = []
        for i, rid in enumerate(b.request_ids):
            ci = int(b.intents.category[i])
            bi = int(b.intents.brand[i])
            ai = int(b.intents.attribute[i])
            attr = attribute_text(ci, ai)
            idx = tuple(b.cand[i].tolist())
            out.append(Search(
                request_id=rid, event_time=b.event_times[i], user_id=user_id(int(b.user_idx[i])),
                query=b.queries[i], day=b.day,
                candidates=[{"product_id": product_id(j), "title": titles[j], "brand": brand_en[brands[j]],
                             "category": CATEGORY_NAMES[cats[j]], "price": prices[j]} for j in idx],
                request_index=i,
                intent=Intent(CATEGORY_NAMES[ci], brand_en[bi] if bi >= 0 else None,
                              attr[0] if attr else None, ci, bi, ai),
                user_index=int(b.user_idx[i]), candidate_index=idx, market_key=self._key,
            ))
        return out

    def _check_search(self, search: Search) -> None:
        if not isinstance(search, Search):
            raise TypeError(f"expected a Search, got {type(search).__name__}")
        if search.market_key != self._key:
            raise ValueError(f"search {search.request_id} was produced by a different Market configuration")

    @staticmethod
    def _search_arrays(search: Search) -> tuple[np.ndarray, ...]:
        it = search.intent
        return (np.array([search.request_index]), np.array([search.user_index]),
                np.array([it.category_code]), np.array([it.brand_code]), np.array([it.attribute_code]),
                np.array([search.candidate_index], dtype=np.int64))

    def default_ranking(self, search: Search) -> list[str]:
        """The shop's legacy ranking (text match + long-run popularity + noise) as product ids, best first."""
        self._check_search(search)
        req, _, icat, ib, ia, cand = self._search_arrays(search)
        scores = legacy_scores(self.seed, self._view(search.day), req, icat, ib, ia, cand)[0]
        order = np.argsort(-scores, kind="stable")
        return [search.candidates[j]["product_id"] for j in order]

    def respond(self, search: Search, ranked_product_ids: Sequence[str]) -> list[dict]:
        """Simulated shopper behaviour on the page as shown, as impression rows keyed by SPAN_COLUMNS.

        Position bias applies to the given order. Deterministic given (seed, day, request).
        """
        self._check_search(search)
        ranked_product_ids = list(ranked_product_ids) if not isinstance(ranked_product_ids, str) \
            else ranked_product_ids
        positions = _positions_of(search, ranked_product_ids)[None, :]
        req, user, icat, ib, ia, cand = self._search_arrays(search)
        clicked, purchased = draw_outcomes(self.seed, self._view(search.day), self._users, req, user,
                                           icat, ib, ia, cand, positions)
        slot = {pid: j for j, pid in enumerate(search.candidate_ids)}
        rows = []
        for pos, pid in enumerate(ranked_product_ids, start=1):
            j = slot[pid]
            c = search.candidates[j]
            rows.append({
                "request_id": search.request_id, "event_time": search.event_time,
                "user_id": search.user_id, "query": search.query, "product_id": pid,
                "title": c["title"], "brand": c["brand"], "category": c["category"],
                "price": c["price"], "position": pos,
                "clicked": int(clicked[0, j]), "purchased": int(purchased[0, j]),
            })
        return rows

    # ------------------------------------------------------------ exact expectations (evaluation only)
    def examined_probabilities(self, searches: Sequence[Search]) -> tuple[np.ndarray, np.ndarray]:
        """P(click | examined) and P(purchase | click) per (search, candidate slot), shape (n, page).

        Examination is the only thing position changes (P(click at position p) is p ** -0.8 times
        the first array), so these two arrays and the position curve fix every ordering's
        expected outcome. Hidden state (quality, trends, discounts, user tastes) enters here:
        use them to evaluate, never to train or bless.
        """
        attract = np.empty((len(searches), self.page_size))
        buy = np.empty((len(searches), self.page_size))
        by_day: dict[datetime.date, list[int]] = {}
        for i, search in enumerate(searches):
            self._check_search(search)
            by_day.setdefault(search.day, []).append(i)
        for day, rows in by_day.items():
            group = [searches[i] for i in rows]
            user = np.array([s.user_index for s in group])
            icat = np.array([s.intent.category_code for s in group])
            ib = np.array([s.intent.brand_code for s in group])
            ia = np.array([s.intent.attribute_code for s in group])
            cand = np.array([s.candidate_index for s in group], dtype=np.int64)
            ones = np.ones_like(cand)
            p_click, p_buy = outcome_probabilities(self._view(day), self._users, user, icat, ib, ia, cand, ones)
            attract[rows], buy[rows] = p_click, p_buy
        return attract, buy

    def expected_outcomes(self, searches: Sequence[Search],
                          rankings: Sequence[Sequence[str]]) -> PageOutcomes:
        """Expected clicks and purchases of each search with its page shown in the given order.

        `rankings[i]` is a permutation of `searches[i]`'s candidate product ids, best first (what
        `default_ranking`, `oracle_ranking` or a model produce). The expectation is exact: the
        mean of `respond`'s outcomes over its randomness.
        """
        if len(rankings) != len(searches):
            raise ValueError(f"got {len(rankings)} rankings for {len(searches)} searches")
        attract, buy = self.examined_probabilities(searches)
        positions = np.empty(attract.shape, dtype=np.int64)
        for i, (search, ranked) in enumerate(zip(searches, rankings, strict=True)):
            positions[i] = _positions_of(search, ranked)
        examine = positions.astype(np.float64) ** -POSITION_BIAS_POWER
        clicks = examine * attract
        return PageOutcomes(clicks=clicks.sum(axis=1), purchases=(clicks * buy).sum(axis=1))

    def oracle_rankings(self, searches: Sequence[Search]) -> list[list[str]]:
        """The best possible order of each page: by P(purchase | examined), highest first.

        Examination falls with position, so by the rearrangement inequality no other order of the
        page has more expected purchases: the ceiling any ranker is measured against.
        """
        attract, buy = self.examined_probabilities(searches)
        value = attract * buy
        out = []
        for i, search in enumerate(searches):
            order = np.argsort(-value[i], kind="stable")
            out.append([search.candidates[j]["product_id"] for j in order])
        return out

    def oracle_ranking(self, search: Search) -> list[str]:
        """`oracle_rankings` for one search."""
        return self.oracle_rankings([search])[0]

    def legacy_rankings(self, searches: Sequence[Search]) -> list[list[str]]:
        """`default_ranking` for many searches."""
        return [self.default_ranking(s) for s in searches]

    def random_order_outcomes(self, searches: Sequence[Search]) -> PageOutcomes:
        """Expected outcomes of a uniformly random order of each page (the floor: no ranking at all)."""
        attract, buy = self.examined_probabilities(searches)
        mean_examine = float(np.mean(np.arange(1, self.page_size + 1, dtype=np.float64) ** -POSITION_BIAS_POWER))
        return PageOutcomes(clicks=mean_examine * attract.sum(axis=1),
                            purchases=mean_examine * (attract * buy).sum(axis=1))

    # ------------------------------------------------------------ fast path
    def simulate_day_fields(self, day: datetime.date, n_requests: int) -> list[list]:
        """Whole day with the legacy ranking, as CSV field lists; same result as searches+default_ranking+respond.

        Vectorized: one call computes every request's ranking and outcomes with
        the same scoring/outcome functions that ``default_ranking``/``respond`` use.
        """
        b = self._batch(day, n_requests)
        v = b.view
        req = b.request_index
        it = b.intents
        scores = legacy_scores(self.seed, v, req, it.category, it.brand, it.attribute, b.cand)
        order = np.argsort(-scores, axis=1, kind="stable")
        k = b.cand.shape[1]
        positions = np.empty_like(order)
        np.put_along_axis(positions, order, np.arange(1, k + 1)[None, :].repeat(len(req), 0), axis=1)
        clicked, purchased = draw_outcomes(self.seed, v, self._users, req, b.user_idx, it.category,
                                           it.brand, it.attribute, b.cand, positions)
        shown = np.take_along_axis(b.cand, order, axis=1)
        clicked = np.take_along_axis(clicked, order, axis=1).tolist()
        purchased = np.take_along_axis(purchased, order, axis=1).tolist()
        titles, brand_en = v.titles, v.brand_en
        cat_of = v.category.tolist()
        brand_of = v.brand.tolist()
        price_txt = {}
        rows: list[list] = []
        for i, rid in enumerate(b.request_ids):
            et, uid, q = b.event_times[i], user_id(int(b.user_idx[i])), b.queries[i]
            ci, pi = clicked[i], purchased[i]
            for p, j in enumerate(shown[i].tolist()):
                pt = price_txt.get(j)
                if pt is None:
                    pt = price_txt[j] = f"{float(v.price[j]):.2f}"
                rows.append([rid, et, uid, q, product_id(j), titles[j], brand_en[brand_of[j]],
                             CATEGORY_NAMES[cat_of[j]], pt, p + 1, ci[p], pi[p]])
        return rows

    # ------------------------------------------------------------ inspection helpers
    def catalog_frame(self, day: datetime.date) -> dict[str, np.ndarray]:
        """Every product launched by ``day`` with its state that day (hidden fields included, for tests/analysis)."""
        v = self._view(day)
        n = v.n_products
        return {
            "product_id": np.array([product_id(i) for i in range(n)]),
            "title": np.array(v.titles[:n]),
            "brand": np.array(v.brand_en)[v.brand.astype(np.int64)],
            "category": np.array(CATEGORY_NAMES)[v.category.astype(np.int64)],
            "price": v.price.copy(),
            "discount": v.discount.copy(),
            "active": v.active.copy(),
            "launch_day": np.datetime64(self.market_start, "D") + v.launch_day.astype("timedelta64[D]"),
            "trend": np.exp(v.log_trend),
            "quality": v.quality.copy(),
        }

    def category_demand(self, day: datetime.date) -> dict[str, float]:
        """Expected share of searches per category on ``day`` (population level, no sampling noise)."""
        share = expected_category_share(self._view(day), self._users)
        return {CATEGORY_NAMES[c]: float(share[c]) for c in range(N_CATEGORIES)}


def _positions_of(search: Search, ranked: Sequence[str]) -> np.ndarray:
    """1-based position of each candidate slot in `ranked`; refuses anything but a permutation."""
    ids = search.candidate_ids
    ranked = list(ranked) if not isinstance(ranked, str) else None
    if ranked is None or len(ranked) != len(ids) or sorted(map(str, ranked)) != sorted(ids) \
            or not all(isinstance(p, str) for p in ranked):
        raise ValueError(f"ranking for {search.request_id} must be a permutation of its {len(ids)} candidate "
                         f"product ids {ids}, got {ranked!r}")
    slot = {pid: j for j, pid in enumerate(ids)}
    positions = np.empty(len(ids), dtype=np.int64)
    for pos, pid in enumerate(ranked, start=1):
        positions[slot[pid]] = pos
    return positions


__all__ = ["Market", "PageOutcomes", "Search", "Intent", "DEFAULT_PAGE_SIZE", "DEFAULT_MARKET_START", "SPAN_COLUMNS"]
