"""TF Serving's REST JSON formats and TensorProto decoding, in-process (no server)."""
from __future__ import annotations

import base64
import json

import numpy as np
import pytest
import tensorflow as tf
from hypothesis import given, settings
from hypothesis import strategies as st
from tensorflow.core.framework import tensor_pb2, types_pb2
from tensorflow.core.protobuf import meta_graph_pb2
from tensorflow_serving.apis import classification_pb2, predict_pb2, regression_pb2

from serving import errors, rest_json, tensors
from serving.metrics import Metrics


def info(dtype):
    return meta_graph_pb2.TensorInfo(dtype=dtype, name="t:0")


@pytest.mark.parametrize("value, dtype, text", [
    (3.0, types_pb2.DT_FLOAT, "3.0"),
    (0.1, types_pb2.DT_FLOAT, "0.1"),
    (float(np.float32(np.pi)), types_pb2.DT_FLOAT, "3.14159274"),
    (9000000.0, types_pb2.DT_FLOAT, "9e+06"),
    (3e-05, types_pb2.DT_FLOAT, "3e-05"),
    (-2.5, types_pb2.DT_FLOAT, "-2.5"),
    (float("nan"), types_pb2.DT_FLOAT, "NaN"),
    (float("-inf"), types_pb2.DT_FLOAT, "-Infinity"),
    (0.1, types_pb2.DT_DOUBLE, "0.1"),
    (np.pi, types_pb2.DT_DOUBLE, "3.1415926535897931"),
])
def test_floats_are_written_like_tf_serving(value, dtype, text):
    assert rest_json.format_float(value, dtype) == text


def test_row_and_columnar_inputs_for_a_multi_input_signature():
    infos = {"a": info(types_pb2.DT_FLOAT), "s": info(types_pb2.DT_STRING),
             "i": info(types_pb2.DT_INT64)}
    request = predict_pb2.PredictRequest()
    fmt = rest_json.fill_predict_inputs(
        {"instances": [{"a": [1, 2.5], "s": "x", "i": 3},
                       {"a": [3, 4], "s": {"b64": base64.b64encode(b"\xff").decode()}, "i": -1}]},
        infos, request.inputs)
    assert fmt == rest_json.ROW
    np.testing.assert_array_equal(tf.make_ndarray(request.inputs["a"]), [[1, 2.5], [3, 4]])
    assert list(request.inputs["s"].string_val) == [b"x", b"\xff"]
    assert tf.make_ndarray(request.inputs["i"]).tolist() == [3, -1]
    columnar = predict_pb2.PredictRequest()
    fmt = rest_json.fill_predict_inputs({"inputs": {"a": 1.5, "s": ["p", "q"], "i": [[1], [2]]}},
                                        infos, columnar.inputs)
    assert fmt == rest_json.COLUMNAR
    assert tf.make_ndarray(columnar.inputs["a"]).shape == ()
    assert tf.make_ndarray(columnar.inputs["i"]).shape == (2, 1)


@pytest.mark.parametrize("doc, message", [
    ({"instances": [1.0, 2.0]},
     "instances is a plain list, but expecting list of objects as multiple input tensors"),
    ({"instances": [{"a": 1.0, "b": 2}, {"a": 1.0}]},
     "Failed to process element: 1 of 'instances' list. JSON object: {\"a\":1.0} keys must "
     "be equal to: a,b"),
    ({"instances": [{"a": [1.0], "b": 1}, {"a": [1.0, 2.0], "b": 1}]},
     "Expecting tensor size: 1 but got: 2"),
    ({"instances": [{"a": 16777217, "b": 1}]},
     "Cannot convert JSON value: 16777217 to float without loss of precision."),
    ({"instances": [{"a": [[1.0], 2.0], "b": 1}]},
     "JSON Value: 2.0 found at incorrect level: 2 in the JSON DOM. Expected at level: 2"),
    ({"instances": [{"a": 1.0, "b": 1.5}]},
     "JSON Value: 1.5 Type: Number is not of expected type: int32"),
    ({"instances": [{"a": 1.0, "b": True}]},
     "JSON Value: true Type: True is not of expected type: int32"),
    ({"inputs": {"a": 1.0}}, "Missing named input: b in 'inputs' object."),
    ({"inputs": [1.0]}, "inputs is a plain value/list, but expecting an object"),
    ({"instances": [{"a": 1.0, "c": 1}]}, "JSON object: does not have named input: c"),
])
def test_predict_input_errors(doc, message):
    infos = {"a": info(types_pb2.DT_FLOAT), "b": info(types_pb2.DT_INT32)}
    with pytest.raises(errors.ServingError) as excinfo:
        rest_json.fill_predict_inputs(doc, infos, predict_pb2.PredictRequest().inputs)
    assert excinfo.value.code.name == "INVALID_ARGUMENT"
    assert message in excinfo.value.message


