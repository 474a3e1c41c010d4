"""TF Serving's error codes and messages, request limits, binding, and fuzzed requests.

Unknown model / version -> NOT_FOUND, unknown label -> INVALID_ARGUMENT, unknown signature ->
FAILED_PRECONDITION on Predict and INVALID_ARGUMENT on Classify/Regress, bad inputs ->
INVALID_ARGUMENT; over REST the same errors map to 404/400 with {"error": ...}. After every
barrage the server must still answer a normal request: a bad request never takes it down.
"""
from __future__ import annotations

import ipaddress
import json

import grpc
import numpy as np
import pytest
import tensorflow as tf
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from tensorflow_serving.apis import (
    classification_pb2,
    get_model_metadata_pb2,
    get_model_status_pb2,
    model_service_pb2_grpc,
    predict_pb2,
    prediction_service_pb2_grpc,
    regression_pb2,
)

RPC_TIMEOUT = 10.0


@pytest.fixture(scope="module")
def server(default_server):
    return default_server


@pytest.fixture(scope="module")
def channel(server):
    with grpc.insecure_channel(server.grpc_address, options=[
            ("grpc.max_send_message_length", 64 << 20)]) as ch:
        yield ch


@pytest.fixture(scope="module")
def stub(channel):
    return prediction_service_pb2_grpc.PredictionServiceStub(channel)


def x_request(model="default", x=(2.0,), **spec) -> predict_pb2.PredictRequest:
    request = predict_pb2.PredictRequest()
    request.model_spec.name = model
    for key, value in spec.items():
        if key == "version":
            request.model_spec.version.value = value
        else:
            setattr(request.model_spec, key, value)
    request.inputs["x"].CopyFrom(tf.make_tensor_proto(list(x), dtype=tf.float32))
    return request


def rpc_error(call, request) -> grpc.RpcError:
    with pytest.raises(grpc.RpcError) as excinfo:
        call(request, RPC_TIMEOUT)
    return excinfo.value


def assert_still_serving(stub):
    result = stub.Predict(x_request(), RPC_TIMEOUT)
    assert list(result.outputs["y"].float_val) == [3.0]


@pytest.mark.parametrize("request_kwargs, code, details", [
    (dict(model="foo"), grpc.StatusCode.NOT_FOUND, "Servable not found for request: Latest(foo)"),
    (dict(version=99), grpc.StatusCode.NOT_FOUND,
     "Servable not found for request: Specific(default, 99)"),
    (dict(version_label="stable"), grpc.StatusCode.INVALID_ARGUMENT,
     "Unrecognized servable version label: stable"),
    (dict(signature_name="x"), grpc.StatusCode.FAILED_PRECONDITION,
     'Serving signature key "x" not found.'),
    (dict(model=""), grpc.StatusCode.INVALID_ARGUMENT, "ModelSpec has no name specified."),
    # Names are looked up among the configured models, never joined to a path: no escape.
    (dict(model="../default"), grpc.StatusCode.NOT_FOUND,
     "Servable not found for request: Latest(../default)"),
    (dict(model="default/../default"), grpc.StatusCode.NOT_FOUND,
     "Servable not found for request: Latest(default/../default)"),
    (dict(model="/etc/passwd"), grpc.StatusCode.NOT_FOUND,
     "Servable not found for request: Latest(/etc/passwd)"),
])
def test_predict_resolution_errors(stub, request_kwargs, code, details):
    error = rpc_error(stub.Predict, x_request(**request_kwargs))
    assert error.code() == code
    assert error.details() == details


