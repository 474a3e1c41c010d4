"""The product catalogue and its day-by-day evolution.

The catalogue at day index ``t`` (days since ``market_start``) is a pure
function of (seed, drift profile, initial size, t): we build the initial shop
from the seed and then replay each day's launches, delistings, re-pricings and
promotions with that day's own random streams.  Replaying is vectorized and
takes milliseconds per simulated day, which is what lets day d be generated
in a fresh process with exactly the bytes it would have had in a long run.
"""

from __future__ import annotations

import copy
import datetime
from dataclasses import dataclass

import numpy as np

from .drift import DriftProfile, Pulses, draw_pulses, season_log_demand
from .rand import Purpose, day_rng
from .vocab import (
    CATEGORIES,
    COLOURS,
    MAX_BRANDS,
    NEW_BRAND_EN_SYLLABLES,
    NEW_BRAND_ZH_CHARS,
    initial_brands,
)

N_CATEGORIES = len(CATEGORIES)
_N_FEATURES = np.array([len(c.features) for c in CATEGORIES])
_N_SPECS = np.array([len(c.specs) for c in CATEGORIES])
_N_NOUNS = np.array([len(c.nouns) for c in CATEGORIES])
_N_SERIES = np.array([len(c.series) for c in CATEGORIES])
_HAS_COLOUR = np.array([c.has_colour for c in CATEGORIES])
_LOG_MEDIAN = np.log(np.array([c.price_median for c in CATEGORIES]))
_PRICE_SIGMA = np.array([c.price_sigma for c in CATEGORIES])
_SEASON_PEAK = np.array([c.season_peak_doy for c in CATEGORIES], dtype=float)
_SEASON_AMP = np.array([c.season_amplitude for c in CATEGORIES])

#: Reference ("typical") price per category; shoppers judge prices relative to it.
CATEGORY_REFERENCE_PRICE = np.exp(_LOG_MEDIAN)

_STATIC_FIELDS = ("category", "brand", "feature", "colour", "spec", "price0", "quality",
                  "popularity", "launch_day")
_DYNAMIC_FIELDS = ("active", "walk", "promo_until", "promo_discount")


@dataclass(frozen=True)
class DayView:
    """Read-only snapshot of the shop on one day: what retrieval and shoppers see.

    Arrays are indexed by product index (``product_id`` = ``p%07d`` of index+1)
    and cover every product launched up to and including this day.
    """

    day_index: int
    date: datetime.date
    category: np.ndarray
    brand: np.ndarray
    feature: np.ndarray
    colour: np.ndarray
    spec: np.ndarray
    quality: np.ndarray  # hidden
    popularity: np.ndarray  # hidden long-run log popularity
    launch_day: np.ndarray
    active: np.ndarray
    price: np.ndarray  # shown price today, rounded to cents
    discount: np.ndarray  # promotion discount fraction today (0 when none)
    log_trend: np.ndarray  # hidden: product + brand pulses + launch novelty, today
    active_by_category: tuple[np.ndarray, ...]
    category_log_demand: np.ndarray
    titles: list[str]
    brand_en: list[str]
    brand_zh: list[str]
    category_brands: tuple[tuple[int, ...], ...]

    @property
    def n_products(self) -> int:
        return len(self.category)

    def product_id(self, index: int) -> str:
        return product_id(index)


def product_id(index: int) -> str:
    """Public id of a product index; prefixed so it never parses as a number."""
    return f"p{index + 1:07d}"


def _new_brand_names(rng: np.random.Generator, taken: set[str], n: int) -> list[tuple[str, str]]:
    """Invent ``n`` unique pronounceable brand names (English + Chinese) for future brand lines."""
    out: list[tuple[str, str]] = []
    seen = {t.lower() for t in taken}
    while len(out) < n:
        k = int(rng.integers(2, 4))
        en = "".join(NEW_BRAND_EN_SYLLABLES[i] for i in rng.integers(0, len(NEW_BRAND_EN_SYLLABLES), k))
        en = en[0].upper() + en[1:].lower()
        zh = "".join(NEW_BRAND_ZH_CHARS[i] for i in rng.integers(0, len(NEW_BRAND_ZH_CHARS), 2))
        if en.lower() in seen:
            continue
        seen.add(en.lower())
        out.append((en, zh))
    return out


