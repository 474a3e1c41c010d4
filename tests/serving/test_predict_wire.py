"""serving/predict_wire.py: a Predict request read through the map-free twin says what protobuf's
PredictRequest says, for well-formed, repeated-key and malformed bytes alike."""
from __future__ import annotations

import pytest
from google.protobuf import message as proto_message
from tensorflow.core.framework import tensor_pb2, tensor_shape_pb2
from tensorflow_serving.apis import model_pb2, predict_pb2

from serving.predict_wire import WirePredictRequest


def _entry(key: bytes, value: bytes) -> bytes:
    """One `inputs` map entry on the wire: field 2, length-delimited (key = 1, value = 2)."""
    body = b"\x0a" + bytes([len(key)]) + key + b"\x12" + bytes([len(value)]) + value
    return b"\x12" + bytes([len(body)]) + body


def test_a_request_reads_the_same_through_either_type():
    request = predict_pb2.PredictRequest()
    request.model_spec.name = "ranker"
    request.model_spec.signature_name = "serving_default"
    request.model_spec.version.value = 3
    for alias, values in (("query", [b"shoes"]), ("title", [b"a", b"b"])):
        request.inputs[alias].dtype = 7
        request.inputs[alias].tensor_shape.dim.add().size = len(values)
        request.inputs[alias].string_val.extend(values)
    request.inputs["price"].float_val.extend([1.5, 2.5])
    request.output_filter.append("score")
    wire = WirePredictRequest.FromString(request.SerializeToString())
    assert wire.HasField("model_spec")
    assert wire.model_spec == request.model_spec
    assert wire.inputs == dict(request.inputs)
    assert list(wire.output_filter) == ["score"]
    assert not WirePredictRequest.FromString(b"").HasField("model_spec")


def test_a_repeated_key_keeps_the_last_value_as_a_map_does():
    first = predict_pb2.PredictRequest()
    first.inputs["x"].float_val.append(1.0)
    second = predict_pb2.PredictRequest()
    second.inputs["x"].float_val.append(2.0)
    data = first.SerializeToString() + second.SerializeToString()  # concatenation merges
    assert list(WirePredictRequest.FromString(data).inputs["x"].float_val) == \
        list(predict_pb2.PredictRequest.FromString(data).inputs["x"].float_val) == [2.0]


@pytest.mark.parametrize("data", [
    _entry(b"\xff\xfe", b""),  # a key that is not UTF-8
    _entry(b"x", b"\x08"),     # a value cut short
    b"\x12\x05\x0a",           # an entry longer than the message
])
def test_bytes_that_protobuf_refuses_are_refused_by_both(data):
    with pytest.raises(proto_message.DecodeError):
        predict_pb2.PredictRequest.FromString(data)
    with pytest.raises(proto_message.DecodeError):
        WirePredictRequest.FromString(data)


def test_the_twin_hands_out_the_process_wide_message_classes():
    """Its entries are TensorFlow's own TensorProto (TensorFlow checks with isinstance), and
    building it changed no other type's class (a SavedModel would no longer load)."""
    request = predict_pb2.PredictRequest()
    request.inputs["x"].tensor_shape.dim.add().size = 1
    wire = WirePredictRequest.FromString(request.SerializeToString())
    assert type(wire.inputs["x"]) is tensor_pb2.TensorProto
    assert type(wire.model_spec) is model_pb2.ModelSpec
    assert type(wire.inputs["x"].tensor_shape.dim[0]) is tensor_shape_pb2.TensorShapeProto.Dim
    assert type(tensor_pb2.TensorProto().tensor_shape) is tensor_shape_pb2.TensorShapeProto
