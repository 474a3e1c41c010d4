"""The one door to ML Metadata: opening a home's store and walking its events.

Everything the run summary reports (the window, the base model, the blessing, the pushed
version, the metrics) comes from the artifacts and events the run registered, so the summary
cannot claim what did not happen. Recovery, rollback and the TensorBoard command walk the same
events through the same methods (`node_of`, `inputs_of`, `artifacts_of`, `producers_of`);
retention (tfx_pipeline/retention.py) asks it which runs exist (`run_contexts`), which models were
pushed where (`pushes`), which model the next warm start takes (`latest_blessed_model`), and marks
the artifacts whose files it removed DELETED (`mark_deleted`), so lineage stays readable.
"""
from __future__ import annotations

import dataclasses
import json
import os
from typing import Any

from ml_metadata import metadata_store
from ml_metadata.proto import metadata_store_pb2

NODE_CONTEXT = "node"
RUN_CONTEXT = "pipeline_run"
DELETED_REASON_KEY = "deleted_by"


@dataclasses.dataclass
class NodeRecord:
    execution: metadata_store_pb2.Execution
    inputs: dict[str, list[metadata_store_pb2.Artifact]]
    outputs: dict[str, list[metadata_store_pb2.Artifact]]

    @property
    def succeeded(self) -> bool:
        return self.execution.last_known_state in (
            metadata_store_pb2.Execution.COMPLETE, metadata_store_pb2.Execution.CACHED
        )


@dataclasses.dataclass
class Push:
    """A model that the Pusher put into a serving directory (`pushed` = 1)."""

    version: int
    destination: str  # the version directory it was copied to
    pushed_model: metadata_store_pb2.Artifact
    model: metadata_store_pb2.Artifact | None
    blessing: metadata_store_pb2.Artifact | None


_INPUTS = (metadata_store_pb2.Event.INPUT, metadata_store_pb2.Event.DECLARED_INPUT)
_OUTPUTS = (metadata_store_pb2.Event.OUTPUT, metadata_store_pb2.Event.DECLARED_OUTPUT)


