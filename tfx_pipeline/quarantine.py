"""Row-level CSV gate: malformed rows are quarantined with file and line, never silently dropped.

CsvExampleGen reads a span line by line (Beam's ReadFromText) and parses each line as CSV, so one
row with bad quoting, the wrong number of fields or invalid UTF-8 either fails the whole ingest or
turns into garbage. This module checks every physical line of a span's CSV files the same way
before ExampleGen runs:

- every bad line is written to `<home>/quarantine/<span>/bad_rows.jsonl` (source file, line
  number, reason, and the raw bytes in base64 so nothing is lost);
- if the share of bad lines is above the configured limit (default 0.1 %) the span is rejected as
  data (exit 3), naming span, file, line and the fix;
- otherwise the good lines are written as a cleaned copy of the span under
  `<home>/quarantine/cleaned/<YYYY-MM-DD>/`, and ExampleGen reads that copy instead of the landing
  folder. Same folder name, so ExampleGen resolves the same span number.

It reads through `tf.io.gfile`, so landing folders on gs:// work too.
"""
from __future__ import annotations

import base64
import csv
import dataclasses
import json
import os

import tensorflow as tf

DEFAULT_MAX_BAD_ROW_SHARE = 0.001
BAD_ROWS_FILE = "bad_rows.jsonl"
CLEANED_DIR = "cleaned"
# How many bad rows a rejection message lists; the quarantine file holds all of them.
SHOWN_ROWS = 10


@dataclasses.dataclass(frozen=True)
class BadRow:
    file: str
    line: int  # 1-based, as an editor shows it
    reason: str
    raw: bytes

    def describe(self, span: str) -> str:
        return f"span {span}, file {self.file} line {self.line}: {self.reason}"


@dataclasses.dataclass
class SpanCheck:
    span: str
    folder: str
    files: list[str]
    good_rows: int
    bad_rows: list[BadRow]
    # file name -> its good lines (header first), kept only while building a cleaned copy
    good_lines: dict[str, list[bytes]] = dataclasses.field(default_factory=dict, repr=False)

    @property
    def total_rows(self) -> int:
        return self.good_rows + len(self.bad_rows)

    @property
    def bad_share(self) -> float:
        return len(self.bad_rows) / self.total_rows if self.total_rows else 0.0


def check_line(raw: bytes, expected_fields: int) -> str | None:
    """Why one physical CSV line is unreadable for ExampleGen, or None when it is fine."""
    try:
        text = raw.decode("utf-8")
    except UnicodeDecodeError as error:
        return f"invalid UTF-8 at byte {error.start}"
    text = text.rstrip("\r\n")
    if not text.strip():
        return "empty line"
    try:
        fields = next(csv.reader([text], strict=True))
    except csv.Error as error:
        return f"bad quoting ({error}); a field may not span lines or hold a stray quote"
    if len(fields) != expected_fields:
        return f"wrong field count: {len(fields)} fields, the header has {expected_fields}"
    return None


def scan_span(folder: str, span: str, pattern: str = "*.csv") -> SpanCheck:
    """Checks every line of every CSV file in a span folder (the header counts as no row)."""
    files = sorted(tf.io.gfile.glob(os.path.join(folder, pattern)))
    check = SpanCheck(span=span, folder=folder, files=[os.path.basename(f) for f in files],
                      good_rows=0, bad_rows=[])
    for path in files:
        name = os.path.basename(path)
        with tf.io.gfile.GFile(path, "rb") as handle:
            lines = handle.read().splitlines(keepends=True)
        if not lines:
            continue
        header = lines[0]
        header_fields = _header_fields(header)
        if header_fields is None:
            # Without a header no line of this file can be read: every line is quarantined.
            check.bad_rows += [BadRow(name, i + 1, "the file's header line is unreadable (bad UTF-8 or quoting)",
                                      raw) for i, raw in enumerate(lines)]
            continue
        good = [header]
        for number, raw in enumerate(lines[1:], start=2):
            reason = check_line(raw, header_fields)
            if reason is None:
                good.append(raw if raw.endswith(b"\n") else raw + b"\n")
                check.good_rows += 1
            else:
                check.bad_rows.append(BadRow(name, number, reason, raw))
        check.good_lines[name] = good
    return check


