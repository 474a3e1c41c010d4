"""`freshrank demo`: the whole loop on embedded defaults, with the served model shaping the logs.

Day 1 has no model yet: the shop's legacy ranking orders the searches, the day lands as a span
and the pipeline trains, blesses and pushes the first version. Then a `freshrank-model-server`
starts on the serving directory, and every later day's searches are ranked through it over
gRPC; the simulated shoppers click and buy from the page as shown (position bias included), so
the model in service shapes the next span it is trained on. Each day lands as a span
(`_SUCCESS` last), the pipeline runs, and the demo waits for the server to report the pushed
version AVAILABLE: the minutes from landing to that moment are the loop's freshness.

`interval="hour"` runs the same loop an hour at a time: the first span (hour 11 of the first day)
carries the shop's history (that morning's searches, legacy-ranked), then each hour's searches (the day's traffic of `requests_per_day`
searches, split by `event_time`, so the market's daily curve sets each hour's volume) are ranked
by the served model and land as `DATA/YYYY-MM-DD/HH/`; each line prints the freshness in
seconds, from the hour's `_SUCCESS` landing to its version AVAILABLE on the model server.
"""
from __future__ import annotations

import dataclasses
import datetime
import json
import os
import time
from collections.abc import Callable

from freshrank.counterfactual import Comparison, compare
from freshrank.market import Market, Search, write_span
from freshrank.market.spans import format_row, hour_dir, write_folder_fields
from freshrank.served_model import ModelServerProcess
from tfx_pipeline.config import DEFAULT_MODEL_NAME
from tfx_pipeline.home import Home

DEMO_START = datetime.date(2026, 11, 1)
# Sized so 5 days fit in 10 minutes on 2 cores: each pipeline run is ~1.2 min of fixed TFX/Beam
# work plus training. The 5-span window keeps the history in every model's training data (with a
# 3-span window the last models lost it and fell from ~31% to ~26% of the gap).
DEMO_REQUESTS_PER_DAY = 400
DEMO_WINDOW = 5
DEMO_EPOCHS = 2
DAYS_LOG = "demo_days.jsonl"
# Day 1 stands for the history a shop adopting freshrank already has: that many legacy-ranked
# searches in one span, so the first model learns from enough purchases to beat the legacy ranking
# (docs/ranking-quality.md measures the trade); later days have `requests_per_day`.
DEMO_HISTORY_SEARCHES = 2000
# Hourly: the history lands as this hour of the first day, the served hours follow it (the lunch peak).
DEMO_FIRST_HOUR = 11
# Hourly: a day's searches, of which each hour gets its share of the daily curve (~150-300 at midday).
DEMO_HOURLY_REQUESTS_PER_DAY = 4800


@dataclasses.dataclass
class DayTraffic:
    """One day's searches as the shoppers saw them, and what they did."""

    rows: list[dict]
    searches: int
    ranked_by: int | None  # served version that ranked the day; None: the legacy ranking
    purchases: int
    legacy_purchases: int  # the same searches under the legacy ranking (the market is deterministic)
    # Exact expected purchases of the day's pages as shown, next to legacy and the best order.
    comparison: Comparison

    @property
    def purchases_per_100(self) -> float:
        return 100.0 * self.purchases / max(self.searches, 1)

    @property
    def legacy_per_100(self) -> float:
        return 100.0 * self.legacy_purchases / max(self.searches, 1)


def serve_day(market: Market, day: datetime.date, requests: int, server: ModelServerProcess | None,
              workers: int = 4, send_user: bool = False, hours: range | None = None) -> DayTraffic:
    """Ranks the day's searches (through the server when it serves a version) and lets shoppers respond.

    `send_user`: the served model takes who is searching (trained with user features). `hours`: only
    the day's searches in those hours (UTC, by `event_time`) of the `requests` the day has.
    """
    searches = market.searches(day, requests)
    if hours is not None:
        searches = [s for s in searches if int(s.event_time[11:13]) in hours]
    legacy = [market.default_ranking(s) for s in searches]
    ranked_by = None
    if server is not None and server.available_versions():
        results = server.rank_many([(s.query, s.candidates, *([s.user_id] if send_user else []))
                                    for s in searches], workers=workers)
        rankings = [ids for ids, _ in results]
        versions = {version for _, version in results}
        ranked_by = max(versions)
    else:
        rankings = legacy
    rows = [row for search, ranking in zip(searches, rankings, strict=True)
            for row in market.respond(search, ranking)]
    return DayTraffic(rows=rows, searches=len(searches), ranked_by=ranked_by,
                      purchases=sum(r["purchased"] for r in rows),
                      legacy_purchases=_legacy_purchases(market, searches, legacy),
                      comparison=compare(market, searches, rankings))


