"""Faults injected for real into `freshrank run` on one home: malformed rows, schema breaks, a held
lock, a rollback, and `kill -9` during evaluation and during the push.

One home for the whole module (tests run in file order and build on each other) to keep the wall
time down: day 1 pushes v1, day 2 (two malformed rows) pushes v2, days 4 (malformed), 5 (schema)
and 6 (flipped labels) are rejected, so are days 7-9 (labels shuffled across rows), the rollback retires v2, and day 3 is killed twice before a
rerun pushes v3 warm-started from v1.
The kill during training is tests/e2e/test_watch.py (same run_once, under `freshrank watch`).
Lock: a second `freshrank run` while the first is paused mid-push refuses with exit 1.
"""
from __future__ import annotations

import json
import os
import shutil
import signal
import subprocess
import time

import numpy as np
import pytest
from ml_metadata import metadata_store
from ml_metadata.proto import metadata_store_pb2

from freshrank.market import simulate
from serving.versions import scan_base_path
from tests.helpers import FRESHRANK, REPO, subprocess_env
from tfx_pipeline.push import PAUSE_ENV

pytestmark = pytest.mark.e2e
# One epoch on a one-span window: these tests are about faults, not model quality.
FAST = ["--epochs", "1", "--window", "1", "--min-auc", "0.0", "--bless-tolerance", "1000"]
DAY1, DAY2, DAY3, DAY4, DAY5, DAY6 = (f"2026-11-0{i}" for i in range(1, 7))
# Days 7-9: day 3 with its (clicked, purchased) pairs shuffled across the rows, one seed each.
SHUFFLED = {f"2026-11-0{7 + seed}": seed for seed in range(3)}


class Home:
    def __init__(self, root):
        self.data, self.home = root / "data", root / "home"
        self.serving = self.home / "serving" / "ranker"
        self.versions: dict[str, int] = {}

    def cli(self, *args: str, env: dict | None = None) -> subprocess.CompletedProcess:
        return subprocess.run([*FRESHRANK, *args], capture_output=True, text=True, cwd=REPO, timeout=900,
                              env={**subprocess_env(), **(env or {})})

    def run(self, day: str, *extra: str) -> subprocess.CompletedProcess:
        return self.cli("run", "--data", str(self.data), "--home", str(self.home), "--span", day, *FAST, *extra)

    def records(self) -> list[dict]:
        path = self.home / "runs.jsonl"
        return [json.loads(line) for line in path.read_text().splitlines()] if path.exists() else []

    def served(self) -> list[str]:
        return sorted(os.listdir(self.serving))

    def store(self) -> metadata_store.MetadataStore:
        config = metadata_store_pb2.ConnectionConfig()
        config.sqlite.filename_uri = str(self.home / "metadata.sqlite")
        return metadata_store.MetadataStore(config)


def _mutate_csv(src_day: str, dst_day: str, data, mutate) -> None:
    """Copies a landed span to a new day, rewriting its CSV lines (bytes) with `mutate`."""
    src, dst = data / src_day, data / dst_day
    shutil.copytree(src, dst)
    part = next(dst.glob("*.csv"))
    lines = part.read_bytes().splitlines(keepends=True)
    part.write_bytes(b"".join(mutate(lines)))


def _shuffle_labels(lines: list[bytes], seed: int) -> list[bytes]:
    """Every row keeps its impression but gets another row's (clicked, purchased) pair: every rate,
    range and distribution TFDV sees is unchanged, only the labels' relation to the page is lost."""
    header, rows = lines[0], [line.rstrip(b"\r\n").rsplit(b",", 2) for line in lines[1:]]
    order = np.random.default_rng(seed).permutation(len(rows))
    return [header, *(b",".join([row[0], *rows[j][1:]]) + b"\n" for row, j in zip(rows, order, strict=True))]


@pytest.fixture(scope="module")
def home(tmp_path_factory):
    state = Home(tmp_path_factory.mktemp("reliability"))
    simulate(state.data, __import__("datetime").date(2026, 11, 1), 3, requests_per_day=300, seed=5)

    def two_bad_rows(lines):
        lines[10] = lines[10].rstrip(b"\n").rsplit(b",", 1)[0] + b"\n"  # one field short
        lines[20] = b"\xff\xfe" + lines[20]  # invalid UTF-8
        return lines

    path = next((state.data / DAY2).glob("*.csv"))
    path.write_bytes(b"".join(two_bad_rows(path.read_bytes().splitlines(keepends=True))))
    # Day 4: 1 % of the rows with bad quoting. Day 5: an extra column the schema does not know.
    _mutate_csv(DAY3, DAY4, state.data,
                lambda lines: [b'"' + line if i % 100 == 50 else line for i, line in enumerate(lines)])
    _mutate_csv(DAY3, DAY5, state.data,
                lambda lines: [line.rstrip(b"\r\n") + (b",coupon\n" if i == 0 else b",SAVE10\n")
                               for i, line in enumerate(lines)])
    # Day 6: every `purchased` flipped, everything else valid (a poisoned span).
    _mutate_csv(DAY3, DAY6, state.data,
                lambda lines: [line if i == 0 else line.rstrip(b"\r\n")[:-1] + (b"0\n" if line.rstrip()[-1:] == b"1"
                                                                              else b"1\n")
                               for i, line in enumerate(lines)])
    for day, seed in SHUFFLED.items():
        _mutate_csv(DAY3, day, state.data, lambda lines, seed=seed: _shuffle_labels(lines, seed))
    result = state.run(DAY1)
    assert result.returncode == 0, result.stderr[-3000:]
    state.versions["v1"] = json.loads(result.stdout.splitlines()[-1])["pushed_version"]
    return state


