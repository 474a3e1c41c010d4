"""Landing-data layout: one folder per span, complete once `_SUCCESS` exists.

A data directory holds spans of one interval:

    day  (the default)  <data>/<YYYY-MM-DD>/*.csv + _SUCCESS        span = days since 1970-01-01
    hour                <data>/<YYYY-MM-DD>/<HH>/*.csv + _SUCCESS   span = hours since 1970-01-01 UTC

Daily span numbers are ExampleGen's own (`{YYYY}-{MM}-{DD}` patterns), so a span number and a
date name the same folder everywhere (ML Metadata, logs, the CLI). TFX 1.16's ExampleGen has no
hour spec (tfx/components/example_gen/utils.py knows `{SPAN}`, `{VERSION}`, `{YYYY}`, `{MM}`,
`{DD}` only), so an hourly span is handed to ExampleGen as `<ingest>/<span number>/<name>/*.csv`
with the `{SPAN}` spec (tfx_pipeline/hourly_ingest.py): the same span number, the same static
RangeConfig pinning it, the same lineage. A span is written `2026-11-01` (day) or `2026-11-01T13`
(hour) wherever a person reads or types one (the CLI, runs.jsonl, messages).
"""
from __future__ import annotations

import dataclasses
import datetime
import os
import re

SUCCESS_MARKER = "_SUCCESS"
SPAN_PATTERN = "{YYYY}-{MM}-{DD}/*.csv"
# ExampleGen's view of an hourly span: <ingest>/<hours since epoch>/<span text>/*.csv.
HOURLY_INGEST_PATTERN = "{SPAN}/*/*.csv"
DAY, HOUR = "day", "hour"
INTERVALS = (DAY, HOUR)
ADJECTIVE = {DAY: "daily", HOUR: "hourly"}
# Written only in an hourly home: a home without it holds daily spans, as every home did before.
INTERVAL_FILE = "interval"
_DATE_DIR = re.compile(r"^\d{4}-\d{2}-\d{2}$")
_HOUR_DIR = re.compile(r"^\d{2}$")
_HOUR_TEXT = re.compile(r"^(\d{4}-\d{2}-\d{2})T(\d{2})$")
_EPOCH = datetime.date(1970, 1, 1)
_EPOCH_TIME = datetime.datetime(1970, 1, 1)


