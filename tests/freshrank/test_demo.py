"""The demo loop's pieces on a tiny market: rank through a real model server, respond, land the span."""
from __future__ import annotations

import csv
import datetime
import os

import pytest

from freshrank.demo import format_line, header, land_span, serve_day
from freshrank.market import Market
from freshrank.served_model import ModelServerProcess, ServerFailed

pytestmark = pytest.mark.e2e
DAY = datetime.date(2026, 11, 1)
VERSION = 7


def _price_ranker(export_dir: str) -> None:
    """A SavedModel with the ranker's serving signature whose score grows with price only,
    so the order the server must produce is known: most expensive first."""
    import tensorflow as tf

    class PriceRanker(tf.Module):
        @tf.function(input_signature=[tf.TensorSpec([None], tf.string, name=n)
                                      for n in ("query", "title", "brand", "category", "product_id")]
                     + [tf.TensorSpec([None], tf.float32, name="price")])
        def serve(self, query, title, brand, category, product_id, price):
            return {"score": tf.sigmoid(0.001 * price)}

    module = PriceRanker()
    tf.saved_model.save(module, export_dir, signatures={"serving_default": module.serve})


@pytest.fixture(scope="module")
def server(tmp_path_factory):
    root = tmp_path_factory.mktemp("demo")
    base = root / "serving" / "ranker"
    _price_ranker(str(base / str(VERSION)))
    with ModelServerProcess(str(base), str(root / "server.log")) as process:
        process.wait_available(VERSION, timeout_s=180)
        yield process


@pytest.fixture(scope="module")
def market():
    return Market(seed=5, market_start=DAY, n_products=400, n_users=60)


def test_served_day_shows_shoppers_the_servers_order(server, market, tmp_path):
    assert server.available_versions() == [VERSION]
    traffic = serve_day(market, DAY, 12, server)
    assert traffic.ranked_by == VERSION and traffic.searches == 12
    pages: dict[str, list[dict]] = {}
    for row in traffic.rows:
        pages.setdefault(row["request_id"], []).append(row)
    assert len(pages) == 12
    for rows in pages.values():
        shown = sorted(rows, key=lambda r: r["position"])
        prices = [r["price"] for r in shown]
        assert prices == sorted(prices, reverse=True), "the page must be in the served model's order"
    # What shoppers did is the market's own response to that page, and it is logged as such.
    search = market.searches(DAY, 12)[0]
    page = sorted(pages[search.request_id], key=lambda r: r["position"])
    assert market.respond(search, [r["product_id"] for r in page]) == page
    assert traffic.purchases == sum(r["purchased"] for r in traffic.rows)
    # The day's exact counterfactual: the served order against legacy and the best order.
    exact = market.expected_outcomes(market.searches(DAY, 12),
                                     [[r["product_id"] for r in sorted(p, key=lambda r: r["position"])]
                                      for p in pages.values()])
    assert traffic.comparison.model_per_100 == pytest.approx(exact.per_100())
    assert traffic.comparison.legacy_per_100 <= traffic.comparison.oracle_per_100

    landed = land_span(str(tmp_path / "data"), DAY, traffic.rows)
    folder = tmp_path / "data" / DAY.isoformat()
    assert (folder / "_SUCCESS").exists() and landed > 0
    with open(folder / "part-00000.csv", encoding="utf-8") as f:
        written = list(csv.DictReader(f))
    assert len(written) == len(traffic.rows) == 12 * market.page_size
    assert written[0]["request_id"] == traffic.rows[0]["request_id"]


def test_without_a_served_version_the_legacy_ranking_orders_the_day(market):
    traffic = serve_day(market, DAY, 6, None)
    assert traffic.ranked_by is None
    assert traffic.purchases == traffic.legacy_purchases
    first = market.searches(DAY, 6)[0]
    shown = [r["product_id"] for r in traffic.rows[: market.page_size]]
    assert shown == market.default_ranking(first)


def test_a_version_that_never_arrives_is_a_clear_error(server):
    with pytest.raises(ServerFailed, match="version 99 of ranker was not AVAILABLE"):
        server.wait_available(99, timeout_s=1)


def test_the_server_is_stopped_on_exit(tmp_path):
    base = tmp_path / "serving"
    with ModelServerProcess(str(base), str(tmp_path / "server.log")) as process:
        pid = process.pid
        assert process.available_versions() == []
    with pytest.raises(ProcessLookupError):
        os.kill(pid, 0)


def test_day_line_has_every_column():
    record = {"span": "2026-11-02", "train_examples": 5820, "warm_started_from": 17, "auc": 0.61,
              "ndcg@10": 0.57, "blessed": False, "ranked_by": 17, "serving_now": 17,
              "purchases_per_100": 22.2, "legacy_purchases_per_100": 27.0, "minutes_to_available": None,
              "expected": {"model_per_100": 29.04, "legacy_per_100": 26.0, "oracle_per_100": 38.0,
                           "gap_share": 0.253, "diff_ci": [1.5, 4.25]}}
    line = format_line(record)
    assert len(line.split()) == len(header().split()) - 3  # "train ex", "warm from", "ranked by": two words
    assert line.split()[:6] == ["2026-11-02", "5820", "17", "0.610", "0.570", "no"]
    assert line.split()[8:] == ["29.0", "26.0", "38.0", "25%", "[+1.50,+4.25]", "-"]


def test_an_hour_is_its_share_of_the_days_searches_and_lands_as_an_hourly_span(market, tmp_path):
    day_searches = market.searches(DAY, 240)
    in_noon = [s for s in day_searches if s.event_time[11:13] == "12"]
    traffic = serve_day(market, DAY, 240, None, hours=range(12, 13))
    assert traffic.searches == len(in_noon) > 0
    assert {r["request_id"] for r in traffic.rows} == {s.request_id for s in in_noon}
    assert all(r["event_time"].startswith("2026-11-01T12:") for r in traffic.rows)
    landed = land_span(str(tmp_path / "data"), DAY, traffic.rows, hour=12)
    folder = tmp_path / "data" / "2026-11-01" / "12"
    assert (folder / "_SUCCESS").exists() and os.path.getmtime(folder / "_SUCCESS") <= landed
    with open(folder / "part-00000.csv", encoding="utf-8") as f:
        assert len(list(csv.DictReader(f))) == len(traffic.rows)


def test_hour_line_ends_with_the_seconds_from_landing_to_available():
    record = {"span": "2026-11-01T13", "train_examples": 1520, "warm_started_from": 17, "auc": 0.61,
              "ndcg@10": 0.57, "blessed": True, "ranked_by": 17, "serving_now": 18,
              "minutes_to_available": 0.69, "seconds_to_available": 41.4, "expected": None}
    assert header("hour").split()[-2:] == ["fresh", "s"] and header().split()[-1] == "min"
    line = format_line(record, "hour")
    assert line.split()[0] == "2026-11-01T13" and line.split()[-1] == "41"
    assert format_line(record).split()[-1] == "0.7"  # a daily line keeps minutes