def test_predict_input_errors(stub):
    request = x_request()
    del request.inputs["x"]
    request.inputs["z"].CopyFrom(tf.make_tensor_proto([1.0]))
    error = rpc_error(stub.Predict, request)
    assert error.code() == grpc.StatusCode.INVALID_ARGUMENT
    assert error.details() == ("input tensor alias not found in signature: z. Inputs expected "
                               "to be in the set {x}.")

    request.inputs["x"].CopyFrom(tf.make_tensor_proto([1.0]))
    error = rpc_error(stub.Predict, request)
    assert error.details() == ("input size does not match signature: 2!=1 len({x,z}) != "
                               "len({x}). Sent extra: {z}. Missing but required: {}.")

    request = x_request()
    request.inputs["x"].CopyFrom(tf.make_tensor_proto([1], dtype=tf.int64))
    error = rpc_error(stub.Predict, request)
    assert error.code() == grpc.StatusCode.INVALID_ARGUMENT
    assert error.details() == "Expects arg[0] to be float but int64 is provided"

    request = x_request()
    request.inputs["x"].tensor_shape.dim[0].size = -3
    error = rpc_error(stub.Predict, request)
    assert (error.code(), error.details()) == (grpc.StatusCode.INVALID_ARGUMENT,
                                               "tensor parsing error: x")

    request = x_request()
    request.output_filter.extend(["y", "y"])
    error = rpc_error(stub.Predict, request)
    assert error.details() == "duplicate output tensor alias: y"
    request = x_request()
    request.output_filter.append("w")
    error = rpc_error(stub.Predict, request)
    assert error.details() == ("output tensor alias not found in signature: w Outputs expected "
                               "to be in the set {y}.")

    request = predict_pb2.PredictRequest()
    error = rpc_error(stub.Predict, request)
    assert (error.code(), error.details()) == (grpc.StatusCode.INVALID_ARGUMENT,
                                               "Missing ModelSpec")
    assert_still_serving(stub)


def test_long_error_messages_are_cut_at_1024_characters(stub):
    request = x_request()
    request.inputs["q" * 3000].CopyFrom(tf.make_tensor_proto([1.0]))
    error = rpc_error(stub.Predict, request)
    assert error.code() == grpc.StatusCode.INVALID_ARGUMENT
    assert len(error.details()) == 1024 + len("...TRUNCATED")
    assert error.details().endswith("...TRUNCATED")


def test_classify_regress_errors(stub):
    request = classification_pb2.ClassificationRequest()
    request.model_spec.name = "default"
    request.model_spec.signature_name = "nope"
    request.input.example_list.examples.add().features.feature["x"].float_list.value.append(1)
    error = rpc_error(stub.Classify, request)
    assert (error.code(), error.details()) == (grpc.StatusCode.INVALID_ARGUMENT,
                                               "No signature was found with the name: nope")
    regress = regression_pb2.RegressionRequest()
    regress.model_spec.name = "default"
    regress.model_spec.signature_name = "regress_x_to_y"
    error = rpc_error(stub.Regress, regress)
    assert (error.code(), error.details()) == (grpc.StatusCode.INVALID_ARGUMENT,
                                               "Input is empty.")
    regress.input.example_list.examples.add().features.feature["other"].float_list.value.append(1)
    error = rpc_error(stub.Regress, regress)
    assert error.code() == grpc.StatusCode.INVALID_ARGUMENT
    assert "Feature: x (data type: float) is required but could not be found." in error.details()
    regress.model_spec.signature_name = "serving_default"  # a predict signature
    error = rpc_error(stub.Regress, regress)
    assert (error.code(), error.details()) == (grpc.StatusCode.INVALID_ARGUMENT,
                                               "No regression inputs found in SignatureDef: "
                                               "serving_default")
    assert_still_serving(stub)


def test_metadata_and_status_errors(stub, channel):
    request = get_model_metadata_pb2.GetModelMetadataRequest()
    request.model_spec.name = "default"
    error = rpc_error(stub.GetModelMetadata, request)
    assert error.details() == "GetModelMetadataRequest must specify at least one metadata_field"
    request.metadata_field.append("graph")
    error = rpc_error(stub.GetModelMetadata, request)
    assert (error.code(), error.details()) == (grpc.StatusCode.INVALID_ARGUMENT,
                                               "Metadata field graph is not supported")
    model_stub = model_service_pb2_grpc.ModelServiceStub(channel)
    status = get_model_status_pb2.GetModelStatusRequest()
    status.model_spec.name = "foo"
    error = rpc_error(model_stub.GetModelStatus, status)
    assert (error.code(), error.details()) == (grpc.StatusCode.NOT_FOUND,
                                               "Could not find any versions of model foo")
    status.model_spec.name = "default"
    status.model_spec.version.value = 7
    error = rpc_error(model_stub.GetModelStatus, status)
    assert (error.code(), error.details()) == (grpc.StatusCode.NOT_FOUND,
                                               "Could not find version 7 of model default")


