"""The one door to ML Metadata: opening a home's store and walking its events.

Everything the run summary reports (the window, the base model, the blessing, the pushed
version, the metrics) comes from the artifacts and events the run registered, so the summary
cannot claim what did not happen. Recovery, rollback and the TensorBoard command walk the same
events through the same methods (`node_of`, `inputs_of`, `artifacts_of`, `producers_of`).
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
