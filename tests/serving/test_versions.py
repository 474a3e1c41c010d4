"""Version lifecycle on a polled base path: new versions, corrupt versions, partial copies,
rollback, warmup, retries, and availability during swaps under load.

One server polls the base path every second (latest{1} policy, one load retry 0.1 s apart).
Tests run in file order; each drops new version directories and waits for the server.
"""
from __future__ import annotations

import json
import os
import shutil
import threading
import time
from pathlib import Path

import grpc
import pytest
from tensorflow.core.framework import types_pb2
from tensorflow_serving.apis import (
    get_model_status_pb2,
    predict_pb2,
    prediction_log_pb2,
)

RPC_TIMEOUT = 20.0
POLL_SECONDS = 1
AVAILABLE, END = 30, 50


@pytest.fixture(scope="module")
def base(tmp_path_factory) -> Path:
    return tmp_path_factory.mktemp("versions") / "default"


@pytest.fixture(scope="module")
def staging(tmp_path_factory) -> Path:
    return tmp_path_factory.mktemp("staging")


@pytest.fixture(scope="module")
def server(models, base, tmp_path_factory, helpers):
    helpers.copy_version(models.half_plus_two, base, 1)
    proc = helpers.start_module_server(tmp_path_factory, "versions_log", [
        "--model_name=default", f"--model_base_path={base}",
        f"--file_system_poll_wait_seconds={POLL_SECONDS}",
        "--max_num_load_retries=1", "--load_retry_interval_micros=100000",
    ])
    yield proc
    proc.stop()


def predict_request(x=2.0):
    request = predict_pb2.PredictRequest()
    request.model_spec.name = "default"
    request.inputs["x"].dtype = types_pb2.DT_FLOAT
    request.inputs["x"].float_val.append(x)
    request.inputs["x"].tensor_shape.dim.add().size = 1
    return request


def served_version(stub) -> int:
    return stub.Predict(predict_request(), RPC_TIMEOUT).model_spec.version.value


def statuses(model_stub) -> dict[int, tuple[int, int, str]]:
    request = get_model_status_pb2.GetModelStatusRequest()
    request.model_spec.name = "default"
    response = model_stub.GetModelStatus(request, RPC_TIMEOUT)
    return {s.version: (s.state, s.status.error_code, s.status.error_message)
            for s in response.model_version_status}


def wait_until(predicate, timeout=20.0, interval=0.05):
    deadline = time.monotonic() + timeout
    while not predicate():
        if time.monotonic() > deadline:
            raise AssertionError("condition not reached in time")
        time.sleep(interval)


def drop_version(src: Path, base: Path, staging: Path, version: int) -> None:
    """Copies next to the base path, then renames in: the version appears complete at once."""
    tmp = staging / f"v{version}"
    shutil.copytree(src, tmp)
    os.rename(tmp, base / str(version))


def test_initial_version_is_available(stub, model_stub):
    assert served_version(stub) == 1
    assert statuses(model_stub) == {1: (AVAILABLE, 0, "")}


def test_new_version_available_within_poll_interval_and_old_version_ends(
        stub, model_stub, models, base, staging, server):
    drop_version(models.half_plus_two, base, staging, 2)
    start = time.monotonic()
    wait_until(lambda: served_version(stub) == 2, timeout=10)
    elapsed = time.monotonic() - start
    assert elapsed < POLL_SECONDS + 1.5, f"took {elapsed:.2f}s"
    wait_until(lambda: statuses(model_stub).get(1, (0,))[0] == END)
    assert statuses(model_stub) == {2: (AVAILABLE, 0, ""), 1: (END, 0, "")}
    server.wait_for_log(r"Successfully loaded servable version \{name: default version: 2\}")
    server.wait_for_log(r"Done unloading servable version \{name: default version: 1\}")


def test_corrupt_version_keeps_old_version_serving_and_status_shows_failure(
        stub, model_stub, base, server, helpers):
    broken = base / "3"
    (broken / "variables").mkdir(parents=True)
    (broken / "saved_model.pb").write_bytes(b"this is not a SavedModel")
    wait_until(lambda: statuses(model_stub).get(3, (0,))[0] == END)
    state, code, message = statuses(model_stub)[3]
    assert code != 0 and message, "a failed version must carry its error"
    assert served_version(stub) == 2
    assert statuses(model_stub)[2] == (AVAILABLE, 0, "")
    # One retry (--max_num_load_retries=1), then the version gives up.
    assert server.log_text().count("Retrying load of {name: default version: 3}") == 1
    status, body = helpers.call_rest(f"{server.rest_url}/v1/models/default/versions/3")
    entry = json.loads(body)["model_version_status"][0]
    assert status == 200 and entry["state"] == "END"
    assert entry["status"]["error_code"] != "OK" and entry["status"]["error_message"]


def test_partial_copy_is_not_loaded_until_saved_model_pb_arrives(
        stub, model_stub, models, base, server):
    partial = base / "4"
    shutil.copytree(models.half_plus_two / "variables", partial / "variables")
    server.wait_for_log(r"Version directory \S+/4 has no saved_model.pb yet")
    time.sleep(POLL_SECONDS + 0.5)
    assert 4 not in statuses(model_stub)
    assert served_version(stub) == 2
    shutil.copy(models.half_plus_two / "saved_model.pb", partial / "saved_model.pb")
    wait_until(lambda: served_version(stub) == 4, timeout=10)
    wait_until(lambda: statuses(model_stub)[2][0] == END)


