"""Writing one day's impressions as a span folder, atomically.

Downstream jobs pick up a span as soon as ``_SUCCESS`` appears, so the CSV
must be complete before that: we write a hidden temp file, fsync, rename it to
``part-00000.csv`` and only then create the marker.  A folder without
``_SUCCESS`` is an aborted write and may be replaced freely.
"""

from __future__ import annotations

import csv
import datetime
import os
import pathlib
from collections.abc import Iterable, Sequence

SPAN_COLUMNS: tuple[str, ...] = (
    "request_id", "event_time", "user_id", "query", "product_id", "title", "brand", "category",
    "price", "position", "clicked", "purchased",
)
SUCCESS_MARKER = "_SUCCESS"
PART_NAME = "part-00000.csv"


def span_dir(out: str | os.PathLike, day: datetime.date) -> pathlib.Path:
    """Folder of the span for ``day`` under ``out``."""
    return pathlib.Path(out) / day.isoformat()


def hour_dir(out: str | os.PathLike, day: datetime.date, hour: int) -> pathlib.Path:
    """Folder of the hourly span ``day`` ``hour``:00-59 UTC under ``out`` (``OUT/YYYY-MM-DD/HH``)."""
    return pathlib.Path(out) / day.isoformat() / f"{hour:02d}"


def split_by_hour(rows: Iterable[Sequence]) -> dict[int, list[Sequence]]:
    """Field lists grouped by the hour of their ``event_time`` (``YYYY-MM-DDTHH:MM:SSZ``), all 24 hours
    present (an hour with no search is an empty list), rows in their original order."""
    hours: dict[int, list[Sequence]] = {h: [] for h in range(24)}
    for row in rows:
        hours[int(str(row[1])[11:13])].append(row)
    return hours


def write_hour_fields(out: str | os.PathLike, day: datetime.date, hour: int, rows: Iterable[Sequence],
                      overwrite: bool = False) -> pathlib.Path:
    """Write pre-formatted field lists as the hourly span ``OUT/YYYY-MM-DD/HH/`` (same atomic protocol)."""
    return write_folder_fields(hour_dir(out, day, hour), rows, overwrite=overwrite)


def is_complete(out: str | os.PathLike, day: datetime.date) -> bool:
    """True when the span for ``day`` has its ``_SUCCESS`` marker."""
    return (span_dir(out, day) / SUCCESS_MARKER).exists()


def check_day(day: object, name: str = "day") -> datetime.date:
    """Accept a ``datetime.date`` (a ``datetime`` is truncated to its date), reject anything else."""
    if isinstance(day, datetime.datetime):
        return day.date()
    if not isinstance(day, datetime.date):
        raise TypeError(f"{name} must be a datetime.date, got {type(day).__name__}: {day!r}")
    return day


def format_row(row: dict) -> list:
    """A row dict as the CSV field list (price with exactly 2 decimals, flags as 0/1 ints)."""
    try:
        price = float(row["price"])
        return [
            str(row["request_id"]), str(row["event_time"]), str(row["user_id"]), str(row["query"]),
            str(row["product_id"]), str(row["title"]), str(row["brand"]), str(row["category"]),
            f"{price:.2f}", int(row["position"]), int(row["clicked"]), int(row["purchased"]),
        ]
    except KeyError as e:
        raise ValueError(f"row is missing column {e.args[0]!r}; rows need keys {SPAN_COLUMNS}") from None


def write_span(out: str | os.PathLike, day: datetime.date, rows: Iterable[dict],
               overwrite: bool = False) -> pathlib.Path:
    """Write rows (dicts keyed by SPAN_COLUMNS) as the complete span for ``day``; returns its folder.

    Raises FileExistsError if a complete span already exists and ``overwrite`` is False.
    """
    day = check_day(day)
    prefix = day.isoformat() + "T"

    def fields() -> Iterable[list]:
        for row in rows:
            f = format_row(row)
            if not f[1].startswith(prefix):
                raise ValueError(f"row event_time {f[1]!r} is not on span day {day.isoformat()}")
            yield f

    return write_span_fields(out, day, fields(), overwrite=overwrite)


def check_writable(out: str | os.PathLike, day: datetime.date, overwrite: bool) -> pathlib.Path:
    """Fail early if the span exists and may not be replaced; returns the span folder."""
    folder = span_dir(out, day)
    if not overwrite and (folder / SUCCESS_MARKER).exists():
        raise FileExistsError(
            f"span {folder} is already complete ({SUCCESS_MARKER} exists); pass overwrite=True to replace it")
    return folder


def write_span_fields(out: str | os.PathLike, day: datetime.date, rows: Iterable[Sequence],
                      overwrite: bool = False) -> pathlib.Path:
    """Write pre-formatted field lists (in SPAN_COLUMNS order) as the span for ``day``."""
    return write_folder_fields(check_writable(out, day, overwrite), rows, overwrite=True)


def write_folder_fields(folder: pathlib.Path, rows: Iterable[Sequence], overwrite: bool = False) -> pathlib.Path:
    """Write field lists as the span in ``folder``: CSV via a temp file and rename, ``_SUCCESS`` last."""
    if not overwrite and (folder / SUCCESS_MARKER).exists():
        raise FileExistsError(
            f"span {folder} is already complete ({SUCCESS_MARKER} exists); pass overwrite=True to replace it")
    folder.mkdir(parents=True, exist_ok=True)
    marker = folder / SUCCESS_MARKER
    # Un-complete the span first, so a crash below never leaves a marker over stale data.
    if marker.exists():
        marker.unlink()
    for old in folder.glob("*.csv"):
        old.unlink()
    tmp = folder / f".{PART_NAME}.tmp"
    try:
        with open(tmp, "w", encoding="utf-8", newline="") as f:
            w = csv.writer(f, quoting=csv.QUOTE_MINIMAL, lineterminator="\n")
            w.writerow(SPAN_COLUMNS)
            w.writerows(rows)
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, folder / PART_NAME)
    except BaseException:
        tmp.unlink(missing_ok=True)
        raise
    with open(marker, "w", encoding="utf-8"):
        pass
    return folder