class Catalog:
    """Products, brands and category demand, replayable to any day index."""

    def __init__(self, seed: int, market_start: datetime.date, profile: DriftProfile,
                 n_products: int, page_size: int) -> None:
        self.seed = seed
        self.market_start = market_start
        self.profile = profile
        self.n_initial = n_products
        self.min_active_per_category = max(4 * page_size, 40)

        rng = day_rng(seed, 0, Purpose.BRANDS)
        names, cat_brands = initial_brands()
        self.n_initial_brands = len(names)
        names += _new_brand_names(rng, {en for en, _ in names}, MAX_BRANDS - len(names))
        self.brand_en = [en for en, _ in names]
        self.brand_zh = [zh for _, zh in names]
        # Parameters for all brand slots are drawn up front, so a brand line that
        # launches on day 90 has the same character in every replay.
        self.brand_size = rng.normal(0.0, 0.6, MAX_BRANDS)
        self.brand_premium = rng.normal(0.0, 0.25, MAX_BRANDS)
        self.brand_quality = rng.normal(0.0, 0.4, MAX_BRANDS)
        self.brand_pulses = draw_pulses(rng, MAX_BRANDS, profile.brand_trend_prob,
                                        profile.brand_trend_height, profile.brand_trend_period)
        trng = day_rng(seed, 0, Purpose.TRENDS)
        self.category_pulses = draw_pulses(trng, N_CATEGORIES, 1.0, profile.category_trend_height,
                                           profile.category_trend_period, heavy_tail=False)
        self._start_doy = market_start.timetuple().tm_yday

        self._build_initial(cat_brands)

    # ------------------------------------------------------------------ state
    def _build_initial(self, cat_brands: list[list[int]]) -> None:
        rng = day_rng(self.seed, 0, Purpose.CATALOG)
        n = self.n_initial
        size_w = rng.dirichlet(np.full(N_CATEGORIES, 8.0))
        cats = rng.choice(N_CATEGORIES, n, p=size_w).astype(np.int16)
        brands = np.empty(n, dtype=np.int16)
        for c in range(N_CATEGORIES):
            idx = np.flatnonzero(cats == c)
            ids = np.array(cat_brands[c])
            w = np.exp(self.brand_size[ids])
            brands[idx] = rng.choice(ids, len(idx), p=w / w.sum())
        launch = -rng.integers(1, 720, n).astype(np.int32)
        self.static: dict[str, np.ndarray] = {}
        self.titles: list[str] = []
        self.pulses = Pulses(np.empty(0), np.empty(0), np.empty(0))
        self.cat_brands = [list(b) for b in cat_brands]
        self.n_brands = self.n_initial_brands
        self._append_products(rng, cats, brands, launch)
        promo = rng.random(n) < self.profile.promo_prob * 3
        until = np.where(promo, rng.integers(0, self.profile.promo_days[1], n), -1).astype(np.int32)
        disc = rng.uniform(*self.profile.promo_discount, n)
        self.dynamic: dict[str, np.ndarray] = {
            "active": np.ones(n, dtype=bool),
            "walk": np.zeros(n),
            "promo_until": until,
            "promo_discount": np.where(promo, disc, 0.0),
        }
        self.day_index = 0
        self._initial_state = self._snapshot()

    def _snapshot(self) -> dict:
        return copy.deepcopy({
            "static": self.static, "titles": self.titles, "pulses": self.pulses,
            "cat_brands": self.cat_brands, "n_brands": self.n_brands, "dynamic": self.dynamic,
            "day_index": self.day_index,
        })

    def _restore(self, snap: dict) -> None:
        snap = copy.deepcopy(snap)
        self.static = snap["static"]
        self.titles = snap["titles"]
        self.pulses = snap["pulses"]
        self.cat_brands = snap["cat_brands"]
        self.n_brands = snap["n_brands"]
        self.dynamic = snap["dynamic"]
        self.day_index = snap["day_index"]

    @property
    def n_products(self) -> int:
        return len(self.titles)

    # ------------------------------------------------------------ products
    def _append_products(self, rng: np.random.Generator, cats: np.ndarray, brands: np.ndarray,
                         launch: np.ndarray) -> None:
        """Invent products for the given categories/brands and append them (ids are positional)."""
        n = len(cats)
        c = cats.astype(np.int64)
        u = rng.random((n, 8))
        feature = (u[:, 0] * _N_FEATURES[c]).astype(np.int8)
        colour = np.where(_HAS_COLOUR[c], (u[:, 1] * len(COLOURS)).astype(np.int8), -1).astype(np.int8)
        spec = np.where(_N_SPECS[c] > 0, (u[:, 2] * np.maximum(_N_SPECS[c], 1)).astype(np.int8),
                        -1).astype(np.int8)
        noun = (u[:, 3] * _N_NOUNS[c]).astype(np.int64)
        # Each brand sticks to two product lines of the category, like a real brand's series.
        series = (brands.astype(np.int64) * 7 + (u[:, 4] < 0.5)) % _N_SERIES[c]
        number = rng.integers(2, 20, n)
        z = rng.standard_normal((n, 3))
        b = brands.astype(np.int64)
        log_price = (_LOG_MEDIAN[c] + self.brand_premium[b] + _PRICE_SIGMA[c] * z[:, 0]
                     + 0.06 * np.maximum(spec, 0))
        price0 = np.maximum(np.round(np.exp(log_price), 2), 0.5)
        quality = (z[:, 1] + self.brand_quality[b]).astype(np.float64)
        popularity = 0.8 * z[:, 2] + 0.4 * quality + 0.5 * self.brand_size[b]
        p = self.profile
        pulses = draw_pulses(rng, n, p.product_trend_prob, p.product_trend_height, p.product_trend_period)

        titles = []
        for i in range(n):
            spec_c = CATEGORIES[c[i]]
            bi = int(b[i])
            parts = [self.brand_en[bi]]
            if self.brand_zh[bi]:
                parts.append(self.brand_zh[bi])
            if u[i, 5] < 0.85:
                s = spec_c.series[series[i]]
                parts.append(f"{s} {number[i]}" if spec_c.numbered_series or u[i, 5] < 0.3 else s)
            if u[i, 6] < 0.15:
                year = (self.market_start + datetime.timedelta(days=int(launch[i]))).year
                parts.append(f"{year}新款")
            f_en, f_zh = spec_c.features[feature[i]]
            parts.append(f_zh if u[i, 6] < 0.7 else f_en)
            n_en, n_zh = spec_c.nouns[noun[i]]
            parts.append(n_zh)
            if u[i, 7] < 0.35:
                parts.append(n_en)
            if spec[i] >= 0:
                parts.append(spec_c.specs[spec[i]])
            if colour[i] >= 0:
                col_en, col_zh = COLOURS[colour[i]]
                parts.append(col_zh if u[i, 7] < 0.8 else col_en)
            titles.append(" ".join(parts))

        new = {
            "category": cats.astype(np.int16), "brand": brands.astype(np.int16), "feature": feature,
            "colour": colour, "spec": spec, "price0": price0, "quality": quality,
            "popularity": popularity, "launch_day": launch.astype(np.int32),
        }
        for k in _STATIC_FIELDS:
            self.static[k] = np.concatenate([self.static[k], new[k]]) if k in self.static else new[k]
        self.titles = self.titles + titles
        self.pulses = Pulses(np.concatenate([self.pulses.height, pulses.height]),
                             np.concatenate([self.pulses.period, pulses.period]),
                             np.concatenate([self.pulses.phase, pulses.phase]))

    # -------------------------------------------------------------- demand
    def category_log_demand(self, t: int) -> np.ndarray:
        """Log demand weight per category on day index t: season + category fads."""
        p = self.profile
        doy = self._start_doy + p.season_speed * t
        return (season_log_demand(doy, _SEASON_PEAK, _SEASON_AMP * p.season_amplitude)
                + self.category_pulses.at(t))

    # -------------------------------------------------------------- replay
    def advance_to(self, t: int) -> None:
        """Bring the mutable state to the end of day index ``t`` (replaying from day 0 if needed)."""
        if t < 0:
            raise ValueError(f"day index must be >= 0, got {t}")
        if t < self.day_index:
            self._restore(self._initial_state)
        while self.day_index < t:
            self._step(self.day_index + 1)

    def _step(self, s: int) -> None:
        """Apply day s's events: delistings, re-pricings, promotions, then launches."""
        p = self.profile
        n = self.n_products
        st, dy = self.static, self.dynamic
        active = dy["active"]

        # Delistings, never emptying a category below what retrieval needs.
        u = day_rng(self.seed, s, Purpose.RETIRE).random(n)
        retire = active & (s - st["launch_day"] >= p.min_age_to_retire) & (u < p.retire_rate)
        if retire.any():
            after = np.bincount(st["category"][active & ~retire], minlength=N_CATEGORIES)
            low = after < self.min_active_per_category
            if low.any():
                retire &= ~low[st["category"]]
            active = active & ~retire
            dy["active"] = active

        # Re-pricing: a few products per day move, with mild mean reversion.
        prng = day_rng(self.seed, s, Purpose.PRICE)
        u = prng.random(n)
        z = prng.standard_normal(n)
        change = active & (u < p.price_change_prob)
        walk = dy["walk"].copy()
        walk[change] = 0.85 * walk[change] + p.price_change_sigma * z[change]
        dy["walk"] = walk

        # Promotions: time-limited discounts.
        mrng = day_rng(self.seed, s, Purpose.PROMO)
        u = mrng.random(n)
        length = mrng.integers(p.promo_days[0], p.promo_days[1] + 1, n)
        disc = mrng.uniform(p.promo_discount[0], p.promo_discount[1], n)
        start = active & (dy["promo_until"] < s) & (u < p.promo_prob)
        dy["promo_until"] = np.where(start, s + length - 1, dy["promo_until"]).astype(np.int32)
        dy["promo_discount"] = np.where(start, disc, dy["promo_discount"])

        # Launches: mostly into categories that are in demand, often from trending brands.
        lrng = day_rng(self.seed, s, Purpose.LAUNCH)
        k = int(lrng.poisson(p.launch_rate * self.n_initial))
        if k > 0:
            demand = np.exp(self.category_log_demand(s))
            pc = 0.5 / N_CATEGORIES + 0.5 * demand / demand.sum()
            cats = lrng.choice(N_CATEGORIES, k, p=pc)
            new_line = lrng.random(k) < p.new_brand_prob
            pick = lrng.random(k)
            brand_trend = self.brand_pulses.at(s)
            brands = np.empty(k, dtype=np.int16)
            for i in range(k):
                c = int(cats[i])
                if new_line[i] and self.n_brands < MAX_BRANDS:
                    b = self.n_brands
                    self.n_brands += 1
                    self.cat_brands[c].append(b)
                else:
                    ids = np.array(self.cat_brands[c])
                    w = np.exp(self.brand_size[ids] + brand_trend[ids])
                    cw = np.cumsum(w)
                    b = int(ids[min(int(np.searchsorted(cw, pick[i] * cw[-1], side="right")), len(ids) - 1)])
                brands[i] = b
            self._append_products(lrng, cats.astype(np.int16), brands, np.full(k, s, dtype=np.int32))
            dy["active"] = np.concatenate([dy["active"], np.ones(k, dtype=bool)])
            dy["walk"] = np.concatenate([dy["walk"], np.zeros(k)])
            dy["promo_until"] = np.concatenate([dy["promo_until"], np.full(k, -1, dtype=np.int32)])
            dy["promo_discount"] = np.concatenate([dy["promo_discount"], np.zeros(k)])
        self.day_index = s

    # ---------------------------------------------------------------- view
    def view(self, t: int, date: datetime.date) -> DayView:
        """Snapshot of day index t (advances the replay as needed)."""
        self.advance_to(t)
        st, dy, p = self.static, self.dynamic, self.profile
        on_promo = dy["promo_until"] >= t
        discount = np.where(on_promo, dy["promo_discount"], 0.0)
        price = np.maximum(np.round(st["price0"] * np.exp(dy["walk"]) * (1.0 - discount), 2), 0.01)
        age = t - st["launch_day"]
        novelty = p.novelty_boost * np.exp(-np.maximum(age, 0) / p.novelty_decay_days)
        log_trend = (self.pulses.at(t) + self.brand_pulses.at(t)[st["brand"].astype(np.int64)] + novelty)
        active = dy["active"].copy()
        # Centre on today's listed products (log-mean-exp, as popularity-weighted
        # retrieval sees them): trends re-rank products against each other without
        # inflating overall conversion as more fads overlap.
        lt = log_trend[active]
        log_trend = log_trend - (lt.max() + np.log(np.mean(np.exp(lt - lt.max()))))
        cats = st["category"]
        order = np.argsort(cats, kind="stable")
        order = order[active[order]]
        bounds = np.searchsorted(cats[order], np.arange(N_CATEGORIES + 1))
        by_cat = tuple(order[bounds[c]:bounds[c + 1]] for c in range(N_CATEGORIES))
        return DayView(
            day_index=t, date=date,
            category=st["category"], brand=st["brand"], feature=st["feature"], colour=st["colour"],
            spec=st["spec"], quality=st["quality"], popularity=st["popularity"],
            launch_day=st["launch_day"], active=active, price=price, discount=discount,
            log_trend=log_trend, active_by_category=by_cat,
            category_log_demand=self.category_log_demand(t),
            titles=self.titles, brand_en=self.brand_en, brand_zh=self.brand_zh,
            category_brands=tuple(tuple(b) for b in self.cat_brands),
        )


__all__ = ["Catalog", "DayView", "CATEGORY_REFERENCE_PRICE", "N_CATEGORIES", "product_id"]
