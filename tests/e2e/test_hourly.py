"""Four hourly spans, one `freshrank watch --once`: run in order, exactly once, each warm-started from
the previous push as ML Metadata records it; a late hour is not run on its own; a daily span is
refused by the hourly home."""
from __future__ import annotations

import json
import shutil
import subprocess

import pytest

from tests.helpers import FRESHRANK, REPO, subprocess_env
from tfx_pipeline.lineage import Lineage, custom
from tfx_pipeline.spans import parse_span

pytestmark = pytest.mark.e2e
DAY = "2026-11-01"
# The lunch peak of a 4800-search day: ~200-260 searches an hour. The data gate compares each hour's
# category mix with the previous hour's (L-infinity, threshold 0.12): at ~50 searches an hour
# sampling noise alone crosses it (measured: 0.129 between 13h and 14h of a 1200-search day).
HOURS = [f"{DAY}T{h}" for h in ("12", "13", "14", "15")]
FAST = ["--epochs", "1", "--min-auc", "0.0", "--bless-tolerance", "1000"]


def _cli(*args: str) -> subprocess.CompletedProcess:
    return subprocess.run([*FRESHRANK, *args], capture_output=True, text=True, env=subprocess_env(), cwd=REPO,
                          timeout=1800)


def _land(source, data, text: str) -> None:
    span = parse_span(text)
    shutil.copytree(source / span.relpath, data / span.relpath)


@pytest.fixture(scope="module")
def hourly(tmp_path_factory):
    root = tmp_path_factory.mktemp("hourly")
    source, data, home = root / "all", root / "data", root / "home"
    made = _cli("simulate", "--out", str(source), "--start", DAY, "--days", "1", "--requests-per-day", "4800",
                "--seed", "5", "--interval", "hour")
    assert made.returncode == 0, made.stderr[-3000:]
    assert len(made.stdout.split()) == 24
    for text in reversed(HOURS):  # landing order does not matter: the span's hour does
        _land(source, data, text)
    watched = _cli("watch", "--data", str(data), "--home", str(home), "--once", *FAST)
    assert watched.returncode == 0, watched.stderr[-4000:]
    records = [json.loads(line) for line in (home / "runs.jsonl").read_text().splitlines()]
    return source, data, home, records, watched


def test_watch_runs_the_hours_in_order_exactly_once(hourly):
    source, data, home, records, watched = hourly
    assert [r["span"] for r in records] == HOURS
    assert all(r["status"] == "pushed" for r in records), records
    assert [r["window_spans"] for r in records] == [HOURS[:i + 1] for i in range(4)]
    assert f"4 span(s) to run: {', '.join(HOURS)}" in watched.stdout
    assert (home / "interval").read_text().strip() == "hour"
    assert not (home / "ingest").exists()  # the staged copies go once ExampleGen has read them

    again = _cli("watch", "--data", str(data), "--home", str(home), "--once", *FAST)
    assert again.returncode == 0 and "ran 0 span(s)" in again.stderr, again.stderr[-3000:]
    assert len((home / "runs.jsonl").read_text().splitlines()) == 4


def test_each_hour_warm_starts_from_the_previous_push_in_ml_metadata(hourly):
    _, _, home, records, _ = hourly
    lineage = Lineage.open(str(home / "metadata.sqlite"))
    chain = []
    for run_id in lineage.run_ids():
        nodes = lineage.run_nodes(run_id)
        window = nodes["SpanWindow"].outputs["window"][0]
        base = nodes["Trainer"].inputs.get("base_model", [])
        pushed = nodes["Pusher"].outputs["pushed_model"][0]
        chain.append((int(custom(window, "span")), [lineage.pushed_version_of(b.id) for b in base],
                      int(custom(pushed, "pushed_version"))))
    assert [span for span, _, _ in chain] == [parse_span(h).number for h in HOURS]
    assert chain[0][1] == []
    for previous, current in zip(chain, chain[1:], strict=False):
        assert current[1] == [previous[2]]
    assert [version for _, _, version in chain] == [r["pushed_version"] for r in records]
    assert [r["warm_started_from"] for r in records] == [None] + [r["pushed_version"] for r in records[:-1]]


def test_a_late_hour_waits_for_the_next_run_and_a_daily_span_is_refused(hourly, tmp_path):
    source, data, home, records, _ = hourly
    _land(source, data, f"{DAY}T11")
    late = _cli("watch", "--data", str(data), "--home", str(home), "--once", *FAST)
    assert late.returncode == 0, late.stderr[-3000:]
    assert f"late span(s) {DAY}T11 landed after {HOURS[-1]} ran: not run on their own" in late.stdout
    assert "ran 0 span(s)" in late.stderr
    assert len((home / "runs.jsonl").read_text().splitlines()) == 4

    daily = tmp_path / "daily"
    assert _cli("simulate", "--out", str(daily), "--start", DAY, "--requests-per-day", "50").returncode == 0
    refused = _cli("run", "--data", str(daily), "--home", str(home), *FAST)
    assert refused.returncode == 2
    assert f"holds hourly spans but span {DAY} is daily" in refused.stderr and "fresh --home" in refused.stderr
