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
from .spans import check_day, check_writable, write_span_fields


def simulate(out: str | os.PathLike, start: datetime.date, days: int, requests_per_day: int = 1000,
             seed: int = 0, drift: str = "mild", market_start: datetime.date | None = None,
             progress: Callable[[datetime.date, int], None] | None = None,
             overwrite: bool = False) -> list[pathlib.Path]:
    """Write ``days`` complete spans from ``start`` using the legacy ranking; returns the span folders.

    ``market_start`` (default: ``start``) anchors the drift replay: spans for
    the same (seed, drift, market_start) and day are byte-identical however
    they were split across calls. ``progress(day, rows_written)`` is called
    after each span is complete. Raises FileExistsError before writing anything
    if any target span is already complete and ``overwrite`` is False.
    """
    start = check_day(start, "start")
    days = positive_int(days, "days")
    requests_per_day = positive_int(requests_per_day, "requests_per_day")
    get_profile(drift)
    market_start = start if market_start is None else check_day(market_start, "market_start")
    if market_start > start:
        raise ValueError(f"start {start} is before market_start {market_start}")
    targets = [start + datetime.timedelta(days=i) for i in range(days)]
    for day in targets:
        check_writable(out, day, overwrite)
    market = Market(seed=seed, market_start=market_start, drift=drift)
    written = []
    for day in targets:
        rows = market.simulate_day_fields(day, requests_per_day)
        written.append(write_span_fields(out, day, rows, overwrite=overwrite))
        if progress is not None:
            progress(day, len(rows))
    return written
