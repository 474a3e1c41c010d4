"""Landing-data layout: one folder per day, complete once `_SUCCESS` exists.

Span numbers are ExampleGen's: days since 1970-01-01 (`{YYYY}-{MM}-{DD}` patterns), so a
span number and a date name the same folder everywhere (ML Metadata, logs, the CLI).
"""
from __future__ import annotations

import datetime
import os
import re

SUCCESS_MARKER = "_SUCCESS"
SPAN_PATTERN = "{YYYY}-{MM}-{DD}/*.csv"
_DATE_DIR = re.compile(r"^\d{4}-\d{2}-\d{2}$")
_EPOCH = datetime.date(1970, 1, 1)


def span_number(day: datetime.date) -> int:
    return (day - _EPOCH).days


def span_date(number: int) -> datetime.date:
    return _EPOCH + datetime.timedelta(days=int(number))


def parse_day(text: str) -> datetime.date:
    try:
        return datetime.date.fromisoformat(text)
    except ValueError:
        raise ValueError(f"{text!r} is not a date in YYYY-MM-DD form") from None


def complete_spans(data_root: str) -> list[datetime.date]:
    """Days whose folder holds `_SUCCESS`, oldest first; half-written folders are invisible."""
    if not os.path.isdir(data_root):
        raise FileNotFoundError(f"data directory {data_root} does not exist")
    days = []
    for name in sorted(os.listdir(data_root)):
        if _DATE_DIR.match(name) and os.path.exists(os.path.join(data_root, name, SUCCESS_MARKER)):
            days.append(parse_day(name))
    return days


def resolve_span(data_root: str, requested: datetime.date | None) -> datetime.date:
    """The span to run: the one asked for (it must be complete) or the newest complete one."""
    spans = complete_spans(data_root)
    if requested is not None:
        folder = os.path.join(data_root, requested.isoformat())
        if requested not in spans:
            why = "has no _SUCCESS marker yet" if os.path.isdir(folder) else "does not exist"
            raise FileNotFoundError(f"span {requested} in {data_root} {why}; land it completely first")
        return requested
    if not spans:
        raise FileNotFoundError(
            f"no complete span in {data_root}: expected folders YYYY-MM-DD/ with *.csv files and a "
            f"{SUCCESS_MARKER} marker (try `freshrank simulate --out {data_root}`)"
        )
    return spans[-1]
