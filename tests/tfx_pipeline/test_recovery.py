"""Recovery after a killed run, on a real sqlite ML Metadata store and serving directory."""
from __future__ import annotations

import json

from ml_metadata import metadata_store
from ml_metadata.proto import metadata_store_pb2

from tfx_pipeline import recovery

Execution, Event = metadata_store_pb2.Execution, metadata_store_pb2.Event


def _store(path) -> metadata_store.MetadataStore:
    config = metadata_store_pb2.ConnectionConfig()
    config.sqlite.filename_uri = str(path)
    return metadata_store.MetadataStore(config)


def _artifact(store, type_id, **props) -> int:
    artifact = metadata_store_pb2.Artifact(type_id=type_id, uri="/x", state=metadata_store_pb2.Artifact.LIVE)
    for key, value in props.items():
        if isinstance(value, int):
            artifact.custom_properties[key].int_value = value
        else:
            artifact.custom_properties[key].string_value = value
    return store.put_artifacts([artifact])[0]


def _execution(store, type_id, state, inputs=(), outputs=()) -> int:
    [execution_id] = store.put_executions([Execution(type_id=type_id, last_known_state=state)])
    store.put_events([Event(artifact_id=a, execution_id=execution_id, type=Event.INPUT) for a in inputs]
                     + [Event(artifact_id=a, execution_id=execution_id, type=Event.OUTPUT) for a in outputs])
    return execution_id


def test_recovery_marks_dead_executions_removes_temp_pushes_and_unblesses_unpushed_models(tmp_path):
    db, serving = tmp_path / "metadata.sqlite", tmp_path / "serving"
    store = _store(db)
    types = {name: store.put_artifact_type(metadata_store_pb2.ArtifactType(name=name))
             for name in ("Model", "ModelBlessing", "PushedModel")}
    pusher = store.put_execution_type(metadata_store_pb2.ExecutionType(name="Pusher"))
    pushed_model = _artifact(store, types["Model"])
    unpushed_model = _artifact(store, types["Model"])
    renamed_model = _artifact(store, types["Model"])  # killed after the rename, before ML Metadata
    kept = _artifact(store, types["ModelBlessing"], blessed=1, current_model_id=pushed_model)
    dangling = _artifact(store, types["ModelBlessing"], blessed=1, current_model_id=unpushed_model)
    marked = _artifact(store, types["ModelBlessing"], blessed=1, current_model_id=renamed_model)
    push = _artifact(store, types["PushedModel"], pushed=1, pushed_version="1700000000")
    _execution(store, pusher, Execution.COMPLETE, inputs=[pushed_model, kept], outputs=[push])
    dead = _execution(store, pusher, Execution.RUNNING, inputs=[unpushed_model, dangling])
    (serving / ".tmp-1700000009-77" / "variables").mkdir(parents=True)
    marker = serving / "1700000005" / "assets.extra" / "freshrank"
    marker.mkdir(parents=True)
    (marker / "pushed.json").write_text(json.dumps({"model_id": renamed_model}))

    result = recovery.recover(str(db), str(serving))

    assert result.abandoned_executions == [dead]
    assert result.removed_push_dirs == [".tmp-1700000009-77"]
    assert result.revoked_blessings == [dangling]
    store = _store(db)
    [execution] = store.get_executions_by_id([dead])
    assert execution.last_known_state == Execution.FAILED
    assert "killed or crashed" in execution.custom_properties["abandoned"].string_value
    blessed = {a.id: a.custom_properties["blessed"].int_value for a in store.get_artifacts_by_id([kept, dangling, marked])}
    assert blessed == {kept: 1, dangling: 0, marked: 1}
    assert sorted(p.name for p in serving.iterdir()) == ["1700000005"]
    # A second recovery finds nothing left to do.
    again = recovery.recover(str(db), str(serving))
    assert (again.abandoned_executions, again.removed_push_dirs, again.revoked_blessings) == ([], [], [])
