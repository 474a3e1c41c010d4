import datetime

import pytest

from tfx_pipeline import spans
from tfx_pipeline.config import PipelineConfig
from tfx_pipeline.spans import Span

DAY = Span.of_day(datetime.date(2026, 11, 1))
HOUR13 = spans.parse_span("2026-11-01T13")


def _land(root, day: str, complete: bool = True) -> None:
    folder = root / day
    folder.mkdir(parents=True)
    (folder / "part-00000.csv").write_text("a\n1\n")
    if complete:
        (folder / spans.SUCCESS_MARKER).write_text("")


def test_span_numbers_match_example_gen_date_spans():
    assert spans.span_number(datetime.date(1970, 1, 2)) == 1
    day = datetime.date(2026, 11, 29)
    assert spans.span_date(spans.span_number(day)) == day
    assert spans.span_number(Span.of_day(day)) == spans.span_number(day)


def test_incomplete_spans_are_invisible(tmp_path):
    _land(tmp_path, "2026-11-01")
    _land(tmp_path, "2026-11-02", complete=False)
    (tmp_path / "notes").mkdir()
    assert spans.complete_spans(str(tmp_path)) == [DAY]
    assert spans.resolve_span(str(tmp_path), None) == DAY


def test_requested_incomplete_span_names_the_problem(tmp_path):
    _land(tmp_path, "2026-11-01", complete=False)
    with pytest.raises(FileNotFoundError, match="2026-11-01.*_SUCCESS"):
        spans.resolve_span(str(tmp_path), datetime.date(2026, 11, 1))
    with pytest.raises(FileNotFoundError, match="does not exist"):
        spans.resolve_span(str(tmp_path), datetime.date(2026, 11, 5))


def test_no_complete_span_suggests_simulate(tmp_path):
    with pytest.raises(FileNotFoundError, match="freshrank simulate"):
        spans.resolve_span(str(tmp_path), None)


def test_hourly_span_number_is_hours_since_the_epoch_utc():
    assert spans.parse_span("1970-01-01T01").number == 1
    assert spans.parse_span("1970-01-02T00").number == 24
    assert HOUR13.number == DAY.number * 24 + 13
    assert HOUR13.interval == spans.HOUR and str(HOUR13) == HOUR13.isoformat() == "2026-11-01T13"
    assert HOUR13.relpath == "2026-11-01/13" and HOUR13.start == datetime.datetime(2026, 11, 1, 13)
    aware = datetime.datetime(2026, 11, 1, 14, 30, tzinfo=datetime.timezone(datetime.timedelta(hours=1)))
    assert Span.of_hour(aware) == HOUR13  # 14:30+01:00 is 13:30 UTC
    assert HOUR13.shifted(11) == spans.parse_span("2026-11-02T00")


def test_a_daily_span_prints_as_the_date_it_replaces():
    assert spans.parse_span("2026-11-01") == DAY == spans.as_span(datetime.date(2026, 11, 1))
    assert str(DAY) == DAY.isoformat() == DAY.relpath == "2026-11-01"
    assert PipelineConfig(data_root="d", home="h", span=datetime.date(2026, 11, 1)).span == DAY


@pytest.mark.parametrize("text", ["2026-11-01T24", "2026-11-1", "2026-13-01", "2026-11-01T1", "2026-11-01 13",
                                  "yesterday"])
def test_a_bad_span_names_both_forms(text):
    with pytest.raises(ValueError, match="YYYY-MM-DD .*YYYY-MM-DDTHH"):
        spans.parse_span(text)


def _land_hour(root, day: str, hour: str, complete: bool = True) -> None:
    _land(root, f"{day}/{hour}", complete)


def test_hourly_layout_is_detected_and_listed_oldest_first(tmp_path):
    _land_hour(tmp_path, "2026-11-02", "00")
    _land_hour(tmp_path, "2026-11-01", "23")
    _land_hour(tmp_path, "2026-11-01", "13")
    _land_hour(tmp_path, "2026-11-02", "01", complete=False)
    assert spans.detect_interval(str(tmp_path)) == spans.HOUR
    listed = spans.complete_spans(str(tmp_path))
    assert [s.isoformat() for s in listed] == ["2026-11-01T13", "2026-11-01T23", "2026-11-02T00"]
    assert spans.resolve_span(str(tmp_path), None).isoformat() == "2026-11-02T00"
    assert spans.resolve_span(str(tmp_path), HOUR13) == HOUR13
    with pytest.raises(FileNotFoundError, match="2026-11-02T01 .*_SUCCESS"):
        spans.resolve_span(str(tmp_path), spans.parse_span("2026-11-02T01"))


def test_interval_flag_is_checked_against_the_layout(tmp_path):
    assert spans.detect_interval(str(tmp_path)) is None
    assert spans.data_interval(str(tmp_path)) == spans.DAY
    assert spans.data_interval(str(tmp_path), spans.HOUR) == spans.HOUR  # nothing landed yet: the flag says
    _land_hour(tmp_path, "2026-11-01", "13")
    with pytest.raises(spans.IntervalMismatch, match="--interval day but .* holds hourly spans"):
        spans.data_interval(str(tmp_path), spans.DAY)
    with pytest.raises(spans.IntervalMismatch, match="span 2026-11-01 is daily but --interval is hour"):
        spans.resolve_span(str(tmp_path), DAY, spans.HOUR)
    _land(tmp_path, "2026-11-02")
    with pytest.raises(spans.IntervalMismatch, match="mixes daily spans .* and hourly spans"):
        spans.detect_interval(str(tmp_path))


def test_a_home_refuses_a_span_of_the_other_interval(tmp_path):
    hourly, daily = tmp_path / "hourly", tmp_path / "daily"
    spans.claim_home(str(hourly), HOUR13)
    assert (hourly / spans.INTERVAL_FILE).read_text().strip() == spans.HOUR
    with pytest.raises(spans.IntervalMismatch) as refused:
        spans.claim_home(str(hourly), DAY)
    message = str(refused.value)
    assert "holds hourly spans but span 2026-11-01 is daily" in message and "fresh --home" in message
    assert "--span YYYY-MM-DDTHH" in message

    # A daily home writes no record (it stays as every home was); once it has run it is daily.
    spans.claim_home(str(daily), DAY)
    assert not (daily / spans.INTERVAL_FILE).exists()
    assert spans.home_interval(str(daily)) is None
    (daily).mkdir(exist_ok=True)
    (daily / "runs.jsonl").write_text('{"span": "2026-11-01"}\n')
    with pytest.raises(spans.IntervalMismatch, match="holds daily spans but span 2026-11-01T13 is hourly"):
        spans.check_home(str(daily), HOUR13)


def test_config_refuses_an_interval_flag_that_contradicts_the_span():
    assert PipelineConfig(data_root="d", home="h", span=HOUR13).interval == spans.HOUR
    assert PipelineConfig(data_root="d", home="h", span=None, orchestrator="kubeflow").interval == spans.DAY
    with pytest.raises(spans.IntervalMismatch, match="span 2026-11-01T13 is hourly but --interval is day"):
        PipelineConfig(data_root="d", home="h", span=HOUR13, interval=spans.DAY)