def test_malformed_rows_under_the_limit_are_quarantined_and_the_good_rows_train(home):
    result = home.run(DAY2)
    assert result.returncode == 0, result.stderr[-3000:]
    record = json.loads(result.stdout.splitlines()[-1])
    assert record["status"] == "pushed" and record["quarantined_rows"] == 2
    assert record["warm_started_from"] == home.versions["v1"]
    home.versions["v2"] = record["pushed_version"]
    bad = [json.loads(line) for line in (home.home / "quarantine" / DAY2 / "bad_rows.jsonl").read_text().splitlines()]
    assert [(b["file"], b["line"]) for b in bad] == [("part-00000.csv", 11), ("part-00000.csv", 21)]
    assert "wrong field count" in bad[0]["reason"] and "invalid UTF-8" in bad[1]["reason"]
    # Every other row reached training: the span's split sizes add up to the good rows.
    total = len((home.data / DAY2 / "part-00000.csv").read_bytes().splitlines()) - 1
    cleaned = home.home / "quarantine" / "cleaned" / DAY2 / "part-00000.csv"
    assert len(cleaned.read_bytes().splitlines()) - 1 == total - 2


def test_too_many_malformed_rows_reject_the_span_before_anything_runs(home):
    before = home.served()
    result = home.run(DAY4)
    assert result.returncode == 3, result.stderr[-3000:]
    assert f"span {DAY4}: 30 of 3000 rows (1.00%) are malformed" in result.stderr
    assert f"span {DAY4}, file part-00000.csv line 51: bad quoting" in result.stderr
    assert "--max-bad-row-share" in result.stderr and "rerun" in result.stderr
    assert home.records()[-1]["status"] == "rejected_data" and home.records()[-1]["span"] == DAY4
    assert home.served() == before


def test_a_span_that_breaks_the_schema_is_rejected_and_nothing_is_pushed(home):
    before = home.served()
    result = home.run(DAY5)
    assert result.returncode == 3, result.stderr[-3000:]
    assert f"span {DAY5}, split train, feature 'coupon'" in result.stderr
    record = home.records()[-1]
    assert record["status"] == "rejected_data" and record["pushed_version"] is None
    assert any("coupon" in p for p in record["problems"])
    assert home.served() == before
    trainers = home.store().get_executions_by_type("tfx.components.trainer.component.Trainer")
    assert len(trainers) == 2  # days 1 and 2 only: the rejected span never reached training


def test_poisoned_labels_are_stopped_and_the_served_version_stays(home):
    """Flipped labels fool an evaluation on the same (flipped) span, so the label-rate drift gate
    stops them before training; see docs/reliability.md."""
    before = home.served()
    result = home.run(DAY6)
    assert result.returncode == 3, result.stderr[-3000:]
    assert f"span {DAY6}, split train, feature 'purchased'" in result.stderr
    assert "jensen-shannon divergence" in result.stderr.lower()
    assert home.records()[-1]["status"] == "rejected_data" and not home.records()[-1]["blessed"]
    assert home.served() == before


def test_labels_shuffled_across_a_span_never_change_the_served_model(home):
    """The drift gates see nothing (rates kept), and these runs bless anything (tolerance 1000 standard errors, no AUC
    floor): the label gate alone must stop every shuffle before training (tfx_pipeline/label_check.py)."""
    before = home.served()
    trainers = len(home.store().get_executions_by_type("tfx.components.trainer.component.Trainer"))
    for day in SHUFFLED:
        result = home.run(day)
        assert result.returncode == 3, result.stderr[-3000:]
        assert f"span {day}, split train, feature 'clicked': 'clicked' no longer falls with position" in result.stderr
        assert "jensen-shannon" not in result.stderr.lower()  # the rate gates passed it
        assert home.records()[-1]["status"] == "rejected_data" and home.records()[-1]["span"] == day
        assert home.served() == before
    assert len(home.store().get_executions_by_type("tfx.components.trainer.component.Trainer")) == trainers


