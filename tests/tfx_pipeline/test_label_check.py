"""The label gate on market logs: real spans pass, labels shuffled across a span's rows do not."""
from __future__ import annotations

import csv
import datetime

import numpy as np
import pytest

from freshrank.market import simulate
from tfx_pipeline import label_check


def _columns(path) -> dict[str, np.ndarray]:
    with open(path, newline="", encoding="utf-8") as handle:
        rows = list(csv.DictReader(handle))
    return {key: np.array([int(r[key]) for r in rows]) for key in ("position", "clicked", "purchased")}


@pytest.fixture(scope="module", params=[(3, "mild"), (8, "strong")], ids=["mild", "strong"])
def spans(request, tmp_path_factory) -> list[dict[str, np.ndarray]]:
    seed, drift = request.param
    root = tmp_path_factory.mktemp(f"market-{seed}")
    simulate(root, datetime.date(2026, 3, 1), 3, requests_per_day=250, seed=seed, drift=drift)
    return [_columns(next(day.glob("*.csv"))) for day in sorted(p for p in root.iterdir() if p.is_dir())]


def _evidence(span, reference, column) -> label_check.Evidence:
    return label_check.evidence(column, span["position"], span[column], reference["position"], reference[column])


@pytest.mark.parametrize("column", ["clicked", "purchased"])
def test_genuine_spans_pass_with_the_evidence_against_flat(spans, column):
    for reference, span in zip(spans, spans[1:], strict=False):
        evidence = _evidence(span, reference, column)
        assert not evidence.flat and evidence.nats < -label_check.EVIDENCE_NATS
        assert evidence.top_rate > 2 * evidence.rest_rate


def test_labels_shuffled_across_the_span_are_flagged_for_every_seed_of_the_shuffle(spans):
    reference, span = spans[0], spans[1]
    for seed in range(10):
        order = np.random.default_rng(seed).permutation(len(span["position"]))
        # The (clicked, purchased) pair travels together, so every rate and their consistency stay.
        shuffled = {"position": span["position"], "clicked": span["clicked"][order],
                    "purchased": span["purchased"][order]}
        assert _evidence(shuffled, reference, "clicked").flat, seed
        assert shuffled["clicked"].sum() == span["clicked"].sum()


def test_the_message_names_the_column_the_rates_and_the_flag(spans):
    reference, span = spans[0], spans[1]
    order = np.random.default_rng(0).permutation(len(span["position"]))
    text = label_check.evidence("clicked", span["position"], span["clicked"][order],
                                reference["position"], reference["clicked"]).describe()
    assert "'clicked' no longer falls with position" in text
    assert "joined to the wrong impressions" in text and "--no-label-position-check" in text


def test_little_evidence_passes_and_a_reference_without_a_position_effect_decides_nothing():
    rng = np.random.default_rng(1)
    positions = np.tile(np.arange(1, 11), 2000)
    falling = (rng.random(positions.size) < 0.4 / positions).astype(int)
    flat = (rng.random(positions.size) < 0.1).astype(int)
    # Thirty flat labels are too few to outweigh the prior profile: undecided spans pass.
    small = label_check.evidence("clicked", positions[:30], flat[:30], positions, falling)
    assert not small.flat
    # Against a reference that is itself flat there is no profile to lose.
    assert label_check.evidence("clicked", positions, flat, positions, flat).nats == 0.0
    assert label_check.evidence("clicked", positions, flat, positions, falling).flat
