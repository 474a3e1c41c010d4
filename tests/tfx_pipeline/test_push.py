"""tfx_pipeline.push (AtomicPusher's filesystem half): a version appears whole, leftovers of a killed push go away."""
from __future__ import annotations

import os
import signal
import subprocess
import sys
import time

from serving.versions import scan_base_path
from tests.helpers import REPO, subprocess_env
from tfx_pipeline import push as atomic_pusher


def _model(tmp_path):
    model = tmp_path / "model"
    (model / "variables").mkdir(parents=True)
    (model / "variables" / "variables.index").write_bytes(b"i" * 1000)
    (model / "saved_model.pb").write_bytes(b"pb")
    return model


def test_version_is_unix_seconds_but_always_above_the_newest(tmp_path):
    base = tmp_path / "base"
    assert atomic_pusher.next_version(str(base), 1700000000.7) == 1700000000
    (base / "1700000005").mkdir(parents=True)
    (base / ".tmp-1800000000-12").mkdir()
    assert atomic_pusher.next_version(str(base), 1700000000.7) == 1700000006


def test_push_renames_a_complete_copy_into_place_and_removes_leftovers(tmp_path):
    model, base = _model(tmp_path), tmp_path / "base"
    (base / ".tmp-123-99" / "variables").mkdir(parents=True)  # a push killed mid-copy
    final = atomic_pusher.push_atomically(str(model), str(base), 1700000000)
    assert sorted(os.listdir(base)) == ["1700000000"]
    assert (base / "1700000000" / "saved_model.pb").read_bytes() == b"pb"
    assert (base / "1700000000" / "variables" / "variables.index").stat().st_size == 1000
    assert final == str(base / "1700000000")


def test_a_push_killed_before_the_rename_leaves_no_version_the_server_would_load(tmp_path):
    """A real process pushing with the test hook's pause, killed with SIGKILL mid-push."""
    model, base = _model(tmp_path), tmp_path / "base"
    script = ("from tfx_pipeline.push import push_atomically; "
              f"push_atomically({str(model)!r}, {str(base)!r}, 1700000000)")
    env = {**subprocess_env(), atomic_pusher.PAUSE_ENV: "60"}
    proc = subprocess.Popen([sys.executable, "-c", script], cwd=REPO, env=env)
    try:
        deadline = time.time() + 60
        while not any(n.startswith(".tmp-") for n in (os.listdir(base) if base.exists() else [])):
            assert time.time() < deadline and proc.poll() is None
            time.sleep(0.05)
        os.kill(proc.pid, signal.SIGKILL)
        proc.wait(timeout=30)
    finally:
        if proc.poll() is None:
            proc.kill()
    leftovers = os.listdir(base)
    assert len(leftovers) == 1 and leftovers[0].startswith(".tmp-1700000000-")
    scan = scan_base_path(str(base))  # the model server's view: no version at all
    assert scan.versions == {} and scan.incomplete == {}
    atomic_pusher.push_atomically(str(model), str(base), 1700000001)
    assert os.listdir(base) == ["1700000001"]
