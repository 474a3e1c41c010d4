"""Staging an hourly span for ExampleGen: the rows it reads, the span number its driver resolves,
late spans absorbed beside it, and a malformed late span left out instead of blocking the run."""
from __future__ import annotations

import json

import pytest
from tfx.components.example_gen import input_processor
from tfx.proto import example_gen_pb2, range_config_pb2

from tfx_pipeline import hourly_ingest, quarantine
from tfx_pipeline.home import Home
from tfx_pipeline.spans import HOURLY_INGEST_PATTERN, SUCCESS_MARKER, parse_span

HEADER = "request_id,event_time,position\n"


def _land(data, text: str, lines: list[str]) -> None:
    folder = data / parse_span(text).relpath
    folder.mkdir(parents=True)
    (folder / "part-00000.csv").write_text(HEADER + "".join(lines))
    (folder / SUCCESS_MARKER).write_text("")


def _rows(n: int, hour: str) -> list[str]:
    return [f"r{hour}-{i},2026-11-01T{hour}:00:{i:02d}Z,{i % 5 + 1}\n" for i in range(n)]


def _resolved(ingest_root: str, span_number: int | None) -> int:
    """The span ExampleGen's own input processor resolves in the staged folder."""
    range_config = None
    if span_number is not None:
        range_config = range_config_pb2.RangeConfig(static_range=range_config_pb2.StaticRange(
            start_span_number=span_number, end_span_number=span_number))
    processor = input_processor.FileBasedInputProcessor(
        ingest_root, [example_gen_pb2.Input.Split(name="all", pattern=HOURLY_INGEST_PATTERN)], range_config)
    return processor.resolve_span_and_version()[0]


def test_the_hour_is_staged_under_its_span_number(tmp_path):
    data, home = tmp_path / "data", str(tmp_path / "home")
    _land(data, "2026-11-01T13", _rows(4, "13"))
    span = parse_span("2026-11-01T13")
    staged = hourly_ingest.stage(str(data), span, (), home, max_share=0.0)
    assert staged.ingest_root == Home(home).ingest_dir and staged.absorbed == [] and staged.quarantined_rows == 0
    written = tmp_path / "home" / "ingest" / str(span.number) / "2026-11-01T13" / "part-00000.csv"
    assert written.read_text() == HEADER + "".join(_rows(4, "13"))
    assert _resolved(staged.ingest_root, span.number) == span.number
    assert _resolved(staged.ingest_root, None) == span.number  # "the newest span" is the staged one

    # The next run's staging replaces it: one hour's copy at a time, and none after `clear`.
    _land(data, "2026-11-01T14", _rows(3, "14"))
    hourly_ingest.stage(str(data), parse_span("2026-11-01T14"), (), home, max_share=0.0)
    assert sorted(p.name for p in (tmp_path / "home" / "ingest").iterdir()) == [str(span.number + 1)]
    hourly_ingest.clear(home)
    assert not (tmp_path / "home" / "ingest").exists()


def test_late_hours_are_read_beside_the_span_and_a_malformed_one_is_left_out(tmp_path):
    data, home = tmp_path / "data", str(tmp_path / "home")
    _land(data, "2026-11-01T15", _rows(4, "15") + ['r15-x,"broken\n'])
    _land(data, "2026-11-01T11", _rows(2, "11"))
    _land(data, "2026-11-01T12", ['r12-0,"broken\n', "r12-1,too,many,fields\n"])
    span = parse_span("2026-11-01T15")
    staged = hourly_ingest.stage(str(data), span, (parse_span("2026-11-01T11"), parse_span("2026-11-01T12")),
                                 home, max_share=0.25)
    assert staged.absorbed == ["2026-11-01T11"]
    assert list(staged.late_rejected) == ["2026-11-01T12"]
    assert "span 2026-11-01T12: 2 of 2 rows" in staged.late_rejected["2026-11-01T12"][0]
    assert staged.quarantined_rows == 1  # the span's one bad row, quarantined under its own name
    bad = (tmp_path / "home" / "quarantine" / "2026-11-01T15" / quarantine.BAD_ROWS_FILE).read_text()
    assert json.loads(bad.splitlines()[0])["span"] == "2026-11-01T15"
    folder = tmp_path / "home" / "ingest" / str(span.number)
    assert sorted(p.name for p in folder.iterdir()) == ["2026-11-01T11", "2026-11-01T15"]
    assert (folder / "2026-11-01T11" / "part-00000.csv").read_text() == HEADER + "".join(_rows(2, "11"))
    assert _resolved(staged.ingest_root, span.number) == span.number


def test_a_malformed_or_empty_hour_is_rejected_naming_it(tmp_path):
    data, home = tmp_path / "data", str(tmp_path / "home")
    _land(data, "2026-11-01T13", [])
    with pytest.raises(quarantine.SpanMalformed, match="span 2026-11-01T13: empty"):
        hourly_ingest.stage(str(data), parse_span("2026-11-01T13"), (), home, max_share=0.0)
