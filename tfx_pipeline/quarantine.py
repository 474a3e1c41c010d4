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
from collections.abc import Iterator

import tensorflow as tf

from tfx_pipeline.home import Home

DEFAULT_MAX_BAD_ROW_SHARE = 0.001
BAD_ROWS_FILE = "bad_rows.jsonl"
CLEANED_DIR = "cleaned"
# How many bad rows a rejection message lists; the quarantine file holds all of them.
SHOWN_ROWS = 10
# Spans are streamed in chunks of this size, and the cleaned copy written this many lines at a time.
READ_CHUNK_BYTES = 8 << 20
WRITE_BATCH_LINES = 10_000


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
    bad_count: int
    # The first SHOWN_ROWS bad rows, for messages; all of them go to the bad-rows file as they are found.
    first_bad: list[BadRow]
    bad_rows_path: str = ""  # "" when no bad row was found or none was asked to be written

    @property
    def total_rows(self) -> int:
        return self.good_rows + self.bad_count

    @property
    def bad_share(self) -> float:
        return self.bad_count / self.total_rows if self.total_rows else 0.0


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


def read_lines(path: str, chunk_bytes: int | None = None) -> Iterator[bytes]:
    """The file's physical lines, ending "\n" as Beam's ReadFromText splits them (the last may lack
    it), read in chunks: a day of logs can be larger than the machine's memory."""
    size = chunk_bytes or READ_CHUNK_BYTES
    with tf.io.gfile.GFile(path, "rb") as handle:
        rest = b""
        while True:
            chunk = handle.read(size)
            if not chunk:
                break
            lines = (rest + chunk).split(b"\n")
            rest = lines.pop()
            for line in lines:
                yield line + b"\n"
        if rest:
            yield rest


def _open_csv(path: str) -> tuple[bytes | None, int | None, Iterator[bytes]]:
    """(header line, its field count or None when unreadable, the lines after it)."""
    lines = read_lines(path)
    header = next(lines, None)
    return header, (None if header is None else _header_fields(header)), lines


def _classified(path: str) -> Iterator[tuple[int, bytes, str | None]]:
    """(1-based line number, raw line, reason or None) for every line after the header; a file whose
    header is unreadable has every line, header included, marked bad."""
    header, header_fields, lines = _open_csv(path)
    if header is None:
        return
    if header_fields is None:
        reason = "the file's header line is unreadable (bad UTF-8 or quoting)"
        yield 1, header, reason
        for number, raw in enumerate(lines, start=2):
            yield number, raw, reason
        return
    for number, raw in enumerate(lines, start=2):
        yield number, raw, check_line(raw, header_fields)


def _span_files(folder: str, pattern: str) -> list[str]:
    return sorted(tf.io.gfile.glob(os.path.join(folder, pattern)))


def scan_span(folder: str, span: str, pattern: str = "*.csv", bad_rows_dir: str = "") -> SpanCheck:
    """Checks every line of every CSV file in a span folder (the header counts as no row).

    Streams: memory stays flat however large the span. Every bad row is appended to
    `<bad_rows_dir>/bad_rows.jsonl` as it is found (the file is created on the first one), so a
    span that is bad throughout costs disk, not memory.
    """
    files = _span_files(folder, pattern)
    check = SpanCheck(span=span, folder=folder, files=[os.path.basename(f) for f in files],
                      good_rows=0, bad_count=0, first_bad=[])
    writer = None
    try:
        for path in files:
            name = os.path.basename(path)
            for number, raw, reason in _classified(path):
                if reason is None:
                    check.good_rows += 1
                    continue
                row = BadRow(name, number, reason, raw)
                check.bad_count += 1
                if len(check.first_bad) < SHOWN_ROWS:
                    check.first_bad.append(row)
                if bad_rows_dir:
                    if writer is None:
                        tf.io.gfile.makedirs(bad_rows_dir)
                        check.bad_rows_path = os.path.join(bad_rows_dir, BAD_ROWS_FILE)
                        writer = tf.io.gfile.GFile(check.bad_rows_path, "w")
                    writer.write(_bad_row_json(check, row) + "\n")
    finally:
        if writer is not None:
            writer.close()
    return check


def _terminated(line: bytes) -> bytes:
    return line if line.endswith(b"\n") else line + b"\n"


def _header_fields(header: bytes) -> int | None:
    try:
        return len(next(csv.reader([header.decode("utf-8").rstrip("\r\n")], strict=True)))
    except (UnicodeDecodeError, csv.Error, StopIteration):
        return None


def _bad_row_json(check: SpanCheck, row: BadRow) -> str:
    return json.dumps({
        "span": check.span, "file": row.file, "source": os.path.join(check.folder, row.file),
        "line": row.line, "reason": row.reason,
        "text": row.raw.decode("utf-8", errors="backslashreplace").rstrip("\r\n"),
        "raw_base64": base64.b64encode(row.raw).decode("ascii"),
    }, ensure_ascii=False)


def write_cleaned(check: SpanCheck, cleaned_root: str, pattern: str = "*.csv") -> str:
    """Writes every file's header and good lines as `<cleaned_root>/<span>/<file>`, streaming a second
    pass over the span; returns `cleaned_root` (ExampleGen's base). A file whose header is
    unreadable was quarantined whole and gets no copy."""
    folder = os.path.join(cleaned_root, check.span)
    if tf.io.gfile.exists(folder):
        tf.io.gfile.rmtree(folder)
    tf.io.gfile.makedirs(folder)
    for path in _span_files(check.folder, pattern):
        header, header_fields, lines = _open_csv(path)
        if header is None or header_fields is None:
            lines.close()
            continue
        with tf.io.gfile.GFile(os.path.join(folder, os.path.basename(path)), "wb") as handle:
            buffer = [_terminated(header)]
            for raw in lines:
                if check_line(raw, header_fields) is None:
                    buffer.append(_terminated(raw))
                    if len(buffer) >= WRITE_BATCH_LINES:
                        handle.write(b"".join(buffer))
                        buffer.clear()
            handle.write(b"".join(buffer))
    return cleaned_root


def rejection_problems(check: SpanCheck, max_share: float, bad_rows_path: str) -> list[str]:
    """The lines a rejected span's record and the CLI show: the verdict with its fix, then examples."""
    summary = (
        f"span {check.span}: {check.bad_count} of {check.total_rows} rows ({check.bad_share:.2%}) are "
        f"malformed, more than --max-bad-row-share {max_share:.2%}; all of them are listed in {bad_rows_path}. "
        f"Fix those lines in the landing files under {check.folder} (or re-export the span), or raise "
        f"--max-bad-row-share if they may be dropped, and rerun"
    )
    shown = [row.describe(check.span) for row in check.first_bad]
    more = check.bad_count - len(shown)
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
    quarantine_dir = Home(home).quarantine_dir(span)
    if tf.io.gfile.exists(quarantine_dir):
        tf.io.gfile.rmtree(quarantine_dir)  # a rerun after a fix must not show stale rows
    check = scan_span(os.path.join(data_root, span), span, bad_rows_dir=quarantine_dir)
    if check.total_rows == 0:
        files = ", ".join(check.files) or "no *.csv file"
        raise SpanMalformed([f"span {span}: empty, no data rows in {check.folder} ({files}); land the span's "
                             f"rows (write _SUCCESS last) and rerun"], quarantine_dir)
    if not check.bad_count:
        return data_root, 0
    if check.bad_share > max_share:
        raise SpanMalformed(rejection_problems(check, max_share, check.bad_rows_path), quarantine_dir)
    return write_cleaned(check, Home(home).quarantine_dir(CLEANED_DIR)), check.bad_count