def _outputs(**arrays):
    response = predict_pb2.PredictResponse()
    for name, array in arrays.items():
        tensors.to_tensor_proto(np.asarray(array), out=response.outputs[name])
    return response.outputs


def test_predict_output_json_formats():
    outputs = _outputs(score=np.array([0.5, 0.25], np.float32),
                       label_bytes=np.array([b"\x00\x01", b"ok"], object),
                       text=np.array(["é".encode(), b"\xff"], object))
    row = json.loads(rest_json.predict_response_json(outputs, rest_json.ROW))
    assert row == {"predictions": [
        {"score": 0.5, "label_bytes": {"b64": "AAE="}, "text": "é"},
        {"score": 0.25, "label_bytes": {"b64": "b2s="}, "text": {"b64": "/w=="}}]}
    col = json.loads(rest_json.predict_response_json(outputs, rest_json.COLUMNAR))
    assert col["outputs"]["score"] == [0.5, 0.25]
    single = _outputs(y=np.array([[1.0], [2.0]], np.float32))
    assert rest_json.predict_response_json(single, rest_json.ROW) == \
        '{"predictions":[[1.0],[2.0]]}'
    assert rest_json.predict_response_json(single, rest_json.COLUMNAR) == \
        '{"outputs":[[1.0],[2.0]]}'
    with pytest.raises(errors.ServingError, match="inconsistent batch size"):
        rest_json.predict_response_json(_outputs(a=np.zeros(2, np.float32),
                                                 b=np.zeros(3, np.float32)), rest_json.ROW)


def test_examples_json():
    request = classification_pb2.ClassificationRequest()
    rest_json.fill_example_request({
        "signature_name": "s", "context": {"q": "query"},
        "examples": [{"x": 2.0, "n": [1, 2], "flag": True,
                      "raw": {"b64": base64.b64encode(b"\x00").decode()}}]}, request)
    assert request.model_spec.signature_name == "s"
    ctx = request.input.example_list_with_context
    assert ctx.context.features.feature["q"].bytes_list.value == [b"query"]
    feature = ctx.examples[0].features.feature
    assert list(feature["x"].float_list.value) == [2.0]
    assert list(feature["n"].int64_list.value) == [1, 2]
    assert list(feature["flag"].int64_list.value) == [1]
    assert list(feature["raw"].bytes_list.value) == [b"\x00"]
    for doc, message in [
        ({"examples": [{"x": [1, "a"]}]},
         "Unexpected element type in feature: x expecting type: int64"),
        ({"examples": [{"x": None}]}, "Feature: x has element with unexpected JSON type: Null"),
        ({"examples": [[1]]}, "Example must be JSON object but got JSON Array"),
        ({"examples": []}, "'examples' value is an empty array"),
        ({}, "key 'examples' is expected and was not found"),
    ]:
        with pytest.raises(errors.ServingError) as excinfo:
            rest_json.fill_example_request(doc, regression_pb2.RegressionRequest())
        assert message in excinfo.value.message