@dataclasses.dataclass(frozen=True, order=True)
class Span:
    """One span: its number (ExampleGen's `span`) and the interval it counts in.

    `isoformat()` and `str()` give the text form (`2026-11-01`, `2026-11-01T13`), so a daily
    Span prints exactly as the `datetime.date` it replaces.
    """

    number: int
    interval: str = DAY

    def __post_init__(self) -> None:
        if self.interval not in INTERVALS:
            raise ValueError(f"span interval must be one of {', '.join(INTERVALS)}, got {self.interval!r}")

    @classmethod
    def of_day(cls, day: datetime.date) -> Span:
        if isinstance(day, datetime.datetime):
            day = day.date()
        return cls((day - _EPOCH).days, DAY)

    @classmethod
    def of_hour(cls, moment: datetime.datetime) -> Span:
        """The hour holding `moment` (naive = UTC)."""
        if moment.tzinfo is not None:
            moment = moment.astimezone(datetime.timezone.utc).replace(tzinfo=None)
        return cls(int((moment - _EPOCH_TIME).total_seconds() // 3600), HOUR)

    @property
    def start(self) -> datetime.datetime:
        """The span's first instant, UTC (naive)."""
        if self.interval == HOUR:
            return _EPOCH_TIME + datetime.timedelta(hours=self.number)
        return _EPOCH_TIME + datetime.timedelta(days=self.number)

    @property
    def date(self) -> datetime.date:
        return self.start.date()

    def isoformat(self) -> str:
        if self.interval == HOUR:
            return f"{self.date.isoformat()}T{self.start.hour:02d}"
        return self.date.isoformat()

    def __str__(self) -> str:
        return self.isoformat()

    @property
    def relpath(self) -> str:
        """The span's folder under the data directory."""
        if self.interval == HOUR:
            return f"{self.date.isoformat()}/{self.start.hour:02d}"
        return self.date.isoformat()

    def shifted(self, count: int) -> Span:
        """The span `count` intervals later (earlier when negative)."""
        return Span(self.number + count, self.interval)


def as_span(value: Span | datetime.date) -> Span:
    """A Span; a `datetime.date` is the daily span of that day (what every caller used to pass)."""
    if isinstance(value, Span):
        return value
    if isinstance(value, datetime.date):
        return Span.of_day(value)
    raise TypeError(f"a span must be a Span or a datetime.date, got {type(value).__name__}: {value!r}")


def span_number(day: Span | datetime.date) -> int:
    return as_span(day).number


def span_date(number: int) -> datetime.date:
    return _EPOCH + datetime.timedelta(days=int(number))


def parse_day(text: str) -> datetime.date:
    try:
        return datetime.date.fromisoformat(text)
    except ValueError:
        raise ValueError(f"{text!r} is not a date in YYYY-MM-DD form") from None


def parse_span(text: str) -> Span:
    """`2026-11-01` -> that day's span; `2026-11-01T13` -> the hour 13:00-14:00 UTC of that day."""
    text = text.strip()
    hourly = _HOUR_TEXT.match(text)
    try:
        if hourly:
            hour = int(hourly.group(2))
            if hour > 23:
                raise ValueError
            day = datetime.date.fromisoformat(hourly.group(1))
            return Span.of_hour(datetime.datetime.combine(day, datetime.time(hour)))
        if _DATE_DIR.match(text):
            return Span.of_day(datetime.date.fromisoformat(text))
    except ValueError:
        pass
    raise ValueError(f"{text!r} is not a span: want YYYY-MM-DD (a daily span) or YYYY-MM-DDTHH "
                     f"(an hourly span, HH 00-23 UTC)")


class IntervalMismatch(ValueError):
    """A span, a data directory or a home disagree on the interval; the message names both and the fix."""


def detect_interval(data_root: str) -> str | None:
    """The interval the data directory's layout shows: `day`, `hour`, or None when it holds no span yet.

    A date folder with `_SUCCESS` or CSV files in it is a daily span; one with `HH/` folders holds
    hourly spans. Both kinds in one directory is refused: its spans could not be numbered one way.
    """
    if not os.path.isdir(data_root):
        raise FileNotFoundError(f"data directory {data_root} does not exist")
    seen = set()
    for name in sorted(os.listdir(data_root)):
        folder = os.path.join(data_root, name)
        if not _DATE_DIR.match(name) or not os.path.isdir(folder):
            continue
        entries = os.listdir(folder)
        if SUCCESS_MARKER in entries or any(e.endswith(".csv") for e in entries):
            seen.add(DAY)
        if any(_HOUR_DIR.match(e) and os.path.isdir(os.path.join(folder, e)) for e in entries):
            seen.add(HOUR)
    if len(seen) > 1:
        raise IntervalMismatch(
            f"data directory {data_root} mixes daily spans (YYYY-MM-DD/_SUCCESS) and hourly spans "
            f"(YYYY-MM-DD/HH/_SUCCESS); keep one interval per data directory")
    return seen.pop() if seen else None


def data_interval(data_root: str, requested: str | None = None) -> str:
    """The data directory's interval: `requested` (the --interval flag) checked against the layout,
    else the layout's, else `day`."""
    found = detect_interval(data_root)
    if requested is not None and requested not in INTERVALS:
        raise ValueError(f"--interval must be one of {', '.join(INTERVALS)}, got {requested!r}")
    if requested and found and requested != found:
        raise IntervalMismatch(
            f"--interval {requested} but {data_root} holds {ADJECTIVE[found]} spans; drop --interval or pass "
            f"--interval {found}")
    return requested or found or DAY


def complete_spans(data_root: str, interval: str | None = None) -> list[Span]:
    """Spans whose folder holds `_SUCCESS`, oldest first; half-written folders are invisible.

    `interval` None: the one the layout shows (day for an empty directory).
    """
    interval = data_interval(data_root, interval)
    found = []
    for name in sorted(os.listdir(data_root)):
        if not _DATE_DIR.match(name):
            continue
        day = parse_day(name)
        if interval == DAY:
            if os.path.exists(os.path.join(data_root, name, SUCCESS_MARKER)):
                found.append(Span.of_day(day))
            continue
        folder = os.path.join(data_root, name)
        if not os.path.isdir(folder):
            continue
        for hour in sorted(os.listdir(folder)):
            if _HOUR_DIR.match(hour) and int(hour) < 24 and os.path.exists(
                    os.path.join(folder, hour, SUCCESS_MARKER)):
                found.append(Span.of_hour(datetime.datetime.combine(day, datetime.time(int(hour)))))
    return found


def resolve_span(data_root: str, requested: Span | datetime.date | None, interval: str | None = None) -> Span:
    """The span to run: the one asked for (it must be complete) or the newest complete one."""
    if requested is not None:
        requested = as_span(requested)
        if interval and interval != requested.interval:
            raise IntervalMismatch(f"span {requested} is {ADJECTIVE[requested.interval]} but --interval is {interval}; "
                                   f"drop --interval or name a {ADJECTIVE[interval]} span")
        interval = data_interval(data_root, requested.interval)
    spans = complete_spans(data_root, interval)
    if requested is not None:
        folder = os.path.join(data_root, requested.relpath)
        if requested not in spans:
            why = "has no _SUCCESS marker yet" if os.path.isdir(folder) else "does not exist"
            raise FileNotFoundError(f"span {requested} in {data_root} {why}; land it completely first")
        return requested
    if not spans:
        layout = "YYYY-MM-DD/HH/" if interval == HOUR else "YYYY-MM-DD/"
        raise FileNotFoundError(
            f"no complete span in {data_root}: expected folders {layout} with *.csv files and a "
            f"{SUCCESS_MARKER} marker (try `freshrank simulate --out {data_root}`)"
        )
    return spans[-1]


def home_interval(home: str) -> str | None:
    """The interval a home's spans count in: its record, else `day` once it holds any run, else None."""
    record = os.path.join(home, INTERVAL_FILE)
    if os.path.exists(record):
        with open(record, encoding="utf-8") as f:
            return f.read().strip()
    started = any(os.path.exists(os.path.join(home, name)) for name in ("runs.jsonl", "metadata.sqlite", "span_index"))
    return DAY if started else None


def check_home(home: str, span: Span) -> None:
    """Raises IntervalMismatch unless `span` is of the home's interval (a fresh home takes any)."""
    current = home_interval(home)
    if current is not None and current != span.interval:
        raise IntervalMismatch(
            f"home {home} holds {ADJECTIVE[current]} spans but span {span} is {ADJECTIVE[span.interval]}; a home keeps one "
            f"interval (its window, span index and versions count in it): run {ADJECTIVE[span.interval]} spans with "
            f"a fresh --home, or give this home {ADJECTIVE[current]} spans (--span "
            f"{'YYYY-MM-DD' if current == DAY else 'YYYY-MM-DDTHH'})")


def claim_home(home: str, span: Span) -> None:
    """`check_home`, then a fresh home takes the span's interval.

    Only an hourly home writes the record (`HOME/interval`): daily homes stay exactly as they were.
    """
    check_home(home, span)
    if home_interval(home) is None and span.interval == HOUR:
        os.makedirs(home, exist_ok=True)
        tmp = os.path.join(home, INTERVAL_FILE + ".tmp")
        with open(tmp, "w", encoding="utf-8") as f:
            f.write(HOUR + "\n")
        os.replace(tmp, os.path.join(home, INTERVAL_FILE))
