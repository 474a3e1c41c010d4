"""SpanReady: refuse a half-landed span before ExampleGen reads it (compiled pipelines only).

`freshrank run` only ever picks a span whose folder holds `_SUCCESS` (tfx_pipeline/spans.py). A
compiled Kubeflow pipeline has no CLI in front of it: ExampleGen's own driver resolves the span
from the `span_range` runtime parameter (empty: the newest span folder) and would happily ingest
a folder whose upload is still running. This step resolves the span exactly as that driver does
(`FileBasedInputProcessor`, same input base, pattern and RangeConfig) and fails the run, before
anything is ingested, unless the folder is complete. It also refuses a span with any malformed CSV
row (tfx_pipeline/quarantine.py), naming file and line. Any filesystem TF can read works (gs://...).

For hourly spans (`interval="hour"`) ExampleGen cannot read the landing folder itself (TFX 1.16 has
no hour spec: tfx_pipeline/spans.py), so this step resolves the hour (the `span_range` JSON names
it by its number; "" = the newest complete hour), refuses it as above, and writes it where the
compiled ExampleGen reads hourly spans: `<staging_root>/<span number>/<span text>/`, after
clearing the previous copy, so "the newest span" there is this one.
"""

import os

import tensorflow as tf
from tfx.components.example_gen import input_processor
from tfx.dsl.component.experimental.annotations import Parameter
from tfx.dsl.component.experimental.decorators import component
from tfx.proto import example_gen_pb2, range_config_pb2
from tfx.utils import proto_utils

from tfx_pipeline import quarantine
from tfx_pipeline.spans import DAY, HOUR, SUCCESS_MARKER, Span, parse_span


class SpanNotReady(RuntimeError):
    pass


def resolve_landed_span(input_base: str, pattern: str, span_range: str) -> tuple[int, str]:
    """(span number, folder) ExampleGen will read; raises SpanNotReady if the folder is incomplete."""
    range_config = None
    if span_range:
        range_config = proto_utils.json_to_proto(span_range, range_config_pb2.RangeConfig())
    processor = input_processor.FileBasedInputProcessor(
        input_base, [example_gen_pb2.Input.Split(name="all", pattern=pattern)], range_config
    )
    span, version = processor.resolve_span_and_version()
    folder = os.path.dirname(os.path.join(input_base, processor.get_pattern_for_span_version(pattern, span, version)))
    if not tf.io.gfile.exists(os.path.join(folder, SUCCESS_MARKER)):
        raise SpanNotReady(
            f"span folder {folder} has no {SUCCESS_MARKER} marker yet: its upload may still be running. "
            f"Land it completely (write {SUCCESS_MARKER} last) and resubmit, or pass span_range for a "
            f"complete span"
        )
    return span, folder


def resolve_landed_hour(data_root: str, span_range: str) -> Span:
    """The hourly span to run: the one `span_range` pins, or the newest complete one (any filesystem)."""
    if span_range:
        range_config = proto_utils.json_to_proto(span_range, range_config_pb2.RangeConfig())
        span = Span(int(range_config.static_range.start_span_number), HOUR)
        marker = os.path.join(data_root, span.relpath, SUCCESS_MARKER)
        if not tf.io.gfile.exists(marker):
            raise SpanNotReady(
                f"span {span} ({os.path.dirname(marker)}) has no {SUCCESS_MARKER} marker yet: it is missing or "
                f"its upload may still be running. Land it completely (write {SUCCESS_MARKER} last) and resubmit")
        return span
    landed = []
    for marker in tf.io.gfile.glob(os.path.join(data_root, "*", "*", SUCCESS_MARKER)):
        day, hour = marker.rstrip("/").split("/")[-3:-1]
        try:
            landed.append(parse_span(f"{day}T{hour}"))
        except ValueError:
            continue
    if not landed:
        raise SpanNotReady(f"no complete hourly span in {data_root}: expected YYYY-MM-DD/HH/ folders with "
                           f"*.csv files and a {SUCCESS_MARKER} marker")
    return max(landed)


def stage_hour(data_root: str, span: Span, staging_root: str, quarantine_root: str) -> str:
    """Refuses a malformed hour, then writes it as `<staging_root>/<number>/<text>/`; returns that folder."""
    folder = os.path.join(data_root, span.relpath)
    check = refuse_malformed_rows(folder, quarantine_root, name=span.isoformat())
    if tf.io.gfile.exists(staging_root):
        tf.io.gfile.rmtree(staging_root)
    quarantine.write_cleaned(check, os.path.join(staging_root, str(span.number)))
    return os.path.join(staging_root, str(span.number), span.isoformat())


def refuse_malformed_rows(folder: str, quarantine_root: str, name: str = "") -> quarantine.SpanCheck:
    """Fails the run if any CSV line is malformed (or the span is empty), naming file and line.

    A compiled pipeline cannot hand ExampleGen a cleaned copy (its input base is fixed at compile
    time), so where `freshrank run` quarantines a few bad rows and goes on, here every bad row
    stops the run before ingestion; the rows are listed under `<quarantine_root>/<span>/` too.
    """
    day = name or os.path.basename(folder.rstrip("/"))
    target = os.path.join(quarantine_root, day) if quarantine_root else ""
    if target and tf.io.gfile.exists(target):
        tf.io.gfile.rmtree(target)  # a resubmission after a fix must not show stale rows
    check = quarantine.scan_span(folder, day, bad_rows_dir=target)
    if check.total_rows == 0:
        raise quarantine.SpanMalformed([f"span {day}: empty, no data rows in {folder}; land its rows and resubmit"],
                                       "")
    if not check.bad_count:
        return check
    path = check.bad_rows_path or "(no quarantine directory configured)"
    problems = quarantine.rejection_problems(check, 0.0, path)
    problems[0] += (" (a compiled pipeline cannot leave rows out: fix them, or run this span with "
                    "`freshrank run`, which quarantines up to --max-bad-row-share)")
    raise quarantine.SpanMalformed(problems, target)


@component
def SpanReady(  # noqa: N802 (TFX component names are classes)
    input_base: Parameter[str],
    pattern: Parameter[str],
    span_range: Parameter[str] = "",
    quarantine_root: Parameter[str] = "",
    interval: Parameter[str] = DAY,
    staging_root: Parameter[str] = "",
) -> None:
    if interval == HOUR:
        hour = resolve_landed_hour(input_base, span_range)
        staged = stage_hour(input_base, hour, staging_root, quarantine_root)
        print(f"span {hour} ({hour.number}) is complete, every row is well-formed; staged at {staged}")
        return
    span, folder = resolve_landed_span(input_base, pattern, span_range)
    refuse_malformed_rows(folder, quarantine_root)
    print(f"span {span} ({folder}) is complete and every row is well-formed")