def _legacy_purchases(market: Market, searches: list[Search], legacy: list[list[str]]) -> int:
    """Purchases the same searches bring under the legacy ranking: the counterfactual baseline.

    Outcomes are a deterministic function of (seed, day, request, page order), so this is the
    exact number the shop would have seen without the model, not an estimate.
    """
    return sum(r["purchased"] for search, order in zip(searches, legacy, strict=True)
               for r in market.respond(search, order))


def land_span(data_root: str, day: datetime.date, rows: list[dict], hour: int | None = None) -> float:
    """Writes the span (CSV, then `_SUCCESS`) and returns the landing time (time.time()).

    `hour`: the hourly span `DATA/YYYY-MM-DD/HH/`.
    """
    if hour is None:
        write_span(data_root, day, rows)
    else:
        write_folder_fields(hour_dir(data_root, day, hour), (format_row(r) for r in rows))
    return time.time()


def run_demo(home: str, days: int, requests_per_day: int, seed: int, say: Callable[[str], None],
             window: int = DEMO_WINDOW, epochs: int = DEMO_EPOCHS, drift: str = "mild",
             progress: Callable[[str], None] = lambda line: None,
             history_searches: int = DEMO_HISTORY_SEARCHES, interval: str = "day") -> list[dict]:
    """Runs the loop for `days` spans (days, or hours with `interval="hour"`); returns one record per
    span (also in HOME/demo_days.jsonl).

    `say` gets the table (header and one line per span); `progress` gets what happens between
    lines, since an update takes minutes.
    """
    from tfx_pipeline.config import PipelineConfig
    from tfx_pipeline.local_runner import run_once
    from trainer.config import TrainConfig

    data = os.path.join(home, "data")
    if os.path.isdir(data) and os.listdir(data):
        raise FileExistsError(f"{home} already holds a demo ({len(os.listdir(data))} spans); "
                              "use a new --home or delete it")
    os.makedirs(data, exist_ok=True)
    market = Market(seed=seed, market_start=DEMO_START, drift=drift)
    # The first model (from scratch) takes `epochs`; updates are the product's default update.
    train = TrainConfig(epochs=epochs)
    log_path = os.path.join(home, DAYS_LOG)
    serving_dir = Home(home).serving_dir(DEFAULT_MODEL_NAME)
    hourly = interval == "hour"
    unit = "hour" if hourly else "day"
    history = (f"the morning's legacy-ranked searches (hours 0-{DEMO_FIRST_HOUR})" if hourly
               else f"{history_searches} legacy-ranked searches")
    say(f"demo: {days} {unit}s of a {drift}ly drifting shop; {unit} 1: {history} (the shop's history), then "
        f"{'each hour' if hourly else 'each day'}'s share of {requests_per_day} searches/day ranked by the "
        f"served model; window {window}, home {home}")
    say(header(interval))
    records: list[dict] = []
    server: ModelServerProcess | None = None
    try:
        for offset in range(days):
            span, hour = _demo_span(offset, hourly)
            day = span.date
            served = server is not None and bool(server.available_versions())
            searches = requests_per_day if offset or hourly else history_searches
            # Hourly: hour 1 is the morning so far (the history), then one hour at a time.
            hours = (range(hour, hour + 1) if offset else range(0, hour + 1)) if hourly else None
            share = "" if not hours else (f"hour {hours.start} of " if len(hours) == 1
                                          else f"hours {hours.start}-{hours.stop - 1} of ")
            progress(f"{span}: {share}{searches} searches{'/day' if hours else ''} ranked by "
                     f"{'the served model over gRPC' if served else 'the legacy ranking (no model served yet)'}")
            traffic = serve_day(market, day, searches, server, send_user=train.user_features, hours=hours)
            landed = land_span(data, day, traffic.rows, hour=hour)
            progress(f"{span}: span landed ({len(traffic.rows)} impressions, {traffic.purchases} purchases); "
                     "validating, training, evaluating, pushing")
            run = run_once(PipelineConfig(data_root=data, home=home, span=span, window=window, train=train))
            if server is None:
                # The first span is in: from now on the served model ranks the traffic.
                server = ModelServerProcess(serving_dir, os.path.join(home, "model_server.log"))
                server.start()
            available_at = server.wait_available(run["pushed_version"]) if run["pushed_version"] else None
            serving = server.available_versions()
            record = day_record(run, traffic, landed, available_at, serving[0] if serving else None)
            records.append(record)
            with open(log_path, "a", encoding="utf-8") as f:
                f.write(json.dumps(record, sort_keys=True) + "\n")
            say(format_line(record, interval))
    finally:
        if server is not None:
            server.stop()
    return records