def test_parse_object_errors():
    for body, message in [(b"", "The document is empty"), (b"[1]", "Is not object"),
                          (b"{", "JSON Parse error"), (b"[" * 5000, "JSON Parse error")]:
        with pytest.raises(errors.ServingError, match=message):
            rest_json.parse_object(body)


json_leaves = st.none() | st.booleans() | st.integers() | st.floats() | st.text(max_size=5)
json_docs = st.recursive(
    json_leaves,
    lambda c: st.lists(c, max_size=4) | st.dictionaries(
        st.sampled_from(["a", "b", "b64", "instances", "inputs", "examples", "context",
                         "signature_name"]), c, max_size=4),
    max_leaves=25)


@settings(max_examples=300, deadline=None)
@given(doc=json_docs)
def test_any_json_is_accepted_or_rejected_with_a_serving_error(doc):
    infos = {"a": info(types_pb2.DT_FLOAT), "b": info(types_pb2.DT_STRING)}
    body = json.dumps(doc).encode()
    for target in ("predict", "examples"):
        try:
            parsed = rest_json.parse_object(body)
            if target == "predict":
                rest_json.fill_predict_inputs(parsed, infos, predict_pb2.PredictRequest().inputs)
            else:
                rest_json.fill_example_request(parsed, regression_pb2.RegressionRequest())
        except errors.ServingError as exc:
            assert exc.code.name in ("INVALID_ARGUMENT", "UNIMPLEMENTED")


# -- TensorProto decoding ----------------------------------------------------------------------


def test_to_ndarray_follows_tensor_from_proto():
    proto = tf.make_tensor_proto(np.arange(6, dtype=np.float32).reshape(2, 3))
    np.testing.assert_array_equal(tensors.to_ndarray(proto), np.arange(6).reshape(2, 3))
    fill = tensor_pb2.TensorProto(dtype=types_pb2.DT_FLOAT, float_val=[1.0, 7.0])
    fill.tensor_shape.dim.add().size = 4
    np.testing.assert_array_equal(tensors.to_ndarray(fill), [1.0, 7.0, 7.0, 7.0])
    empty = tensor_pb2.TensorProto(dtype=types_pb2.DT_INT64)
    empty.tensor_shape.dim.add().size = 3
    np.testing.assert_array_equal(tensors.to_ndarray(empty), [0, 0, 0])
    strings = tf.make_tensor_proto([b"a", b"bc"])
    assert tensors.to_ndarray(strings).tolist() == [b"a", b"bc"]
    half = tf.make_tensor_proto(np.array([1.5, -2.0], np.float16))
    np.testing.assert_array_equal(tensors.to_ndarray(half), [1.5, -2.0])
    too_many = tensor_pb2.TensorProto(dtype=types_pb2.DT_FLOAT, float_val=[1.0, 2.0])
    too_many.tensor_shape.dim.add().size = 1
    with pytest.raises(ValueError):
        tensors.to_ndarray(too_many)
    huge = tensor_pb2.TensorProto(dtype=types_pb2.DT_FLOAT, float_val=[1.0])
    huge.tensor_shape.dim.add().size = 1 << 40
    with pytest.raises(ValueError, match="more than"):
        tensors.to_ndarray(huge)


@pytest.mark.parametrize("proto", [
    tf.make_tensor_proto([b"lightweight running shoes"] * 3, dtype=tf.string, shape=[3]),
    tf.make_tensor_proto(np.array([1.5, 2.0, 300.0], np.float32)),  # tensor_content
    tensor_pb2.TensorProto(dtype=types_pb2.DT_FLOAT, float_val=[1.5, 2.0],
                           tensor_shape={"dim": [{"size": 2}]}),
    tensor_pb2.TensorProto(dtype=types_pb2.DT_INT64, int64_val=[7, -1 << 40],
                           tensor_shape={"dim": [{"size": 2}]}),
    tensor_pb2.TensorProto(dtype=types_pb2.DT_INT32, int_val=[3],
                           tensor_shape={"dim": [{"size": 1}]}),
], ids=["strings", "float-content", "float-val", "int64-val", "int32-val"])
def test_vectors_decode_as_tensorflow_does(proto):
    """The vectors a ranking request carries take tensors.py's short path; what it returns must be
    what TensorFlow makes of the same proto, writable, and not share memory with the request."""
    got = tensors.to_ndarray(proto)
    want = tf.make_ndarray(proto)
    assert got.dtype == want.dtype and got.shape == want.shape
    assert got.tolist() == want.tolist()
    assert got.flags.writeable


