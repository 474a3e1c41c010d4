"""Crash recovery at the start of a run: what a `kill -9` of the previous run left behind.

A killed run leaves two kinds of debris. In ML Metadata, the executions it had started stay NEW or
RUNNING forever (nothing else will ever finish them), which makes the store claim work is in
progress when none is. In the serving directory, a push killed mid-copy leaves a hidden
`.tmp-<version>-<pid>` directory (never a numbered one: see components/atomic_pusher.py).

`recover` runs under the home lock, so no other run can be live: every NEW/RUNNING execution is
marked FAILED with a custom property saying why, every temporary push directory is removed, and a
model blessed by a run that died before its push finished loses its blessing (it never served, so
it must not become the next warm start or baseline).
Outputs of abandoned executions are never read: TFX resolves inputs from COMPLETE executions'
published artifacts only, and the next run starts a new pipeline-run context.
"""
from __future__ import annotations

import dataclasses
import logging
import os
import time

from ml_metadata.proto import metadata_store_pb2

from tfx_pipeline.lineage import Lineage
from tfx_pipeline.push import pushed_model_ids, remove_leftovers

log = logging.getLogger("freshrank.recovery")
ABANDONED_KEY = "abandoned"
_UNFINISHED = (metadata_store_pb2.Execution.NEW, metadata_store_pb2.Execution.RUNNING)


@dataclasses.dataclass
class Recovered:
    abandoned_executions: list[int]
    removed_push_dirs: list[str]
    revoked_blessings: list[int]


def abandon_unfinished_executions(metadata_path: str) -> list[int]:
    """Marks executions a dead run left NEW/RUNNING as FAILED; returns their ids."""
    if not os.path.exists(metadata_path):
        return []
    store = Lineage.open(metadata_path, writable=True).store
    stale = [e for e in store.get_executions() if e.last_known_state in _UNFINISHED]
    for execution in stale:
        execution.last_known_state = metadata_store_pb2.Execution.FAILED
        execution.custom_properties[ABANDONED_KEY].string_value = (
            f"its run ended without finishing it (killed or crashed); marked by the next run at "
            f"{time.strftime('%Y-%m-%dT%H:%M:%SZ', time.gmtime())}"
        )
    if stale:
        store.put_executions(stale)
        log.warning("marked %d execution(s) of a killed run as FAILED: %s", len(stale), [e.id for e in stale])
    return [e.id for e in stale]


def revoke_unpushed_blessings(metadata_path: str, serving_dir: str) -> list[int]:
    """Un-blesses models whose run died between the Evaluator's blessing and a finished push.

    The warm start and the Evaluator's baseline come from the latest *blessed* model. A run killed
    after the blessing but before the push would otherwise make a model that never served the base
    of the next update and the yardstick it must beat. A model counts as pushed if a PushedModel
    with `pushed` = 1 was published for it, or if a version in the serving directory carries its
    push marker (killed after the rename, before ML Metadata heard of it).
    """
    if not os.path.exists(metadata_path):
        return []
    lineage = Lineage.open(metadata_path, writable=True)
    store = lineage.store
    pushed = set(pushed_model_ids(serving_dir))
    for artifact in store.get_artifacts_by_type("PushedModel"):
        if _int(artifact, "pushed") == 1:
            for execution_id in lineage.producers_of(artifact.id):
                pushed |= {a.id for a in lineage.inputs_of(execution_id)}
    revoked = []
    for blessing in store.get_artifacts_by_type("ModelBlessing"):
        if _int(blessing, "blessed") != 1 or _int(blessing, "current_model_id") in pushed:
            continue
        blessing.custom_properties["blessed"].int_value = 0
        blessing.custom_properties[ABANDONED_KEY].string_value = (
            "its run ended before the model was pushed, so it never served; un-blessed by the next run"
        )
        revoked.append(blessing)
    if revoked:
        store.put_artifacts(revoked)
        log.warning("un-blessed %d model(s) whose push never finished", len(revoked))
    return [b.id for b in revoked]


def recover(metadata_path: str, serving_dir: str) -> Recovered:
    """Cleans up after a killed run; call with the home lock held, before the next run starts."""
    return Recovered(
        abandon_unfinished_executions(metadata_path),
        remove_leftovers(serving_dir),
        revoke_unpushed_blessings(metadata_path, serving_dir),
    )


def _int(artifact: metadata_store_pb2.Artifact, key: str) -> int | None:
    value = artifact.custom_properties.get(key)
    if value is None:
        return None
    kind = value.WhichOneof("value")
    if kind == "int_value":
        return value.int_value
    if kind == "string_value" and value.string_value.lstrip("-").isdigit():
        return int(value.string_value)
    return None
