"""SpanReady in compiled pipelines: any malformed row stops the run before ExampleGen reads it."""
from __future__ import annotations

import json

import pytest

from tfx_pipeline import quarantine
from tfx_pipeline.components.span_ready import refuse_malformed_rows

HEADER = b"request_id,query,price,purchased\n"


def _folder(tmp_path, content: bytes):
    folder = tmp_path / "landing" / "2026-11-02"
    folder.mkdir(parents=True)
    (folder / "part-00000.csv").write_bytes(content)
    return folder


def test_well_formed_span_passes(tmp_path):
    refuse_malformed_rows(str(_folder(tmp_path, HEADER + b"r1,q,1.0,0\n" * 5000)), str(tmp_path / "q"))
    assert not (tmp_path / "q").exists()


def test_one_bad_row_in_five_thousand_stops_a_compiled_run_naming_file_and_line(tmp_path):
    folder = _folder(tmp_path, HEADER + b"r1,q,1.0,0\n" * 5000 + b"r2,q,1.0\n")
    with pytest.raises(quarantine.SpanMalformed) as caught:
        refuse_malformed_rows(str(folder), str(tmp_path / "q"))
    summary, row = caught.value.problems
    assert "span 2026-11-02: 1 of 5001 rows" in summary and "freshrank run" in summary
    assert row == "span 2026-11-02, file part-00000.csv line 5002: wrong field count: 3 fields, the header has 4"
    listed = json.loads((tmp_path / "q" / "2026-11-02" / "bad_rows.jsonl").read_text())
    assert (listed["file"], listed["line"]) == ("part-00000.csv", 5002)


def test_empty_span_stops_a_compiled_run(tmp_path):
    with pytest.raises(quarantine.SpanMalformed, match="empty, no data rows"):
        refuse_malformed_rows(str(_folder(tmp_path, HEADER)), "")


def test_a_resubmission_after_the_fix_clears_the_old_bad_rows(tmp_path):
    folder = _folder(tmp_path, HEADER + b"r1,q,1.0,0\n" + b"r2,q,1.0\n")
    with pytest.raises(quarantine.SpanMalformed):
        refuse_malformed_rows(str(folder), str(tmp_path / "q"))
    assert (tmp_path / "q" / "2026-11-02" / "bad_rows.jsonl").exists()
    (folder / "part-00000.csv").write_bytes(HEADER + b"r1,q,1.0,0\n" + b"r2,q,1.0,1\n")
    refuse_malformed_rows(str(folder), str(tmp_path / "q"))
    assert not (tmp_path / "q" / "2026-11-02").exists()