def test_removing_newest_version_rolls_back_without_gap(stub, model_stub, base):
    # Version 3 (corrupt) is newer than 2: while it is on disk it stays the aspired version.
    shutil.rmtree(base / "3")
    shutil.rmtree(base / "4")
    wait_until(lambda: served_version(stub) == 2, timeout=10)
    wait_until(lambda: statuses(model_stub)[4][0] == END)
    assert statuses(model_stub)[2] == (AVAILABLE, 0, "")


def write_warmup(version_dir: Path, records: list[bytes]) -> None:
    import tensorflow as tf

    path = version_dir / "assets.extra" / "tf_serving_warmup_requests"
    path.parent.mkdir(parents=True, exist_ok=True)
    with tf.io.TFRecordWriter(str(path)) as writer:
        for record in records:
            writer.write(record)


def test_warmup_is_replayed_and_a_bad_warmup_file_fails_the_load(
        stub, model_stub, models, base, staging, server):
    log = prediction_log_pb2.PredictionLog()
    log.predict_log.request.CopyFrom(predict_request())
    good = staging / "good"
    shutil.copytree(models.half_plus_two, good)
    write_warmup(good, [log.SerializeToString()] * 3)
    os.rename(good, base / "5")
    wait_until(lambda: served_version(stub) == 5, timeout=10)
    server.wait_for_log(r"5/assets.extra/tf_serving_warmup_requests. Number of warmup records "
                        r"read: 3\.")
    bad = staging / "bad"
    shutil.copytree(models.half_plus_two, bad)
    (bad / "assets.extra").mkdir()
    (bad / "assets.extra" / "tf_serving_warmup_requests").write_bytes(b"\x00garbage" * 10)
    os.rename(bad, base / "6")
    wait_until(lambda: statuses(model_stub).get(6, (0,))[0] == END)
    _, code, message = statuses(model_stub)[6]
    assert code == grpc.StatusCode.DATA_LOSS.value[0]
    assert "Please verify your warmup data is in TFRecord format." in message
    assert served_version(stub) == 5


CLIENTS = 32


def test_zero_failed_requests_while_three_versions_swap_in_and_a_corrupt_one_lands_under_load(
        stub, model_stub, models, base, staging):
    """32 concurrent clients; versions 7 and 8 swap in, a corrupt 9 lands, 10 swaps in past it."""
    failures: list[str] = []
    seen: set[int] = set()
    count = [0]
    stop = threading.Event()

    def hammer():
        while not stop.is_set():
            try:
                result = stub.Predict(predict_request(), RPC_TIMEOUT)
                assert result.outputs["y"].float_val[0] == 3.0
                seen.add(result.model_spec.version.value)
                count[0] += 1
            except Exception as exc:  # noqa: BLE001 - every failure is recorded
                failures.append(repr(exc))

    threads = [threading.Thread(target=hammer) for _ in range(CLIENTS)]
    for thread in threads:
        thread.start()
    try:
        for version in (7, 8):
            drop_version(models.half_plus_two, base, staging, version)
            wait_until(lambda v=version: v in seen, timeout=15)
        corrupt = staging / "v9"
        (corrupt / "variables").mkdir(parents=True)
        (corrupt / "saved_model.pb").write_bytes(b"not a SavedModel")
        os.rename(corrupt, base / "9")
        wait_until(lambda: statuses(model_stub).get(9, (0,))[0] == END, timeout=15)
        drop_version(models.half_plus_two, base, staging, 10)
        wait_until(lambda: 10 in seen, timeout=15)
        wait_until(lambda: statuses(model_stub)[8][0] == END, timeout=15)
    finally:
        stop.set()
        for thread in threads:
            thread.join()
    assert failures == []
    assert {7, 8, 10} <= seen and 9 not in seen
    assert statuses(model_stub)[9][1] != 0  # the corrupt version failed to load and says so
    assert count[0] > 200


def test_sigterm_shuts_down_cleanly(server):
    server.stop()
    assert server.proc.returncode == 0
    assert "Server stopped" in server.log_text()


def test_finished_versions_is_the_one_rule_for_every_lister(tmp_path):
    """Server, pusher, rollback and the serving-config export all list finished versions this way."""
    from serving.versions import finished_versions

    for name, files in (("1", ["saved_model.pb"]), ("002", ["saved_model.pbtxt"]), ("3", ["variables.index"]),
                        (".tmp-4-99", ["saved_model.pb"]), ("x5", ["saved_model.pb"])):
        (tmp_path / name).mkdir()
        for f in files:
            (tmp_path / name / f).write_bytes(b"")
    (tmp_path / "6").write_bytes(b"")  # a file, not a version directory
    assert finished_versions(str(tmp_path)) == [1, 2]
    assert finished_versions(str(tmp_path / "missing")) == []
    # Object stores list folders with a trailing slash; their listers are passed in.
    assert finished_versions(str(tmp_path), lambda p: [n + "/" for n in os.listdir(p)], os.path.isfile) == [1, 2]
