"""`freshrank watch` runs each complete span exactly once, also across a kill -9 and a restart."""
from __future__ import annotations

import datetime
import json
import os
import signal
import subprocess
import time

import pytest

from freshrank.market import simulate
from tests.helpers import FRESHRANK, REPO, subprocess_env

pytestmark = pytest.mark.e2e
DAY1 = datetime.date(2026, 11, 1)
FAST = ["--epochs", "1", "--min-auc", "0.0", "--bless-tolerance", "1000"]


def _watch(data, home, **kwargs):
    return subprocess.Popen([*FRESHRANK, "watch", "--data", str(data), "--home", str(home), "--once", *FAST],
                            cwd=REPO, env=subprocess_env(), stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                            text=True, start_new_session=True, **kwargs)


def _records(home):
    path = home / "runs.jsonl"
    return [json.loads(line) for line in path.read_text().splitlines()] if path.exists() else []


def test_watch_runs_each_span_once_across_a_crash_and_restart(tmp_path):
    data, home = tmp_path / "data", tmp_path / "home"
    simulate(data, DAY1, 1, requests_per_day=300, seed=5)

    # First watcher: killed with SIGKILL as soon as training starts.
    proc = _watch(data, home)
    deadline = time.time() + 600
    seen = ""
    while time.time() < deadline:
        line = proc.stderr.readline()
        seen += line
        if "Component Trainer is running" in line:
            time.sleep(5)  # inside the Trainer's work, not at its edge
            break
        assert proc.poll() is None, seen[-3000:]
    os.killpg(proc.pid, signal.SIGKILL)
    proc.wait(timeout=60)
    assert _records(home) == []
    serving = home / "serving" / "ranker"
    assert not serving.exists() or os.listdir(serving) == []

    # A second day lands; the restarted watcher runs the interrupted span, then the new one.
    simulate(data, DAY1 + datetime.timedelta(days=1), 1, requests_per_day=300, seed=5, market_start=DAY1)
    out, err = _watch(data, home).communicate(timeout=1200)
    records = _records(home)
    assert [r["span"] for r in records] == ["2026-11-01", "2026-11-02"], err[-3000:]
    assert records[1]["warm_started_from"] == records[0]["pushed_version"]

    # Nothing left: a third pass runs nothing.
    proc = _watch(data, home)
    out, err = proc.communicate(timeout=600)
    assert proc.returncode == 0, err[-3000:]
    assert "ran 0 span(s)" in err
    assert len(_records(home)) == 2
