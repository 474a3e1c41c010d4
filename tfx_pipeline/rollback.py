"""Retiring served versions: the model server falls back, and no warm start ever uses them again.

Rolling back has two halves, done in this order:

1. ML Metadata: the ModelBlessing of every retired model gets `blessed` = 0 (plus `retired` = 1
   and `retired_version`), and its Model and PushedModel artifacts get `retired` = 1. The
   LatestBlessedModelStrategy resolver (warm start and Evaluator baseline) only considers
   blessings with `blessed` = 1, in a local run and in its compiled Kubeflow form alike, so a
   retired model is never a base model or a baseline again.
2. The version directory moves out of the base path, to `<home>/retired/<model>/<version>` (one
   rename on the same filesystem). TF Serving and freshrank-model-server see the newest remaining
   version become the aspired one and load it before unloading the retired one.

Metadata first: a crash between the halves leaves a version that is still served but no longer a
warm-start source, and running the rollback again finishes it (the same version is still newest).
"""
from __future__ import annotations

import dataclasses
import os
import time

from serving.versions import finished_versions
from tfx_pipeline.home import Home
from tfx_pipeline.lineage import Lineage, custom

PUSHED_MODEL_TYPE = "PushedModel"


class RollbackError(RuntimeError):
    """A rollback that cannot happen; the message says why and what to do."""


class UnknownVersion(RollbackError):
    pass


@dataclasses.dataclass
class Plan:
    retire: list[int]
    serving_after: int


def served_versions(serving_dir: str) -> list[int]:
    """Complete numeric version directories, oldest first (hidden .tmp-* push dirs are not versions)."""
    return finished_versions(serving_dir)


def plan(serving_dir: str, to_version: int | None) -> Plan:
    """Which versions to retire so that `to_version` (default: the one before the newest) serves."""
    versions = served_versions(serving_dir)
    if not versions:
        raise RollbackError(f"nothing to roll back: {serving_dir} holds no version (no run has pushed yet)")
    if to_version is not None and to_version not in versions:
        raise UnknownVersion(f"version {to_version} is not in {serving_dir}; the versions there are "
                             f"{', '.join(map(str, versions))}")
    if len(versions) == 1:
        raise RollbackError(
            f"version {versions[0]} is the only version in {serving_dir}; retiring it would leave the model "
            "server nothing to serve, so nothing was changed. Push a better model (freshrank run) instead, or "
            "stop the server if it must not serve at all"
        )
    target = versions[-2] if to_version is None else to_version
    retire = [v for v in versions if v > target]
    if not retire:
        raise RollbackError(f"version {target} is already the newest in {serving_dir}; nothing to roll back")
    return Plan(retire=retire, serving_after=target)


def revoke_blessings(metadata_path: str, versions: list[int]) -> dict[int, list[int]]:
    """Un-blesses, in ML Metadata, the models that became `versions`; returns version -> blessing ids."""
    revoked: dict[int, list[int]] = {v: [] for v in versions}
    if not os.path.exists(metadata_path):
        return revoked
    lineage = Lineage.open(metadata_path, writable=True)
    store = lineage.store
    wanted = {str(v) for v in versions}
    for pushed in store.get_artifacts_by_type(PUSHED_MODEL_TYPE):
        version = custom(pushed, "pushed_version")
        if custom(pushed, "pushed") != 1 or str(version) not in wanted:
            continue
        changed = [pushed]
        for execution_id in lineage.producers_of(pushed.id):
            for artifact in lineage.inputs_of(execution_id):
                if "blessed" in artifact.custom_properties:  # the ModelBlessing the Pusher checked
                    artifact.custom_properties["blessed"].int_value = 0
                    artifact.custom_properties["retired_version"].string_value = str(version)
                    revoked[int(version)].append(artifact.id)
                changed.append(artifact)
        for artifact in changed:
            artifact.custom_properties["retired"].int_value = 1
        store.put_artifacts(changed)
    return revoked


def retire(home: str, model_name: str, to_version: int | None) -> dict:
    """Retires versions (metadata, then directories); returns the record for runs.jsonl.

    The caller holds the home lock: a run pushing while versions move would race.
    """
    layout = Home(home)
    serving_dir = layout.serving_dir(model_name)
    steps = plan(serving_dir, to_version)
    revoked = revoke_blessings(layout.metadata_path, steps.retire)
    retired_dir = layout.retired_dir(model_name)
    os.makedirs(retired_dir, exist_ok=True)
    moved = {}
    for version in sorted(steps.retire, reverse=True):  # newest first: the server steps down in order
        target = os.path.join(retired_dir, str(version))
        if os.path.exists(target):
            target = f"{target}-{int(time.time())}"
        os.rename(os.path.join(serving_dir, str(version)), target)
        moved[str(version)] = target
    return {
        "event": "rollback", "status": "rolled_back", "model_name": model_name,
        "retired_versions": steps.retire, "serving_version": steps.serving_after, "moved_to": moved,
        "revoked_blessings": {str(k): v for k, v in revoked.items()},
        "time": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()),
    }