def test_short_path_leaves_incomplete_vectors_to_the_general_rules():
    short = tensor_pb2.TensorProto(dtype=types_pb2.DT_STRING, string_val=[b"a"],
                                   tensor_shape={"dim": [{"size": 3}]})
    assert tensors.to_ndarray(short).tolist() == [b"a", b"a", b"a"]  # last value repeated
    bad = tensor_pb2.TensorProto(dtype=types_pb2.DT_FLOAT, tensor_content=b"\0" * 6,
                                 tensor_shape={"dim": [{"size": 2}]})
    with pytest.raises(ValueError, match="tensor_content size"):
        tensors.to_ndarray(bad)


@pytest.mark.parametrize("array", [
    np.array([[1.5, 2.0]], np.float32), np.array([1.0], np.float64), np.array([1, -2], np.int32),
    np.array([[3]], np.int64), np.array([True, False]), np.array([b"x", b"\xff"], object),
    np.array([0.5], np.float16), np.array(7, np.uint8), np.array([], np.float32),
])
def test_to_tensor_proto_round_trips_through_tensorflow(array):
    proto = tensors.to_tensor_proto(array)
    assert not proto.tensor_content  # value fields, as TF Serving's AsProtoField
    back = tf.make_ndarray(proto)
    assert back.shape == array.shape
    assert back.tolist() == array.tolist()


@settings(max_examples=300, deadline=None)
@given(dtype=st.sampled_from(sorted(types_pb2.DataType.values())),
       dims=st.lists(st.integers(-3, 1 << 34), max_size=5),
       floats=st.lists(st.floats(width=32), max_size=6),
       ints=st.lists(st.integers(-(2**31), 2**31 - 1), max_size=6),
       content=st.binary(max_size=40), unknown_rank=st.booleans())
def test_to_ndarray_never_fails_other_than_value_error(dtype, dims, floats, ints, content,
                                                       unknown_rank):
    proto = tensor_pb2.TensorProto(dtype=dtype, float_val=floats, int_val=ints,
                                   tensor_content=content)
    proto.tensor_shape.unknown_rank = unknown_rank
    for d in dims:
        proto.tensor_shape.dim.add().size = d
    try:
        array = tensors.to_ndarray(proto)
    except ValueError:
        return
    assert list(array.shape) == dims


def test_metrics_render_prometheus_text():
    metrics = Metrics()
    metrics.record_request('m"1', "Predict", "GRPC", "OK", 15.0)
    metrics.record_request('m"1', "Predict", "GRPC", "OK", 5000.0)
    metrics.record_request('m"1', "Predict", "GRPC", "NOT_FOUND", 3.0)
    text = metrics.render()
    assert ':tensorflow:serving:request_count{model_name="m\\"1",API="Predict",status="OK"} 2' \
        in text
    assert ('request_count{model_name="m\\"1",API="Predict",status="NOT_FOUND"} 1') in text
    labels = 'model_name="m\\"1",API="Predict",entrypoint="GRPC"'
    assert f':tensorflow:serving:request_latency_bucket{{{labels},le="10.0"}} 0' in text
    assert f':tensorflow:serving:request_latency_bucket{{{labels},le="18.0"}} 1' in text
    assert f':tensorflow:serving:request_latency_bucket{{{labels},le="+Inf"}} 2' in text
    assert f":tensorflow:serving:request_latency_count{{{labels}}} 2" in text
    assert f":tensorflow:serving:request_latency_sum{{{labels}}} 5015.0" in text