def test_rollback_retires_the_newest_version_and_says_why_when_it_cannot(home):
    v1, v2 = home.versions["v1"], home.versions["v2"]
    assert home.served() == [str(v1), str(v2)]
    unknown = home.cli("rollback", "--home", str(home.home), "--to", "5")
    assert unknown.returncode == 2 and f"the versions there are {v1}, {v2}" in unknown.stderr
    result = home.cli("rollback", "--home", str(home.home))
    assert result.returncode == 0, result.stderr[-3000:]
    assert home.served() == [str(v1)]
    assert (home.home / "retired" / "ranker" / str(v2) / "saved_model.pb").exists()
    record = home.records()[-1]
    assert record["event"] == "rollback" and record["retired_versions"] == [v2]
    assert record["serving_version"] == v1 and "span" not in record  # never mistaken for a span run
    from freshrank.watch import done_spans

    assert done_spans(str(home.home / "runs.jsonl")) == {DAY1, DAY2, DAY4, DAY5, DAY6, *SHUFFLED}
    last = home.cli("rollback", "--home", str(home.home))
    assert last.returncode == 1 and "is the only version" in last.stderr
    assert home.served() == [str(v1)]


def _start(home: Home, day: str, log_path, env: dict | None = None) -> subprocess.Popen:
    log = open(log_path, "w")
    proc = subprocess.Popen([*FRESHRANK, "run", "--data", str(home.data), "--home", str(home.home), "--span", day,
                             *FAST], cwd=REPO, env={**subprocess_env(), **(env or {})}, stdout=log, stderr=log,
                            start_new_session=True)
    log.close()
    return proc


def _wait_for(proc: subprocess.Popen, log_path, ready, timeout=900) -> None:
    deadline = time.time() + timeout
    while not ready():
        assert proc.poll() is None, log_path.read_text()[-3000:]
        assert time.time() < deadline, "the trigger never came"
        time.sleep(0.2)


def _kill_when(proc: subprocess.Popen, log_path, ready) -> None:
    _wait_for(proc, log_path, ready)
    os.killpg(proc.pid, signal.SIGKILL)
    proc.wait(timeout=60)


def test_kill_9_during_evaluation_and_during_push_then_a_rerun_completes(home, tmp_path):
    """Also the home lock: a second run started while the first is mid-push refuses with exit 1."""
    runs_before = len(home.records())
    v1 = home.versions["v1"]

    log = tmp_path / "eval.log"
    proc = _start(home, DAY3, log)
    # Logged by the Evaluator's executor once its execution is registered, before TFMA runs.
    _kill_when(proc, log, lambda: "INFO:absl:Evaluating model." in log.read_text())
    assert home.served() == [str(v1)]

    log = tmp_path / "push.log"
    proc = _start(home, DAY3, log, env={PAUSE_ENV: "600"})  # pauses between the copy and the rename
    _wait_for(proc, log, lambda: any(n.startswith(".tmp-") for n in home.served()))
    # Two runs on one home: while this one is pushing, a second refuses at once (exit 1).
    second = home.run(DAY3)
    assert second.returncode == 1, second.stderr[-3000:]
    assert f"{home.home} is in use by pid {proc.pid}" in second.stderr
    assert "only one run per --home" in second.stderr
    os.killpg(proc.pid, signal.SIGKILL)
    proc.wait(timeout=60)
    leftover = [n for n in home.served() if n.startswith(".tmp-")]
    assert len(leftover) == 1 and home.served() == sorted([str(v1), *leftover])
    assert set(scan_base_path(str(home.serving)).versions) == {v1}  # the server sees no partial version
    assert len(home.records()) == runs_before  # killed runs leave no record

    result = home.run(DAY3)
    assert result.returncode == 0, result.stderr[-3000:]
    record = json.loads(result.stdout.splitlines()[-1])
    assert record["status"] == "pushed"
    # The rollback holds: the warm start is v1, not the retired v2.
    assert record["warm_started_from"] == v1
    assert home.served() == sorted([str(v1), str(record["pushed_version"])])
    for version in home.served():
        assert (home.serving / version / "saved_model.pb").exists()
    # ML Metadata: nothing claims to be running; the killed executions are marked, with the reason.
    executions = home.store().get_executions()
    unfinished = (metadata_store_pb2.Execution.NEW, metadata_store_pb2.Execution.RUNNING)
    assert [e.id for e in executions if e.last_known_state in unfinished] == []
    abandoned = [e for e in executions if "abandoned" in e.custom_properties]
    assert all(e.last_known_state == metadata_store_pb2.Execution.FAILED for e in abandoned)
    kinds = {t.name.rsplit(".", 1)[-1] for t in home.store().get_execution_types_by_id([e.type_id for e in abandoned])}
    assert kinds == {"Evaluator", "AtomicPusher"}, kinds  # the two killed steps, nothing else
    assert len(home.records()) == runs_before + 1
