"""The examination curve from click logs alone: exact on a position-based click model, close on
the market's logs, and weights that stay bounded."""
from __future__ import annotations

import datetime

import numpy as np
import pytest

from trainer.propensity import MAX_WEIGHT, examination_curve, ips_weights


def test_em_recovers_the_curve_of_a_position_based_click_model():
    rng = np.random.default_rng(0)
    theta = np.array([0.0, 1.0, 0.7, 0.5, 0.35, 0.25, 0.2, 0.15, 0.12, 0.1, 0.08]) * 0.9
    items = rng.integers(0, 300, 60_000)
    gamma = rng.beta(1, 4, 300)
    positions = rng.integers(1, 11, items.size)  # every item at many positions: identifiable
    clicks = rng.random(items.size) < theta[positions] * gamma[items]
    curve = examination_curve(positions, clicks, items)
    np.testing.assert_allclose(curve[1:11], theta[1:11] / theta[1], atol=0.04)
    # Positions deeper than any logged one take the deepest logged value.
    assert curve[11] == curve[10] and curve[50] == curve[10]


def test_the_curve_of_market_logs_is_near_the_markets_own_and_falls_with_position():
    from freshrank.market import Market
    from freshrank.market.shoppers import POSITION_BIAS_POWER

    market = Market(seed=5, market_start=datetime.date(2026, 3, 2), drift="mild")
    rows = [r for d in range(2) for r in market.simulate_day_fields(datetime.date(2026, 3, 2 + d), 800)]
    positions = np.array([r[9] for r in rows])
    curve = examination_curve(positions, np.array([r[10] for r in rows]), np.array([r[4] for r in rows]))
    truth = np.arange(1, 11, dtype=float) ** -POSITION_BIAS_POWER
    np.testing.assert_allclose(curve[2:8], truth[1:7], atol=0.08)
    assert np.all(np.diff(curve[1:8]) < 0), curve[1:8]
    # Uncorrected (all ones) would be off by 0.4-0.8 at these positions.
    assert np.abs(curve[2:8] - truth[1:7]).max() < 0.2 * np.abs(1.0 - truth[1:7]).min()


def test_weights_are_inverse_propensities_clipped_to_a_bound():
    curve = np.array([1.0, 1.0, 0.5, 0.2, 0.01])
    np.testing.assert_allclose(ips_weights(np.array([1, 2, 3, 4, 9]), curve), [1.0, 2.0, 5.0, MAX_WEIGHT, MAX_WEIGHT])


def test_logs_without_a_top_slot_or_with_bad_positions_are_refused():
    with pytest.raises(ValueError, match="position 1"):
        examination_curve(np.array([2, 3]), np.array([1, 0]), np.array(["a", "b"]))
    with pytest.raises(ValueError, match=">= 1"):
        examination_curve(np.array([0, 1]), np.array([1, 0]), np.array(["a", "b"]))