REST_CASES = [
    ("POST", "/v1/models/foo:predict", {"instances": [1.0]}, 404,
     "Servable not found for request: Latest(foo)"),
    ("POST", "/v1/models/default/versions/9:predict", {"instances": [1.0]}, 404,
     "Servable not found for request: Specific(default, 9)"),
    ("POST", "/v1/models/default:predict", {"signature_name": "s", "instances": [1.0]}, 400,
     'Serving signature name: "s" not found in signature def'),
    ("POST", "/v1/models/default:predict", {"instances": [1.0], "inputs": [1.0]}, 400, None),
    ("POST", "/v1/models/default:predict", {"instances": []}, 400, None),
    ("POST", "/v1/models/default:predict", {"foo": 1}, 400,
     "Missing 'inputs' or 'instances' key"),
    ("POST", "/v1/models/default:predict", {"instances": ["a"]}, 400, None),
    ("POST", "/v1/models/default:predict", {"instances": [[1.0], 2.0]}, 400, None),
    ("POST", "/v1/models/default:predict", {"instances": [1.0], "signature_name": 5}, 400,
     None),
    ("POST", "/v1/models/default:regress", {"signature_name": "regress_x_to_y"}, 400,
     None),
    ("POST", "/v1/models/default:classify",
     {"signature_name": "classify_x_to_y", "examples": [{"x": [1.0, "a"]}]}, 400,
     "Unexpected element type in feature: x expecting type: float"),
    ("GET", "/v1/models/default/versions/5", None, 404,
     "Could not find version 5 of model default"),
    ("GET", "/v1/models", None, 400, "Missing model name in request."),
    ("GET", "/v1/models/default:predict", None, 400,
     "Malformed request: GET /v1/models/default:predict"),
    ("POST", "/v1/models/default", {}, 400, "Malformed request: POST /v1/models/default"),
    ("PUT", "/v1/models/default:predict", {}, 400,
     "Malformed request: PUT /v1/models/default:predict"),
    ("POST", "/v1/foo", {}, 400, "Malformed request: POST /v1/foo"),
    ("GET", "/v1/models/%2e%2e%2f%2e%2e%2fetc", None, 404,
     "Could not find any versions of model ../../etc"),
    ("POST", "/v1/models/%2e%2e%2fhalf_plus_two:predict", {"instances": [1.0]}, 404,
     "Servable not found for request: Latest(../half_plus_two)"),
]


@pytest.mark.parametrize("method, path, body, status, message", REST_CASES)
def test_rest_errors(server, helpers, method, path, body, status, message):
    code, raw = helpers.call_rest(server.rest_url + path, body if body is not None else None,
                                  method=method)
    assert code == status, raw
    error = json.loads(raw)
    assert set(error) == {"error"}
    if message is not None:
        assert error["error"] == message


def test_rest_malformed_json_and_large_bodies(server, helpers, stub):
    url = f"{server.rest_url}/v1/models/default:predict"
    for raw in (b"", b"{", b"[1, 2]", b"\xff\xfe", b"[" * 100000):
        code, body = helpers.call_rest(url, raw=raw, method="POST")
        assert code == 400, raw[:20]
        assert "error" in json.loads(body)
    too_big = b'{"instances": [' + b"1.0," * 800000 + b"1.0]}"  # > 2 MiB limit
    code, body = helpers.call_rest(url, raw=too_big, method="POST")
    assert code == 413
    assert "exceeds the limit of 2097152 bytes" in json.loads(body)["error"]
    assert_still_serving(stub)


def test_grpc_messages_over_the_limit_are_refused(stub):
    request = x_request(x=np.zeros(700_000, dtype=np.float32))  # ~2.8 MB > 2 MiB
    error = rpc_error(stub.Predict, request)
    assert error.code() == grpc.StatusCode.RESOURCE_EXHAUSTED
    assert_still_serving(stub)


def test_huge_declared_shapes_are_refused_without_allocating(stub):
    request = x_request()
    request.inputs["x"].tensor_shape.dim[0].size = 1 << 40
    error = rpc_error(stub.Predict, request)
    assert (error.code(), error.details()) == (grpc.StatusCode.INVALID_ARGUMENT,
                                               "tensor parsing error: x")
    assert_still_serving(stub)


def test_binds_loopback_only_by_default(server):
    import psutil

    listening = [c.laddr for c in psutil.Process(server.proc.pid).connections(kind="tcp")
                 if c.status == psutil.CONN_LISTEN]
    assert {addr.port for addr in listening} == {server.grpc_port, server.rest_port}
    for addr in listening:  # gRPC reports IPv4-mapped IPv6 ("::ffff:127.0.0.1")
        ip = ipaddress.ip_address(addr.ip)
        ip = getattr(ip, "ipv4_mapped", None) or ip
        assert ip == ipaddress.ip_address("127.0.0.1"), addr


