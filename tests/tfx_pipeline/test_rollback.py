"""Rollback on a real sqlite ML Metadata store and serving directory: what moves, what is un-blessed."""
from __future__ import annotations

import pytest
from ml_metadata import metadata_store
from ml_metadata.proto import metadata_store_pb2

from tfx_pipeline import rollback

Execution, Event = metadata_store_pb2.Execution, metadata_store_pb2.Event


def _version(serving, number):
    (serving / str(number) / "variables").mkdir(parents=True)
    (serving / str(number) / "saved_model.pb").write_bytes(b"pb")


def _home(tmp_path, versions):
    serving = tmp_path / "home" / "serving" / "ranker"
    serving.mkdir(parents=True)
    for number in versions:
        _version(serving, number)
    (serving / ".tmp-99-1").mkdir()  # a push in progress is never a version
    return tmp_path / "home", serving


@pytest.mark.parametrize("versions, to, error, words", [
    ([], None, rollback.RollbackError, "nothing to roll back"),
    ([10], None, rollback.RollbackError, "10 is the only version"),
    ([10, 20], 5, rollback.UnknownVersion, "the versions there are 10, 20"),
    ([10, 20], 20, rollback.RollbackError, "already the newest"),
])
def test_plan_refuses_with_the_reason(tmp_path, versions, to, error, words):
    _, serving = _home(tmp_path, versions)
    with pytest.raises(error, match=words):
        rollback.plan(str(serving), to)


def test_plan_retires_the_newest_or_everything_above_to(tmp_path):
    _, serving = _home(tmp_path, [10, 20, 30])
    assert rollback.plan(str(serving), None) == rollback.Plan(retire=[30], serving_after=20)
    assert rollback.plan(str(serving), 10) == rollback.Plan(retire=[20, 30], serving_after=10)


def test_retire_unblesses_the_pushed_models_and_moves_their_directories(tmp_path):
    home, serving = _home(tmp_path, [10, 20])
    config = metadata_store_pb2.ConnectionConfig()
    config.sqlite.filename_uri = str(home / "metadata.sqlite")
    store = metadata_store.MetadataStore(config)
    types = {n: store.put_artifact_type(metadata_store_pb2.ArtifactType(name=n))
             for n in ("Model", "ModelBlessing", "PushedModel")}
    pusher = store.put_execution_type(metadata_store_pb2.ExecutionType(name="Pusher"))
    blessings = {}
    for version in (10, 20):
        [model] = store.put_artifacts([metadata_store_pb2.Artifact(type_id=types["Model"])])
        blessing = metadata_store_pb2.Artifact(type_id=types["ModelBlessing"])
        blessing.custom_properties["blessed"].int_value = 1
        blessing.custom_properties["current_model_id"].int_value = model
        [blessings[version]] = store.put_artifacts([blessing])
        pushed = metadata_store_pb2.Artifact(type_id=types["PushedModel"])
        pushed.custom_properties["pushed"].int_value = 1
        pushed.custom_properties["pushed_version"].string_value = str(version)
        [pushed_id] = store.put_artifacts([pushed])
        [execution] = store.put_executions([Execution(type_id=pusher, last_known_state=Execution.COMPLETE)])
        store.put_events([Event(artifact_id=model, execution_id=execution, type=Event.INPUT),
                          Event(artifact_id=blessings[version], execution_id=execution, type=Event.INPUT),
                          Event(artifact_id=pushed_id, execution_id=execution, type=Event.OUTPUT)])

    record = rollback.retire(str(home), "ranker", None)

    assert record["retired_versions"] == [20] and record["serving_version"] == 10
    assert record["revoked_blessings"] == {"20": [blessings[20]]}
    assert sorted(p.name for p in serving.iterdir()) == [".tmp-99-1", "10"]
    assert (home / "retired" / "ranker" / "20" / "saved_model.pb").exists()
    after = {a.id: a for a in store.get_artifacts_by_id(list(blessings.values()))}
    assert after[blessings[20]].custom_properties["blessed"].int_value == 0
    assert after[blessings[20]].custom_properties["retired"].int_value == 1
    assert after[blessings[10]].custom_properties["blessed"].int_value == 1
    assert "span" not in record and record["event"] == "rollback"
