"""How fast the shop changes: drift profiles and the smooth curves they drive.

A ranker trained on yesterday's logs goes stale because of exactly these
mechanisms, so each one is an explicit, tunable number here:

* launches / retirements (new product ids, new brand lines),
* trends (per product, per brand and per category pulses that rise and fade),
* season (yearly category demand cycle; ``strong`` also runs it faster),
* prices (occasional re-pricing and time-limited promotions).
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np


@dataclass(frozen=True)
class DriftProfile:
    """Rates of change of the market; all rates are per simulated day."""

    name: str
    launch_rate: float  # expected launches per day, as a fraction of the initial catalogue
    retire_rate: float  # probability a product older than ``min_age_to_retire`` days is delisted
    new_brand_prob: float  # probability a launch comes from a brand line the shop never had
    price_change_prob: float
    price_change_sigma: float  # log-scale size of a re-pricing
    promo_prob: float  # probability a product not on promotion starts one today
    promo_days: tuple[int, int]
    promo_discount: tuple[float, float]
    season_amplitude: float  # multiplies each category's yearly log-demand amplitude
    season_speed: float  # calendar days the season advances per simulated day
    category_trend_height: float
    category_trend_period: tuple[float, float]
    brand_trend_prob: float
    brand_trend_height: float
    brand_trend_period: tuple[float, float]
    product_trend_prob: float
    product_trend_height: float
    product_trend_period: tuple[float, float]
    novelty_boost: float  # log-popularity boost of a product on its launch day
    novelty_decay_days: float
    min_age_to_retire: int = 30


PROFILES: dict[str, DriftProfile] = {
    "mild": DriftProfile(
        name="mild",
        launch_rate=0.012,
        retire_rate=0.003,
        new_brand_prob=0.01,
        price_change_prob=0.03,
        price_change_sigma=0.08,
        promo_prob=0.01,
        promo_days=(2, 7),
        promo_discount=(0.10, 0.30),
        season_amplitude=1.0,
        season_speed=1.0,
        category_trend_height=0.6,
        category_trend_period=(20.0, 60.0),
        brand_trend_prob=0.5,
        brand_trend_height=0.5,
        brand_trend_period=(30.0, 120.0),
        product_trend_prob=0.35,
        product_trend_height=0.6,
        product_trend_period=(20.0, 90.0),
        novelty_boost=1.2,
        novelty_decay_days=14.0,
    ),
    "strong": DriftProfile(
        name="strong",
        launch_rate=0.03,
        retire_rate=0.008,
        new_brand_prob=0.03,
        price_change_prob=0.08,
        price_change_sigma=0.12,
        promo_prob=0.03,
        promo_days=(2, 7),
        promo_discount=(0.15, 0.45),
        season_amplitude=1.6,
        season_speed=4.0,
        category_trend_height=1.2,
        category_trend_period=(10.0, 40.0),
        brand_trend_prob=0.8,
        brand_trend_height=1.0,
        brand_trend_period=(10.0, 50.0),
        product_trend_prob=0.6,
        product_trend_height=1.2,
        product_trend_period=(8.0, 40.0),
        novelty_boost=2.0,
        novelty_decay_days=10.0,
    ),
}


def get_profile(drift: str) -> DriftProfile:
    """Look up a drift profile by name, with an error that lists the valid names."""
    if not isinstance(drift, str) or drift not in PROFILES:
        raise ValueError(f"drift must be one of {sorted(PROFILES)}, got {drift!r}")
    return PROFILES[drift]


@dataclass(frozen=True)
class Pulses:
    """Parameters of periodic popularity pulses for a set of entities."""

    height: np.ndarray
    period: np.ndarray
    phase: np.ndarray

    def at(self, t: float) -> np.ndarray:
        """Log-multiplier at day index ``t``: height * max(0, cos)^4, a bump that rises and fades.

        The 4th power makes each bump last roughly a fifth of its period, with
        quiet stretches between, like a real fad; being periodic it never runs
        out however long the simulation goes.
        """
        c = np.cos((2.0 * math.pi) * (t - self.phase) / self.period)
        return self.height * np.maximum(c, 0.0) ** 4

    def __len__(self) -> int:
        return len(self.height)


def draw_pulses(rng: np.random.Generator, n: int, prob: float, height: float,
                period: tuple[float, float], heavy_tail: bool = True) -> Pulses:
    """Random pulses: a fraction ``prob`` of the entities trend at all.

    Heights are exponential (a few fads go viral) capped at 3x ``height`` so one
    product or brand never swallows the shop; with ``heavy_tail=False`` they are
    uniform in [0.4, 1] x ``height`` (used for whole categories).
    """
    on = rng.random(n) < prob
    if heavy_tail:
        h = np.minimum(rng.exponential(height, n), 3.0 * height) * on
    else:
        h = rng.uniform(0.4 * height, height, n) * on
    p = rng.uniform(period[0], period[1], n)
    ph = rng.random(n) * p
    return Pulses(h, p, ph)


def season_log_demand(day_of_year: float, peaks: np.ndarray, amplitudes: np.ndarray) -> np.ndarray:
    """Yearly cosine cycle of log demand per category (outerwear up in winter, tees in summer)."""
    return amplitudes * np.cos((2.0 * math.pi) * (day_of_year - peaks) / 365.25)