def _header_fields(header: bytes) -> int | None:
    try:
        return len(next(csv.reader([header.decode("utf-8").rstrip("\r\n")], strict=True)))
    except (UnicodeDecodeError, csv.Error, StopIteration):
        return None


def write_bad_rows(check: SpanCheck, quarantine_dir: str) -> str:
    """Writes `<quarantine_dir>/bad_rows.jsonl` (one JSON object per bad line); returns its path."""
    tf.io.gfile.makedirs(quarantine_dir)
    path = os.path.join(quarantine_dir, BAD_ROWS_FILE)
    with tf.io.gfile.GFile(path, "w") as handle:
        for row in check.bad_rows:
            handle.write(json.dumps({
                "span": check.span, "file": row.file, "source": os.path.join(check.folder, row.file),
                "line": row.line, "reason": row.reason,
                "text": row.raw.decode("utf-8", errors="backslashreplace").rstrip("\r\n"),
                "raw_base64": base64.b64encode(row.raw).decode("ascii"),
            }, ensure_ascii=False) + "\n")
    return path


def write_cleaned(check: SpanCheck, cleaned_root: str) -> str:
    """Writes the good lines as `<cleaned_root>/<span>/<file>`; returns `cleaned_root` (ExampleGen's base)."""
    folder = os.path.join(cleaned_root, check.span)
    if tf.io.gfile.exists(folder):
        tf.io.gfile.rmtree(folder)
    tf.io.gfile.makedirs(folder)
    for name, lines in check.good_lines.items():
        with tf.io.gfile.GFile(os.path.join(folder, name), "wb") as handle:
            handle.write(b"".join(lines))
    return cleaned_root


def rejection_problems(check: SpanCheck, max_share: float, bad_rows_path: str) -> list[str]:
    """The lines a rejected span's record and the CLI show: the verdict with its fix, then examples."""
    summary = (
        f"span {check.span}: {len(check.bad_rows)} of {check.total_rows} rows ({check.bad_share:.2%}) are "
        f"malformed, more than --max-bad-row-share {max_share:.2%}; all of them are listed in {bad_rows_path}. "
        f"Fix those lines in the landing files under {check.folder} (or re-export the span), or raise "
        f"--max-bad-row-share if they may be dropped, and rerun"
    )
    shown = [row.describe(check.span) for row in check.bad_rows[:SHOWN_ROWS]]
    more = len(check.bad_rows) - len(shown)
    return [summary, *shown, *([f"... and {more} more in {bad_rows_path}"] if more else [])]


class SpanMalformed(RuntimeError):
    """Too many malformed rows: the span is rejected as data (exit 3), before ExampleGen runs."""

    def __init__(self, problems: list[str], quarantine_dir: str):
        self.problems = problems
        self.quarantine_dir = quarantine_dir
        super().__init__("\n  ".join(problems))


def gate_span(data_root: str, span: str, home: str, max_share: float) -> tuple[str, int]:
    """Checks the span's landing folder; returns (ExampleGen's input base, rows quarantined).

    Raises SpanMalformed when the bad share is over `max_share`. With no bad rows ExampleGen reads
    the landing folder itself, so a clean span costs one read and no copy.
    """
    check = scan_span(os.path.join(data_root, span), span)
    quarantine_dir = os.path.join(home, "quarantine", span)
    if tf.io.gfile.exists(quarantine_dir):
        tf.io.gfile.rmtree(quarantine_dir)  # a rerun after a fix must not show stale rows
    if check.total_rows == 0:
        files = ", ".join(check.files) or "no *.csv file"
        raise SpanMalformed([f"span {span}: empty, no data rows in {check.folder} ({files}); land the span's "
                             f"rows (write _SUCCESS last) and rerun"], quarantine_dir)
    if not check.bad_rows:
        return data_root, 0
    path = write_bad_rows(check, quarantine_dir)
    if check.bad_share > max_share:
        raise SpanMalformed(rejection_problems(check, max_share, path), quarantine_dir)
    return write_cleaned(check, os.path.join(home, "quarantine", CLEANED_DIR)), len(check.bad_rows)
