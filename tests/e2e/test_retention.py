"""Retention on a home made by real `freshrank run`s, with a real model server polling it.

One home for the module (tests run in file order and build on each other): days 1-3 run with
`--window 1 --keep-versions 2`, so from day 2 on every run's automatic gc has something to remove;
then a rollback on the collected home, day 4 warm-starts from the rollback target (a model of a run
outside the window, kept because its version is still served), a dry run, and a `freshrank gc
--keep-versions 1` while a model server with a latest-2 policy serves both remaining versions and a
client calls it in a loop.
"""
from __future__ import annotations

import datetime
import json
import os
import subprocess
import threading
import time

import pytest

from freshrank.market import simulate
from tests.helpers import FRESHRANK, REPO, subprocess_env, write_candidates
from tfx_pipeline.home import Home, read_runs
from tfx_pipeline.lineage import DELETED_REASON_KEY, Lineage

pytestmark = pytest.mark.e2e
DAY1 = datetime.date(2026, 11, 1)
DAYS = [(DAY1 + datetime.timedelta(days=i)).isoformat() for i in range(4)]
FAST = ["--epochs", "1", "--window", "1", "--min-auc", "0.0", "--bless-tolerance", "1000", "--keep-versions", "2"]


def _bytes(root) -> int:
    return sum(os.lstat(os.path.join(d, f)).st_size for d, _, files in os.walk(root) for f in files)


class State:
    def __init__(self, root):
        self.data, self.home = root / "data", root / "home"
        self.layout = Home(str(self.home))
        self.serving = self.home / "serving" / "ranker"
        self.sizes: dict[str, int] = {}
        self.records: dict[str, dict] = {}

    def cli(self, *args: str) -> subprocess.CompletedProcess:
        return subprocess.run([*FRESHRANK, *args], capture_output=True, text=True, cwd=REPO, timeout=900,
                              env=subprocess_env())

    def run(self, day: str) -> dict:
        result = self.cli("run", "--data", str(self.data), "--home", str(self.home), "--span", day, *FAST)
        assert result.returncode == 0, result.stderr[-3000:]
        self.records[day] = json.loads(result.stdout.splitlines()[-1])
        self.sizes[day] = _bytes(self.home)
        return self.records[day]

    def version(self, day: str) -> int:
        return self.records[day]["pushed_version"]

    def served(self) -> list[int]:
        return sorted(int(v) for v in os.listdir(self.serving) if v.isdigit())

    def gc_records(self) -> list[dict]:
        return read_runs(self.layout.gc_log)


@pytest.fixture(scope="module")
def home(tmp_path_factory):
    state = State(tmp_path_factory.mktemp("retention"))
    simulate(state.data, DAY1, 4, requests_per_day=300, seed=5)
    for day in DAYS[:3]:
        assert state.run(day)["status"] == "pushed"
    return state


def test_disk_use_stays_bounded_after_more_runs_than_k(home):
    d1, d2, d3 = DAYS[:3]
    assert home.served() == [home.version(d2), home.version(d3)]
    gcs = home.gc_records()
    assert [g["status"] for g in gcs] == ["done"] * 3
    assert all("span" in r for r in home.layout.runs())  # runs.jsonl: one record per run, no gc lines
    assert gcs[2]["removed_versions"] == [home.version(d1)]
    freed = sum(g["bytes_freed"] for g in gcs)
    print(f"home bytes after days 1-3 with gc: {[home.sizes[d] for d in (d1, d2, d3)]}; "
          f"without gc day 3 would hold {home.sizes[d3] + freed}")
    # From day 2 on the home is at its bound: a run adds a version and a run's outputs, gc takes
    # one of each away (without gc, day 3 alone would have added a third of the home again).
    assert home.sizes[d3] <= 1.1 * home.sizes[d2]
    assert freed >= 0.3 * home.sizes[d3]
    pipeline = home.layout.pipeline_root
    models = sorted(os.listdir(os.path.join(pipeline, "Trainer", "model")))
    assert len(models) == 2  # the models of the two served versions, nothing else
    assert len(os.listdir(os.path.join(pipeline, "CsvExampleGen", "examples"))) == 1  # the window's span
    assert sorted(os.listdir(home.layout.span_index_dir)) == ["020760.json"]


