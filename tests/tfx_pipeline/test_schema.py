"""The curated schema accepts generated spans and names what is wrong with broken ones."""
import csv
import datetime

import pytest
import tensorflow_data_validation as tfdv

from freshrank.market import simulate
from schemas import SCHEMA_PATH
from tfx_pipeline import data_gate

DAY = datetime.date(2026, 11, 1)


@pytest.fixture(scope="module")
def schema():
    return tfdv.load_schema_text(str(SCHEMA_PATH))


@pytest.fixture(scope="module")
def market(tmp_path_factory):
    root = tmp_path_factory.mktemp("market")
    simulate(root, DAY, 8, requests_per_day=300, seed=3)
    return root


def _stats(path):
    return tfdv.generate_statistics_from_csv(str(path))


def _csv(root, day):
    return next((root / day.isoformat()).glob("*.csv"))


def test_generated_spans_pass_schema_and_drift_checks(schema, market):
    previous = None
    for offset in range(8):
        stats = _stats(_csv(market, DAY + datetime.timedelta(days=offset)))
        problems = data_gate.check_split(stats, schema, "day", "train", previous)
        assert problems == [], [str(p) for p in problems]
        previous = stats


def _rewrite(src, dst, mutate):
    with open(src, encoding="utf-8", newline="") as f:
        rows = list(csv.DictReader(f))
    mutate(rows)
    with open(dst, "w", encoding="utf-8", newline="") as f:
        writer = csv.DictWriter(f, fieldnames=list(rows[0].keys()))
        writer.writeheader()
        writer.writerows(rows)


@pytest.mark.parametrize(
    "mutate, feature, words",
    [
        (lambda rows: [r.update(category="weapons") for r in rows[:50]], "category", "missing from the schema"),
        (lambda rows: [r.update(price="-5.0") for r in rows[:50]], "price", "unexpectedly low"),
        (lambda rows: [r.update(purchased="7") for r in rows[:5]], "purchased", "unexpectedly large"),
        (lambda rows: [r.pop("brand") for r in rows], "brand", "column"),
        (lambda rows: [r.update(coupon="SAVE10") for r in rows], "coupon", "new column"),
        (lambda rows: [r.update(price="abc") for r in rows[:50]], "price", "expected data of type: float"),
        (lambda rows: rows.__setitem__(slice(1, None), []), "(dataset)", "fewer than expected"),
    ],
    ids=["unknown-category", "negative-price", "label-out-of-domain", "missing-column", "extra-column",
         "wrong-type", "too-few-rows"],
)
def test_broken_span_is_rejected_naming_the_feature(schema, market, tmp_path, mutate, feature, words):
    broken = tmp_path / "broken.csv"
    _rewrite(_csv(market, DAY), broken, mutate)
    problems = data_gate.check_split(_stats(broken), schema, "2026-11-01", "train", None)
    mine = [p for p in problems if p.feature == feature]
    assert mine, [str(p) for p in problems]
    assert words in mine[0].anomaly.lower()
    assert "span 2026-11-01" in str(mine[0])


def test_category_mix_jump_trips_the_drift_comparator(schema, market, tmp_path):
    shifted = tmp_path / "shifted.csv"
    # Every other page logged as 'phones': a logging bug, not a season.
    _rewrite(_csv(market, DAY + datetime.timedelta(days=1)), shifted,
             lambda rows: [r.update(category="phones") for i, r in enumerate(rows) if i % 2 == 0])
    previous = _stats(_csv(market, DAY))
    problems = data_gate.check_split(_stats(shifted), schema, "d", "train", previous)
    assert any(p.feature == "category" and "linfty distance" in p.anomaly.lower() for p in problems), [str(p) for p in problems]


def test_an_empty_span_is_rejected(schema, tmp_path):
    empty = tmp_path / "empty.csv"
    empty.write_text("request_id,event_time,user_id,query,product_id,title,brand,category,price,position,"
                     "clicked,purchased\n", encoding="utf-8")
    problems = data_gate.check_split(_stats(empty), schema, "2026-11-01", "train", None)
    assert [str(p) for p in problems] == [
        "span 2026-11-01, split train, feature '(dataset)': no examples: the span (or this split of it) is empty"]


@pytest.mark.parametrize("poison", [lambda r: str(1 - int(r["purchased"])), lambda r: "0"], ids=["flipped", "zeroed"])
def test_poisoned_labels_trip_the_label_drift_comparator(schema, market, tmp_path, poison):
    """Every `purchased` flipped (or wiped) in an otherwise valid span: the label's rate jumps."""
    poisoned = tmp_path / "poisoned.csv"
    _rewrite(_csv(market, DAY + datetime.timedelta(days=1)), poisoned,
             lambda rows: [r.update(purchased=poison(r)) for r in rows])
    previous = _stats(_csv(market, DAY))
    problems = data_gate.check_split(_stats(poisoned), schema, "2026-11-02", "train", previous)
    assert [p.feature for p in problems] == ["purchased"], [str(p) for p in problems]
    assert "jensen-shannon divergence" in problems[0].anomaly.lower()