# -- fuzzing: arbitrary requests get a TF Serving error code, never a crash or a hang --------

_ALLOWED = {grpc.StatusCode.OK, grpc.StatusCode.INVALID_ARGUMENT,
            grpc.StatusCode.FAILED_PRECONDITION, grpc.StatusCode.NOT_FOUND,
            grpc.StatusCode.UNIMPLEMENTED}

tensor_protos = st.builds(
    lambda dtype, dims, floats, ints, strings, content: _tensor(dtype, dims, floats, ints,
                                                              strings, content),
    st.sampled_from([0, 1, 2, 3, 7, 9, 10, 19, 23, 99]),
    st.lists(st.integers(-2, 1 << 33), max_size=4),
    st.lists(st.floats(allow_nan=True, width=32), max_size=8),
    st.lists(st.integers(-(2**63), 2**63 - 1), max_size=8),
    st.lists(st.binary(max_size=16), max_size=8),
    st.binary(max_size=64),
)


def _tensor(dtype, dims, floats, ints, strings, content):
    from tensorflow.core.framework import tensor_pb2

    proto = tensor_pb2.TensorProto(dtype=dtype)
    for d in dims:
        proto.tensor_shape.dim.add().size = d
    proto.float_val.extend(floats)
    proto.int64_val.extend(ints)
    proto.string_val.extend(strings)
    if content and dtype in (1, 9):
        proto.tensor_content = content
    return proto


@settings(max_examples=60, deadline=None,
          suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow])
@given(inputs=st.dictionaries(st.sampled_from(["x", "y", "", "inputs"]), tensor_protos,
                              max_size=3),
       signature=st.sampled_from(["", "serving_default", "regress_x_to_y", "classify_x_to_y",
                                  "regress_x2_to_y3", "zz"]),
       outputs=st.lists(st.sampled_from(["y", "outputs", "scores", "q"]), max_size=2))
def test_fuzzed_grpc_predict_requests(stub, inputs, signature, outputs):
    request = predict_pb2.PredictRequest()
    request.model_spec.name = "default"
    request.model_spec.signature_name = signature
    for name, proto in inputs.items():
        request.inputs[name].CopyFrom(proto)
    request.output_filter.extend(outputs)
    try:
        stub.Predict(request, RPC_TIMEOUT)
    except grpc.RpcError as exc:
        assert exc.code() in _ALLOWED, (exc.code(), exc.details())


json_values = st.recursive(
    st.none() | st.booleans() | st.integers(-(2**70), 2**70) | st.floats(width=64)
    | st.text(max_size=8),
    lambda children: st.lists(children, max_size=4)
    | st.dictionaries(st.sampled_from(["x", "b64", "y", "inputs", "instances", "examples",
                                       "signature_name", "context", "x2"]), children,
                      max_size=4),
    max_leaves=20,
)


@settings(max_examples=80, deadline=None,
          suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow])
@given(doc=json_values, verb=st.sampled_from(["predict", "classify", "regress"]))
def test_fuzzed_rest_bodies(server, helpers, doc, verb):
    code, raw = helpers.call_rest(f"{server.rest_url}/v1/models/default:{verb}",
                                  raw=json.dumps(doc).encode(), method="POST")
    assert code in (200, 400, 404), raw
    body = json.loads(raw)
    if code != 200:
        assert set(body) == {"error"}


@settings(max_examples=60, deadline=None,
          suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow])
@given(raw=st.binary(max_size=64) | st.text(max_size=32).map(lambda t: t.encode("utf-8", "surrogatepass")),
       name=st.text(max_size=12))
def test_fuzzed_rest_raw_bytes_and_unicode_model_names(server, helpers, raw, name):
    """Bytes that are mostly not JSON, and model names with any unicode (also '..' and '/')."""
    from urllib.parse import quote

    code, body = helpers.call_rest(f"{server.rest_url}/v1/models/{quote(name, safe='')}:predict",
                                   raw=raw, method="POST")
    assert code in (200, 400, 404), body
    if code != 200:
        assert set(json.loads(body)) == {"error"}


def test_server_survived_the_fuzzing(stub, server):
    assert_still_serving(stub)
    assert server.proc.poll() is None
    assert "Traceback" not in server.log_text()