def test_removed_outputs_are_deleted_in_ml_metadata_and_lineage_and_warm_start_survive(home):
    d1, d2, d3 = DAYS[:3]
    # Each run after gc warm-started from the previous push: the model it needed was kept.
    assert home.records[d2]["warm_started_from"] == home.version(d1)
    assert home.records[d3]["warm_started_from"] == home.version(d2)
    lineage = Lineage.open(home.layout.metadata_path)
    first = lineage.run_nodes(lineage.run_contexts()[0].id)  # still readable, outputs and all
    old_model = first["Trainer"].outputs["model"][0]
    assert old_model.state == old_model.DELETED and not os.path.exists(old_model.uri)
    assert "freshrank gc" in old_model.custom_properties[DELETED_REASON_KEY].string_value
    assert first["CsvExampleGen"].outputs["examples"][0].state == old_model.DELETED
    model, blessing = lineage.latest_blessed_model()
    assert model.uri == home.records[d3]["model_uri"] and os.path.isdir(model.uri)
    second = lineage.run_nodes(lineage.run_contexts()[1].id)["Trainer"].outputs["model"][0]
    assert second.state == second.LIVE and os.path.isdir(second.uri)  # v2 is still served


def test_rollback_after_gc_and_the_next_run_warm_starts_from_the_rollback_target(home):
    d2, d3, d4 = DAYS[1:]
    result = home.cli("rollback", "--home", str(home.home))
    assert result.returncode == 0, result.stderr[-3000:]
    assert home.served() == [home.version(d2)]
    record = home.run(d4)
    # Day 2's run is outside the window: only its model, blessing and push were kept, for this.
    assert record["warm_started_from"] == home.version(d2)
    assert home.served() == [home.version(d2), home.version(d4)]
    assert (home.home / "retired" / "ranker" / str(home.version(d3)) / "saved_model.pb").exists()


def test_dry_run_lists_what_would_go_and_changes_nothing(home):
    def snapshot():
        return {os.path.join(d, f): os.lstat(os.path.join(d, f)).st_size
                for d, _, files in os.walk(home.home) for f in files if f != ".lock"}

    before = snapshot()
    result = home.cli("gc", "--home", str(home.home), "--keep-versions", "1", "--dry-run")
    assert result.returncode == 0, result.stderr[-3000:]
    out = result.stdout
    v2, v3 = home.version(DAYS[1]), home.version(DAYS[2])
    assert "remove version" in out and str(home.serving / str(v2)) in out
    assert "remove retired" in out and str(home.home / "retired" / "ranker" / str(v3)) in out
    assert "total:" in out and "dry run: nothing changed" in out
    assert snapshot() == before


def test_a_polling_model_server_never_fails_a_request_while_gc_runs(home, tmp_path):
    """A latest-2 server has loaded both served versions; gc takes the older one away (and the
    retired one) while a client ranks in a loop: every request succeeds and the server unloads it."""
    from serving.client import RankError, rank, read_candidates_csv
    from serving.process import ServerProcess

    v2, v4 = home.version(DAYS[1]), home.version(DAYS[3])
    config = tmp_path / "models.config"
    config.write_text(f'model_config_list {{ config {{ name: "ranker" base_path: "{home.serving}" '
                      'model_platform: "tensorflow" model_version_policy { latest { num_versions: 2 } } } }')
    candidates = tmp_path / "candidates.csv"
    write_candidates(candidates)
    rows = read_candidates_csv(candidates)
    server = ServerProcess(["--port=0", f"--model_config_file={config}", "--file_system_poll_wait_seconds=1"],
                           tmp_path / "server.log", env=subprocess_env(), cwd=str(REPO))
    stop, ok, failures = threading.Event(), [], []

    def client(address):
        while not stop.is_set():
            try:
                rank(address, "跑步鞋 男", rows, timeout=30)
                ok.append(time.monotonic())
            except RankError as error:
                failures.append(str(error))

    try:
        server.wait_ready(180)
        for version in (v2, v4):
            server.wait_for_log(rf"Successfully loaded servable version .*{version}", 180)
        thread = threading.Thread(target=client, args=(server.grpc_address,), daemon=True)
        thread.start()
        while len(ok) < 5 and not failures:
            time.sleep(0.1)
        result = home.cli("gc", "--home", str(home.home), "--keep-versions", "1")
        assert result.returncode == 0, result.stderr[-3000:]
        server.wait_for_log(rf"Done unloading servable version .*{v2}", 60)
        calls_after_gc = len(ok)
        while len(ok) < calls_after_gc + 5 and not failures:
            time.sleep(0.1)
        stop.set()
        thread.join(60)
    finally:
        stop.set()
        server.stop(60)
    assert failures == []
    assert len(ok) >= 10
    assert home.served() == [v4]
    assert os.listdir(home.home / "retired" / "ranker") == []
    assert os.listdir(home.layout.trash_dir) == []
    assert "gc: freed" in result.stdout and str(home.serving / str(v2)) in result.stdout
