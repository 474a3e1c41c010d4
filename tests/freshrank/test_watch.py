"""`freshrank watch`'s pass: order, exactly once, the late-span and gap policies (docs/hourly.md).

The pipeline itself is replaced by a recorder here (it appends the record run_once would), so
these tests are about which span runs when; tests/e2e/test_hourly.py runs the real pipeline.
"""
from __future__ import annotations

import json
import os
import time

import pytest

from freshrank import watch
from tfx_pipeline.spans import SUCCESS_MARKER, parse_span


def _land(data, text: str, age_seconds: float = 0.0) -> None:
    span = parse_span(text)
    folder = data / span.relpath
    folder.mkdir(parents=True)
    (folder / "part-00000.csv").write_text("request_id,event_time\nr1,x\n")
    marker = folder / SUCCESS_MARKER
    marker.write_text("")
    landed = time.time() - age_seconds
    os.utime(marker, (landed, landed))


class Recorder:
    """Stands in for run_once: records the call and appends the run record to runs.jsonl."""

    def __init__(self, runs_log: str):
        self.runs_log = runs_log
        self.calls: list[tuple[str, list[str]]] = []

    def __call__(self, span, absorbed=()):
        late = [s.isoformat() for s in absorbed]
        self.calls.append((span.isoformat(), late))
        record = {"span": span.isoformat(), "status": "pushed", **({"absorbed": late} if late else {})}
        with open(self.runs_log, "a", encoding="utf-8") as f:
            f.write(json.dumps(record) + "\n")
        return record


@pytest.fixture
def setting(tmp_path):
    data, home = tmp_path / "data", tmp_path / "home"
    data.mkdir()
    home.mkdir()
    return data, str(home / "runs.jsonl")


def _pass(data, runs_log, recorder, gap_alert=3600.0):
    said: list[str] = []
    ran = watch.watch(str(data), runs_log, recorder, 0.1, True, said.append, gap_alert=gap_alert)
    return ran, said


def test_hourly_spans_run_oldest_first_exactly_once(setting):
    data, runs_log = setting
    for text in ("2026-11-01T14", "2026-11-01T12", "2026-11-01T23", "2026-11-02T00"):
        _land(data, text)
    recorder = Recorder(runs_log)
    ran, said = _pass(data, runs_log, recorder)
    assert ran == 4
    assert recorder.calls == [("2026-11-01T12", []), ("2026-11-01T14", []), ("2026-11-01T23", []),
                              ("2026-11-02T00", [])]
    assert _pass(data, runs_log, recorder)[0] == 0  # nothing runs twice


def test_a_late_hour_is_not_run_on_its_own_and_joins_the_next_run(setting):
    data, runs_log = setting
    for text in ("2026-11-01T12", "2026-11-01T13"):
        _land(data, text)
    recorder = Recorder(runs_log)
    _pass(data, runs_log, recorder)
    _land(data, "2026-11-01T11")  # lands after 12 and 13 ran

    ran, said = _pass(data, runs_log, recorder)
    assert ran == 0
    assert any("late span(s) 2026-11-01T11 landed after 2026-11-01T13 ran" in line
               and "once it lands" in line for line in said), said

    _land(data, "2026-11-01T14")
    ran, said = _pass(data, runs_log, recorder)
    assert ran == 1 and recorder.calls[-1] == ("2026-11-01T14", ["2026-11-01T11"])
    assert any("they join the run of 2026-11-01T14" in line for line in said), said
    assert "2026-11-01T11" in watch.done_spans(runs_log)
    assert _pass(data, runs_log, recorder)[0] == 0


