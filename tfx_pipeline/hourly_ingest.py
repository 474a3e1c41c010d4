"""An hourly span as ExampleGen reads it: `<home>/ingest/<span number>/<span text>/*.csv`.

TFX 1.16's ExampleGen numbers spans from `{SPAN}` or from `{YYYY}-{MM}-{DD}` in its input pattern,
and has no hour spec, so it cannot read `<data>/<YYYY-MM-DD>/<HH>/` with the hour's span number.
Before ExampleGen runs, each CSV line of the hour is checked (tfx_pipeline/quarantine.py: bad rows
go to `<home>/quarantine/<span>/`) and the good ones are written under the span's number, which
ExampleGen then resolves with `spans.HOURLY_INGEST_PATTERN` (`{SPAN}/*/*.csv`) and the same static
RangeConfig: one span number in ML Metadata, in the span index and in the Kubeflow parameter.

Late spans (freshrank/watch.py) are written beside the span they join, each under its own text,
so the run trains on them and its record names them; one that is malformed past the limit is left
out and reported, not allowed to block the newer span. Only the running span's copy is kept:
staging clears the folder first (one run holds a home at a time), so the copies never pile up.
"""
from __future__ import annotations

import dataclasses
import os

import tensorflow as tf

from tfx_pipeline import quarantine
from tfx_pipeline.home import Home
from tfx_pipeline.spans import Span


@dataclasses.dataclass
class Staged:
    ingest_root: str  # ExampleGen's input base
    quarantined_rows: int
    absorbed: list[str]  # the late spans read into this run
    late_rejected: dict[str, list[str]]  # late spans left out as malformed -> their problems


def check_hour(data_root: str, span: Span, home: str, max_share: float) -> quarantine.SpanCheck:
    """Scans one hourly span; raises SpanMalformed when empty or past `max_share` bad rows."""
    quarantine_dir = Home(home).quarantine_dir(span.isoformat())
    if tf.io.gfile.exists(quarantine_dir):
        tf.io.gfile.rmtree(quarantine_dir)  # a rerun after a fix must not show stale rows
    check = quarantine.scan_span(os.path.join(data_root, span.relpath), span.isoformat(),
                                 bad_rows_dir=quarantine_dir)
    if check.total_rows == 0:
        files = ", ".join(check.files) or "no *.csv file"
        raise quarantine.SpanMalformed([f"span {span}: empty, no data rows in {check.folder} ({files}); land the "
                                        f"span's rows (write _SUCCESS last) and rerun"], quarantine_dir)
    if check.bad_share > max_share:
        raise quarantine.SpanMalformed(quarantine.rejection_problems(check, max_share, check.bad_rows_path),
                                       quarantine_dir)
    return check


def clear(home: str) -> None:
    """Removes every staged copy (after a run: ExampleGen has its own)."""
    ingest = Home(home).ingest_dir
    if tf.io.gfile.exists(ingest):
        tf.io.gfile.rmtree(ingest)


def stage(data_root: str, span: Span, absorbed: tuple[Span, ...], home: str, max_share: float) -> Staged:
    """Writes the span (and the late spans it absorbs) for ExampleGen; raises SpanMalformed for the span."""
    ingest = Home(home).ingest_dir
    clear(home)
    target = os.path.join(ingest, str(span.number))
    check = check_hour(data_root, span, home, max_share)
    quarantine.write_cleaned(check, target)
    staged = Staged(ingest, check.bad_count, [], {})
    for late in absorbed:
        try:
            late_check = check_hour(data_root, late, home, max_share)
        except quarantine.SpanMalformed as malformed:
            staged.late_rejected[late.isoformat()] = malformed.problems
            continue
        quarantine.write_cleaned(late_check, target)
        staged.quarantined_rows += late_check.bad_count
        staged.absorbed.append(late.isoformat())
    return staged
