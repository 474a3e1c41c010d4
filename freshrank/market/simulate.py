"""Batch generation of consecutive daily spans with the shop's legacy ranking.

This is what ``freshrank simulate`` runs to create training/evaluation logs.
It uses ``Market.simulate_day_fields`` (vectorized, identical outcomes to
``searches`` + ``default_ranking`` + ``respond``) so a 20k-request day takes
one to two seconds on one core.
"""

from __future__ import annotations

import datetime
import os
import pathlib
from collections.abc import Callable

from .drift import get_profile
from .market import Market, positive_int
from .spans import (
    SUCCESS_MARKER,
    check_day,
    check_writable,
    hour_dir,
    split_by_hour,
    write_hour_fields,
    write_span_fields,
)


def simulate(out: str | os.PathLike, start: datetime.date, days: int, requests_per_day: int = 1000,
             seed: int = 0, drift: str = "mild", market_start: datetime.date | None = None,
             progress: Callable[[datetime.date, int], None] | None = None,
             overwrite: bool = False, interval: str = "day") -> list[pathlib.Path]:
    """Write ``days`` complete spans from ``start`` using the legacy ranking; returns the span folders.

    ``market_start`` (default: ``start``) anchors the drift replay: spans for
    the same (seed, drift, market_start) and day are byte-identical however
    they were split across calls. ``progress(day, rows_written)`` is called
    after each span is complete. Raises FileExistsError before writing anything
    if any target span is already complete and ``overwrite`` is False.

    ``interval="hour"``: each day's traffic (the same rows, the same bytes per row) is written as 24
    hourly spans ``OUT/YYYY-MM-DD/HH/``, split by ``event_time``, so the market's daily curve (its
    lunch and evening peaks) shows as busier and quieter hours; an hour with no search still lands,
    with a header only. Returns the hour folders.
    """
    start = check_day(start, "start")
    days = positive_int(days, "days")
    requests_per_day = positive_int(requests_per_day, "requests_per_day")
    get_profile(drift)
    market_start = start if market_start is None else check_day(market_start, "market_start")
    if market_start > start:
        raise ValueError(f"start {start} is before market_start {market_start}")
    if interval not in ("day", "hour"):
        raise ValueError(f"interval must be 'day' or 'hour', got {interval!r}")
    targets = [start + datetime.timedelta(days=i) for i in range(days)]
    for day in targets:
        if interval == "hour":
            for hour in range(24):
                if not overwrite and (hour_dir(out, day, hour) / SUCCESS_MARKER).exists():
                    raise FileExistsError(f"span {hour_dir(out, day, hour)} is already complete ({SUCCESS_MARKER} "
                                          f"exists); pass overwrite=True to replace it")
        else:
            check_writable(out, day, overwrite)
    market = Market(seed=seed, market_start=market_start, drift=drift)
    written = []
    for day in targets:
        rows = market.simulate_day_fields(day, requests_per_day)
        if interval == "hour":
            for hour, hour_rows in split_by_hour(rows).items():
                written.append(write_hour_fields(out, day, hour, hour_rows, overwrite=overwrite))
        else:
            written.append(write_span_fields(out, day, rows, overwrite=overwrite))
        if progress is not None:
            progress(day, len(rows))
    return written