def test_a_late_hour_the_next_run_could_not_use_stays_pending(setting):
    data, runs_log = setting
    _land(data, "2026-11-01T12")
    recorder = Recorder(runs_log)
    _pass(data, runs_log, recorder)
    _land(data, "2026-11-01T10")
    _land(data, "2026-11-01T13")
    _land(data, "2026-11-01T14")

    def rejecting(span, absorbed=()):
        # The first run is rejected as data: its late spans were not trained on, the next run takes them.
        if span.isoformat() == "2026-11-01T13":
            recorder.calls.append((span.isoformat(), [s.isoformat() for s in absorbed]))
            record = {"span": span.isoformat(), "status": "rejected_data"}
            with open(runs_log, "a", encoding="utf-8") as f:
                f.write(json.dumps(record) + "\n")
            return record
        return recorder(span, absorbed)

    _pass(data, runs_log, rejecting)
    assert recorder.calls[-2:] == [("2026-11-01T13", ["2026-11-01T10"]), ("2026-11-01T14", ["2026-11-01T10"])]


def test_a_late_day_still_runs_on_its_own(setting):
    """Daily homes keep their behaviour: a day that lands late runs as its own span."""
    data, runs_log = setting
    for text in ("2026-11-02", "2026-11-03"):
        _land(data, text)
    recorder = Recorder(runs_log)
    _pass(data, runs_log, recorder)
    _land(data, "2026-11-01")
    ran, said = _pass(data, runs_log, recorder)
    assert ran == 1 and recorder.calls[-1] == ("2026-11-01", [])
    assert not any("late" in line for line in said)


def test_a_gap_is_reported_once_it_is_older_than_the_alert_age(setting):
    data, runs_log = setting
    _land(data, "2026-11-01T10", age_seconds=7200)
    _land(data, "2026-11-01T13", age_seconds=1800)  # 11 and 12 missing; 13 landed 30 minutes ago
    recorder = Recorder(runs_log)
    ran, said = _pass(data, runs_log, recorder, gap_alert=3600.0)
    assert ran == 2 and not any("gap" in line for line in said)  # newer spans are not held up

    ran, said = _pass(data, runs_log, recorder, gap_alert=900.0)
    gap_lines = [line for line in said if "gap" in line]
    assert len(gap_lines) == 1, said
    assert "span(s) 2026-11-01T11, 2026-11-01T12 missing" in gap_lines[0]
    assert "for over 15m" in gap_lines[0] and "first after the gap: 2026-11-01T13" in gap_lines[0]


def test_gaps_lists_every_missing_span_between_landed_ones(setting):
    data, _ = setting
    for text in ("2026-11-01T22", "2026-11-02T01", "2026-11-02T02"):
        _land(data, text, age_seconds=100)
    found = watch.gaps(str(data), None, older_than=10)
    assert [(m.isoformat(), a.isoformat()) for m, a in found] == [
        ("2026-11-01T23", "2026-11-02T01"), ("2026-11-02T00", "2026-11-02T01")]
    assert watch.gaps(str(data), None, older_than=1000) == []


@pytest.mark.parametrize(("text", "seconds"), [("90", 90), ("90s", 90), ("30m", 1800), ("2h", 7200), ("1d", 86400),
                                               ("0.5h", 1800)])
def test_gap_alert_durations(text, seconds):
    assert watch.parse_duration(text) == seconds


def test_a_bad_gap_alert_names_the_forms():
    with pytest.raises(ValueError, match="30m, 2h"):
        watch.parse_duration("soon")


def test_a_watcher_reports_each_missing_span_once(setting, monkeypatch):
    data, runs_log = setting
    _land(data, "2026-11-01T10", age_seconds=7200)
    _land(data, "2026-11-01T12", age_seconds=7200)
    passes = []

    def sleep(_seconds):  # stands in for the poll wait; the third pass ends the watcher
        passes.append(1)
        if len(passes) == 1:
            _land(data, "2026-11-01T14", age_seconds=7200)  # a second gap appears
        if len(passes) == 3:
            raise KeyboardInterrupt

    monkeypatch.setattr(watch.time, "sleep", sleep)
    said: list[str] = []
    with pytest.raises(KeyboardInterrupt):
        watch.watch(str(data), runs_log, Recorder(runs_log), 0.1, False, said.append, gap_alert=60.0)
    gap_lines = [line for line in said if "gap" in line]
    assert len(gap_lines) == 2, said
    assert "span(s) 2026-11-01T11 missing" in gap_lines[0] and "span(s) 2026-11-01T13 missing" in gap_lines[1]