class Lineage:
    def __init__(self, connection_config: metadata_store_pb2.ConnectionConfig):
        self.store = metadata_store.MetadataStore(connection_config)

    @classmethod
    def open(cls, metadata_path: str, writable: bool = False) -> Lineage:
        """A home's sqlite store (`PipelineConfig.metadata_path`); read-only unless `writable`."""
        config = metadata_store_pb2.ConnectionConfig()
        config.sqlite.filename_uri = metadata_path
        config.sqlite.connection_mode = (metadata_store_pb2.SqliteMetadataSourceConfig.READWRITE if writable
                                         else metadata_store_pb2.SqliteMetadataSourceConfig.READONLY)
        return cls(config)

    def latest_run_id(self) -> int | None:
        return max(self.run_ids(), default=None)

    def run_ids(self) -> list[int]:
        """Every pipeline run's context id, oldest first."""
        return sorted(c.id for c in self.store.get_contexts_by_type(RUN_CONTEXT))

    def run_nodes(self, run_context_id: int) -> dict[str, NodeRecord]:
        """Node id (e.g. 'Trainer') -> its execution in this run with input/output artifacts."""
        executions = self.store.get_executions_by_context(run_context_id)
        records: dict[str, NodeRecord] = {}
        for execution in executions:
            node = self.node_of(execution.id)
            if node is None:
                continue
            inputs, outputs = self.artifacts_of(execution.id)
            records[node] = NodeRecord(execution, inputs, outputs)
        return records

    def node_of(self, execution_id: int) -> str | None:
        """The pipeline node (e.g. 'Trainer') an execution ran, or None."""
        for context in self.store.get_contexts_by_execution(execution_id):
            if self.store.get_context_types_by_id([context.type_id])[0].name == NODE_CONTEXT:
                return context.name.split(".", 1)[-1]
        return None

    def artifacts_of(self, execution_id: int) -> tuple[dict[str, list], dict[str, list]]:
        """An execution's (inputs, outputs): artifacts by the component's input or output key."""
        events = self.store.get_events_by_execution_ids([execution_id])
        by_id = {a.id: a for a in self.store.get_artifacts_by_id([e.artifact_id for e in events])}
        inputs: dict[str, list] = {}
        outputs: dict[str, list] = {}
        for event in events:
            key = event.path.steps[0].key if event.path.steps else ""
            if event.type in _INPUTS:
                inputs.setdefault(key, []).append(by_id[event.artifact_id])
            elif event.type in _OUTPUTS:
                outputs.setdefault(key, []).append(by_id[event.artifact_id])
        return inputs, outputs

    def inputs_of(self, execution_id: int) -> list[metadata_store_pb2.Artifact]:
        """Every artifact an execution read."""
        return [a for found in self.artifacts_of(execution_id)[0].values() for a in found]

    def producers_of(self, artifact_id: int) -> list[int]:
        """The executions that output an artifact."""
        return [e.execution_id for e in self.store.get_events_by_artifact_ids([artifact_id]) if e.type in _OUTPUTS]

    def pushed_version_of(self, model_artifact_id: int) -> int | None:
        """The serving version a model became, found through the Pusher that consumed it."""
        events = self.store.get_events_by_artifact_ids([model_artifact_id])
        for event in events:
            if event.type != metadata_store_pb2.Event.INPUT:
                continue
            _, outputs = self.artifacts_of(event.execution_id)
            for pushed in outputs.get("pushed_model", []):
                if custom(pushed, "pushed") == 1 and custom(pushed, "pushed_version"):
                    return int(custom(pushed, "pushed_version"))
        return None

    def run_contexts(self) -> list[metadata_store_pb2.Context]:
        """Every pipeline run, oldest first."""
        return sorted(self.store.get_contexts_by_type(RUN_CONTEXT), key=lambda c: c.id)

    def live_output_executions(self) -> set[int]:
        """Executions that output an artifact still LIVE (not yet DELETED by retention)."""
        live = self.store.get_artifacts(list_options=metadata_store.ListOptions(filter_query="state = LIVE"))
        ids = [a.id for a in live]
        found: set[int] = set()
        for start in range(0, len(ids), 500):
            found |= {e.execution_id for e in self.store.get_events_by_artifact_ids(ids[start:start + 500])
                      if e.type in _OUTPUTS}
        return found

    def run_contexts_of(self, execution_ids: set[int]) -> list[metadata_store_pb2.Context]:
        """The pipeline runs the given executions belong to, oldest first."""
        runs: dict[int, metadata_store_pb2.Context] = {}
        for execution_id in sorted(execution_ids):
            for context in self.store.get_contexts_by_execution(execution_id):
                if self.store.get_context_types_by_id([context.type_id])[0].name == RUN_CONTEXT:
                    runs[context.id] = context
        return [runs[i] for i in sorted(runs)]

    def pushes(self) -> list[Push]:
        """Every finished push, oldest first, with the Model and ModelBlessing its Pusher read."""
        found = []
        for pushed in self.store.get_artifacts_by_type("PushedModel"):
            if custom(pushed, "pushed") != 1 or not str(custom(pushed, "pushed_version") or "").isdigit():
                continue
            model = blessing = None
            for execution_id in self.producers_of(pushed.id):
                inputs, _ = self.artifacts_of(execution_id)
                model = (inputs.get("model") or [model])[0]
                blessing = (inputs.get("model_blessing") or [blessing])[0]
            found.append(Push(int(custom(pushed, "pushed_version")), str(custom(pushed, "pushed_destination") or ""),
                              pushed, model, blessing))
        return sorted(found, key=lambda p: p.version)

    def latest_blessed_model(self) -> tuple[metadata_store_pb2.Artifact, metadata_store_pb2.Artifact] | None:
        """(Model, ModelBlessing) the next run's `latest_blessed_model` resolver picks: the newest LIVE
        model with a LIVE blessing of `blessed` = 1 (TFX's LatestBlessedModelStrategy after its input
        resolution drops every artifact that is not LIVE). None before the first blessing."""
        live = metadata_store_pb2.Artifact.LIVE
        blessings = {custom(b, "current_model_id"): b for b in self.store.get_artifacts_by_type("ModelBlessing")
                     if b.state == live and custom(b, "blessed") == 1}
        for model in sorted(self.store.get_artifacts_by_type("Model"), key=lambda a: a.id, reverse=True):
            if model.state == live and model.id in blessings:
                return model, blessings[model.id]
        return None

    def last_execution_property(self, type_suffix: str, key: str) -> Any:
        """A property of the newest execution whose type ends with `type_suffix` (e.g. SpanWindow's
        `window_size`), or None when no such execution ran."""
        types = [t for t in self.store.get_execution_types() if t.name.endswith(type_suffix)]
        executions = [e for t in types for e in self.store.get_executions_by_type(t.name)]
        for execution in sorted(executions, key=lambda e: e.id, reverse=True):
            value = execution.custom_properties.get(key) or execution.properties.get(key)
            if value is not None:
                kind = value.WhichOneof("value")
                return getattr(value, kind) if kind else None
        return None

    def mark_deleted(self, artifact_ids: list[int], reason: str) -> list[int]:
        """Sets artifacts' state to DELETED (ML Metadata's advice for removed files, google/ml-metadata#38)
        with `reason` in the custom property `deleted_by`; returns the ids changed. The artifacts, their
        events and properties stay, so lineage remains readable, and TFX's input resolution skips
        them (it resolves LIVE artifacts only)."""
        if not artifact_ids:
            return []
        changed = []
        for artifact in self.store.get_artifacts_by_id(sorted(set(artifact_ids))):
            if artifact.state == metadata_store_pb2.Artifact.DELETED:
                continue
            artifact.state = metadata_store_pb2.Artifact.DELETED
            artifact.custom_properties[DELETED_REASON_KEY].string_value = reason
            changed.append(artifact)
        if changed:
            self.store.put_artifacts(changed)
        return [a.id for a in changed]


def custom(artifact: metadata_store_pb2.Artifact, key: str) -> Any:
    if key not in artifact.custom_properties:
        if key in artifact.properties:
            value = artifact.properties[key]
        else:
            return None
    else:
        value = artifact.custom_properties[key]
    kind = value.WhichOneof("value")
    if kind == "struct_value":
        from google.protobuf import json_format

        raw = json_format.MessageToDict(value.struct_value)
        return raw.get("__value__", raw)
    return getattr(value, kind) if kind else None


def read_model_facts(model_uri: str) -> dict[str, Any]:
    path = os.path.join(model_uri, "Format-Serving", "assets.extra", "freshrank", "model.json")
    if not os.path.exists(path):
        return {}
    with open(path) as f:
        return json.load(f).get("facts", {})
