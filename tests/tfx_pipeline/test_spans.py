import datetime

import pytest

from tfx_pipeline import spans


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


def test_incomplete_spans_are_invisible(tmp_path):
    _land(tmp_path, "2026-11-01")
    _land(tmp_path, "2026-11-02", complete=False)
    (tmp_path / "notes").mkdir()
    assert spans.complete_spans(str(tmp_path)) == [datetime.date(2026, 11, 1)]
    assert spans.resolve_span(str(tmp_path), None) == datetime.date(2026, 11, 1)


def test_requested_incomplete_span_names_the_problem(tmp_path):
    _land(tmp_path, "2026-11-01", complete=False)
    with pytest.raises(FileNotFoundError, match="2026-11-01.*_SUCCESS"):
        spans.resolve_span(str(tmp_path), datetime.date(2026, 11, 1))
    with pytest.raises(FileNotFoundError, match="does not exist"):
        spans.resolve_span(str(tmp_path), datetime.date(2026, 11, 5))


def test_no_complete_span_suggests_simulate(tmp_path):
    with pytest.raises(FileNotFoundError, match="freshrank simulate"):
        spans.resolve_span(str(tmp_path), None)
