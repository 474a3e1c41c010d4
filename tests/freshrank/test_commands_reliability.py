"""`freshrank gc` as a user calls it, on a fabricated home (tests/tfx_pipeline/test_retention.py):
the listing and the bytes, the dry run, the record in gc.jsonl, and the documented exit codes."""
from __future__ import annotations

import fcntl
import os

from click.testing import CliRunner

from freshrank import cli
from tests.tfx_pipeline.test_retention import FakeHome
from tfx_pipeline.home import read_runs


def _gc(home, *args):
    return CliRunner().invoke(cli.main, ["gc", "--home", str(home.root), *args])


def test_dry_run_lists_removals_and_bytes_and_changes_nothing_then_gc_does_it(tmp_path):
    home = FakeHome(tmp_path / "home")
    runs = [home.run(day) for day in range(100, 104)]
    dry = _gc(home, "--keep-versions", "2", "--dry-run")
    assert dry.exit_code == 0, dry.output
    assert "remove version" in dry.output and os.path.join(home.layout.serving_dir("ranker"), str(runs[0]["version"])) in dry.output
    assert "total: " in dry.output and "dry run: nothing changed" in dry.output
    assert home.versions() == [r["version"] for r in runs] and not os.path.exists(home.layout.gc_log)

    done = _gc(home, "--keep-versions", "2")
    assert done.exit_code == 0, done.output
    assert home.versions() == [runs[2]["version"], runs[3]["version"]]
    [record] = read_runs(home.layout.gc_log)
    assert record["removed_versions"] == [runs[0]["version"], runs[1]["version"]] and record["bytes_freed"] > 0
    assert f"gc: freed {record['bytes_freed']} bytes" in done.output


def test_exit_codes(tmp_path):
    home = FakeHome(tmp_path / "home")
    [home.run(day) for day in range(100, 103)]
    assert _gc(home, "--keep-versions", "0").exit_code == 2
    not_home = tmp_path / "empty"
    not_home.mkdir()
    result = CliRunner().invoke(cli.main, ["gc", "--home", str(not_home)])
    assert result.exit_code == 2 and "not a freshrank home" in result.output
    with open(home.layout.root + "/.lock", "a+") as handle:  # a run holds the home
        fcntl.flock(handle, fcntl.LOCK_EX | fcntl.LOCK_NB)
        locked = _gc(home, "--keep-versions", "1")
    assert locked.exit_code == 1 and "is in use" in locked.output
    assert len(home.versions()) == 3
