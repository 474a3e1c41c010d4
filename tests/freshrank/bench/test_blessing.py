"""The bench's blessing rules: which recorded rule a strategy is served by."""
from __future__ import annotations

import pytest

from freshrank.bench import blessing
from freshrank.bench.runner import BenchSettings


@pytest.mark.parametrize("weighting, pages, strategy_pages, rule", [
    ("ips", "test", None, "lift_ips"),
    ("none", "test", None, "lift_unweighted"),
    ("ips", "held-out", None, "lift_ips_held_out"),
    ("ips", "test", "held-out", "lift_ips_held_out"),  # a strategy's own pages win
    ("none", "held-out", "test", "lift_unweighted"),
])
def test_the_product_rule_follows_weighting_and_pages(weighting, pages, strategy_pages, rule):
    settings = BenchSettings(bless_weighting=weighting, bless_pages=pages)
    assert blessing.product_rule(settings, strategy_pages) == rule
    assert rule in blessing.RULES


def test_bench_settings_refuse_unknown_pages_naming_the_flag():
    with pytest.raises(ValueError, match="--bless-pages must be one of"):
        BenchSettings(bless_pages="eval").validate()


def test_agreement_counts_each_rule_against_the_truth():
    decisions = [dict(dict.fromkeys(blessing.RULES, True), truth=True),
                 dict(dict.fromkeys(blessing.RULES, True), lift_ips_held_out=False, truth=False)]
    table = blessing.agreement(decisions)
    assert table["lift_ips"]["agreement"] == 0.5 and table["lift_ips"]["blessed_worse"] == 1
    assert table["lift_ips_held_out"]["agreement"] == 1.0 and table["lift_ips_held_out"]["rejected_worse"] == 1
