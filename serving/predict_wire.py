"""gRPC Predict requests parsed without protobuf's map container.

`PredictRequest.inputs` is a `map<string, TensorProto>`. Protobuf's C++-backed Python API keeps a
parsed map in its wire form (repeated key/value entries) and builds the real map the first time
Python touches the field, copying every TensorProto: for a 50-candidate request (6 tensors, 300
strings) that first `len(request.inputs)` cost more than parsing the whole request (`timeit`,
shared machine: parse and decode 202 us through the map, 76 us without it). A map field is on the
wire exactly a repeated message of (key = 1, value = 2) entries, so the gRPC Predict handler
parses the same bytes into a twin of PredictRequest whose `inputs` is declared that way, and reads
the entries into a dict (last entry wins for a repeated key, as in a map).

Everything else about the request is unchanged: the twin is PredictRequest's own descriptor with
only the entry type's map flag cleared, so the other fields, unknown-field handling and UTF-8
checks of keys are protobuf's; tests/serving/test_predict_wire.py checks that malformed bytes fail
as both.
"""
from __future__ import annotations

from typing import Any

from google.protobuf import descriptor_pb2, descriptor_pool, message, reflection
from tensorflow_serving.apis import predict_pb2

_PACKAGE = "freshrank.serving.wire"
_FILE = "freshrank/serving/predict_wire.proto"


def _build_twin() -> Any:
    """PredictRequest's descriptor with `inputs` as repeated entries, in the default pool (its
    field types live there). Only the two new message classes are made, by hand: a fresh
    `MessageFactory` would also make new classes for TensorProto, ModelSpec and the rest, which
    protobuf's C++ layer then hands out for every message of those types in the process (and
    TensorFlow's `isinstance` checks fail: a SavedModel no longer loads)."""
    pool = descriptor_pool.Default()
    name = f"{_PACKAGE}.PredictRequest"
    try:
        descriptor = pool.FindMessageTypeByName(name)
    except KeyError:
        original = predict_pb2.PredictRequest.DESCRIPTOR
        twin = descriptor_pb2.DescriptorProto()
        original.CopyToProto(twin)
        entry_name = original.fields_by_name["inputs"].message_type.name
        for nested in twin.nested_type:
            if nested.name == entry_name:
                nested.options.map_entry = False
        for field in twin.field:
            if field.name == "inputs":
                field.type_name = f".{name}.{entry_name}"
        file = descriptor_pb2.FileDescriptorProto(
            name=_FILE, package=_PACKAGE, syntax=original.file.syntax,
            dependency=[original.file.name, *(d.name for d in original.file.dependencies)])
        file.message_type.add().CopyFrom(twin)
        pool.Add(file)
        descriptor = pool.FindMessageTypeByName(name)
    for nested in descriptor.nested_types:  # the entry class first, then the request's
        _message_class(nested)
    return _message_class(descriptor)


def _message_class(descriptor: Any) -> Any:
    return reflection.GeneratedProtocolMessageType(
        descriptor.name, (message.Message,), {"DESCRIPTOR": descriptor, "__module__": __name__})


_WirePredictRequest = _build_twin()


class WirePredictRequest:
    """What `Servable.predict` and the gRPC handler read of a PredictRequest: `model_spec`,
    `inputs` (a dict of alias -> TensorProto), `output_filter`, `HasField`."""

    __slots__ = ("model_spec", "inputs", "output_filter", "_message")

    def __init__(self, message: Any):
        self._message = message
        self.model_spec = message.model_spec
        self.inputs = {entry.key: entry.value for entry in message.inputs}
        self.output_filter = message.output_filter

    def HasField(self, name: str) -> bool:  # noqa: N802 - protobuf's name
        return self._message.HasField(name)

    @classmethod
    def FromString(cls, data: bytes) -> WirePredictRequest:  # noqa: N802 - gRPC deserializer
        return cls(_WirePredictRequest.FromString(data))