def _demo_span(offset: int, hourly: bool):
    """The demo's `offset`-th span and its hour (None for a day)."""
    from tfx_pipeline.spans import Span

    if not hourly:
        return Span.of_day(DEMO_START + datetime.timedelta(days=offset)), None
    span = Span.of_hour(datetime.datetime.combine(DEMO_START, datetime.time(DEMO_FIRST_HOUR))).shifted(offset)
    return span, span.start.hour


def day_record(run: dict, traffic: DayTraffic, landed: float, available_at: float | None,
               serving_now: int | None) -> dict:
    """The demo's per-day facts: the pipeline's run record plus what the served model did that day."""
    metrics = run.get("metrics") or {}
    return {
        "span": run["span"],
        "status": run["status"],
        "train_examples": run["train_examples"],
        "warm_started_from": run["warm_started_from"],
        "auc": metrics.get("auc"),
        "ndcg@10": metrics.get("ndcg@10"),
        "baseline_auc": metrics.get("baseline_auc"),
        "blessed": run["blessed"],
        "pushed_version": run["pushed_version"],
        "ranked_by": traffic.ranked_by,
        "serving_now": serving_now,
        "searches": traffic.searches,
        "purchases_per_100": round(traffic.purchases_per_100, 2),
        "legacy_purchases_per_100": round(traffic.legacy_per_100, 2),
        "expected": traffic.comparison.to_json() if traffic.ranked_by else None,
        "run_minutes": round(run["total_seconds"] / 60.0, 2),
        "minutes_to_available": round((available_at - landed) / 60.0, 2) if available_at else None,
        "seconds_to_available": round(available_at - landed, 1) if available_at else None,
    }


# "exp/100": expected purchases per 100 searches of the day's pages as the model ordered them,
# "legacy" and "best" the same pages in the legacy and the best possible order, "gap" the share of
# legacy's gap to the best the model captured, "CI" the 95% interval of model - legacy. AUC and
# NDCG@10 are the Evaluator's, on pages the serving model ordered ("logged").
_COLUMNS = (("span", 10), ("train ex", 8), ("warm from", 10), ("logAUC", 6), ("logNDCG", 7), ("blessed", 7),
            ("ranked by", 10), ("serving", 10), ("exp/100", 7), ("legacy", 6), ("best", 5), ("gap", 5),
            ("CI(model-legacy)", 16), ("min", 5))


# Hourly lines end with the freshness in seconds (landing to AVAILABLE), not minutes.
_HOURLY_COLUMNS = (("span", 13), *_COLUMNS[1:-1], ("fresh s", 7))


def _columns(interval: str) -> tuple:
    return _HOURLY_COLUMNS if interval == "hour" else _COLUMNS


def header(interval: str = "day") -> str:
    return " ".join(f"{name:>{width}}" for name, width in _columns(interval))


def format_line(r: dict, interval: str = "day") -> str:
    e = r.get("expected") or {}
    ci = e.get("diff_ci")
    values = (r["span"], r["train_examples"], _short(r["warm_started_from"]), _num(r["auc"], 3),
              _num(r["ndcg@10"], 3), "yes" if r["blessed"] else "no",
              _short(r["ranked_by"]) if r["ranked_by"] else "legacy", _short(r["serving_now"]),
              _num(e.get("model_per_100"), 1), _num(e.get("legacy_per_100"), 1), _num(e.get("oracle_per_100"), 1),
              f"{100 * e['gap_share']:.0f}%" if e else "-",
              f"[{ci[0]:+.2f},{ci[1]:+.2f}]" if ci else "-",
              _num(r.get("seconds_to_available"), 0) if interval == "hour" else _num(r["minutes_to_available"], 1))
    return " ".join(f"{str(v):>{w}}" for v, (_, w) in zip(values, _columns(interval), strict=True))


def _short(version) -> str:
    return "-" if version is None else str(version)


def _num(value, digits: int) -> str:
    return "-" if value is None else f"{value:.{digits}f}"
