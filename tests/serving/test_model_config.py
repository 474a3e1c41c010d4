"""--model_config_file: TF Serving's testGoodModelConfig, testBadModelConfig,
testModelConfigReload, the TF2 variants of Classify/Regress/MultiInference, and
HandleReloadConfigRequest with version policies and labels.

One server serves the config file, polled every second. Tests run in file order and each one
writes the config it needs, then waits for the server to apply it.
"""
from __future__ import annotations

import json
import time

import grpc
import pytest
from google.protobuf import text_format
from tensorflow.core.framework import types_pb2
from tensorflow_serving.apis import (
    classification_pb2,
    get_model_status_pb2,
    inference_pb2,
    model_management_pb2,
    predict_pb2,
    regression_pb2,
)
from tensorflow_serving.config import model_server_config_pb2

RPC_TIMEOUT = 20.0
POLL_PERIOD = 1

CONFIG = """
model_config_list: {{
  {entries}
}}
"""
ENTRY = """config: {{ name: "{name}", base_path: "{path}", model_platform: "tensorflow" {extra} }}"""


def config_text(*entries: tuple) -> str:
    return CONFIG.format(entries="\n  ".join(
        ENTRY.format(name=e[0], path=e[1], extra=e[2] if len(e) > 2 else "") for e in entries))


@pytest.fixture(scope="module")
def bases(models, tmp_path_factory, helpers):
    root = tmp_path_factory.mktemp("model_config")
    paths = {}
    for name, src in (("half_plus_two", models.half_plus_two),
                      ("half_plus_three", models.half_plus_three),
                      ("tf2", models.half_plus_two_tf2)):
        helpers.copy_version(src, root / name, helpers.VERSION)
        paths[name] = root / name
    multi = root / "multi"
    for version in (1, 2, 3):
        helpers.copy_version(models.half_plus_two_tf2, multi, version)
    paths["multi"] = multi
    paths["config"] = root / "model_config.txt"
    return paths


@pytest.fixture(scope="module")
def server(bases, tmp_path_factory, helpers):
    bases["config"].write_text(config_text(("half_plus_two", bases["half_plus_two"]),
                                           ("half_plus_three", bases["half_plus_three"]),
                                           ("tf2", bases["tf2"])))
    proc = helpers.start_module_server(tmp_path_factory, "model_config_log", [
        f"--model_config_file={bases['config']}",
        f"--model_config_file_poll_wait_seconds={POLL_PERIOD}",
        "--file_system_poll_wait_seconds=1",
    ])
    yield proc
    proc.stop()


def predict(stub, model_name, x=2.0, specify_output=True, version=None, label=None):
    request = predict_pb2.PredictRequest()
    request.model_spec.name = model_name
    if version is not None:
        request.model_spec.version.value = version
    if label is not None:
        request.model_spec.version_label = label
    request.inputs["x"].dtype = types_pb2.DT_FLOAT
    request.inputs["x"].float_val.append(x)
    request.inputs["x"].tensor_shape.dim.add().size = 1
    if specify_output:
        request.output_filter.append("y")
    return stub.Predict(request, RPC_TIMEOUT)


def status(model_stub, name):
    request = get_model_status_pb2.GetModelStatusRequest()
    request.model_spec.name = name
    response = model_stub.GetModelStatus(request, RPC_TIMEOUT)
    return [(s.version, s.state) for s in response.model_version_status]


def reload(model_stub, text):
    request = model_management_pb2.ReloadConfigRequest()
    text_format.Parse(text, request.config)
    return model_stub.HandleReloadConfigRequest(request, RPC_TIMEOUT)


def eventually(check, timeout=15.0):
    deadline = time.monotonic() + timeout
    while True:
        try:
            return check()
        except (AssertionError, grpc.RpcError):
            if time.monotonic() > deadline:
                raise
            time.sleep(0.1)


def test_GoodModelConfig(stub):
    for specify_output in (True, False):
        result = predict(stub, "half_plus_two", specify_output=specify_output)
        assert result.outputs["y"].float_val[0] == 3.0
        assert result.model_spec.version.value == 123
        result = predict(stub, "half_plus_three", specify_output=specify_output)
        assert result.outputs["y"].float_val[0] == 4.0
        assert result.model_spec.version.value == 123


def test_ClassifyTf2_RegressTf2_MultiInferenceTf2(stub):
    """A native TF2 SavedModel: every signature's method_name is .../predict, which TF
    Serving accepts unless --enable_signature_method_name_check."""
    classify = classification_pb2.ClassificationRequest()
    classify.model_spec.name = "tf2"
    classify.model_spec.signature_name = "classify_x_to_y"
    classify.input.example_list.examples.add().features.feature["x"].float_list.value.append(2)
    result = stub.Classify(classify, RPC_TIMEOUT)
    assert result.result.classifications[0].classes[0].score == 3.0
    regress = regression_pb2.RegressionRequest()
    regress.model_spec.name = "tf2"
    regress.model_spec.signature_name = "regress_x_to_y"
    regress.input.example_list.examples.add().features.feature["x"].float_list.value.append(2)
    assert stub.Regress(regress, RPC_TIMEOUT).result.regressions[0].value == 3.0
    multi = inference_pb2.MultiInferenceRequest()
    for signature, method in (("regress_x_to_y", "tensorflow/serving/regress"),
                              ("classify_x_to_y", "tensorflow/serving/classify")):
        task = multi.tasks.add()
        task.model_spec.name = "tf2"
        task.model_spec.signature_name = signature
        task.method_name = method
    multi.input.example_list.examples.add().features.feature["x"].float_list.value.append(2)
    result = stub.MultiInference(multi, RPC_TIMEOUT)
    assert result.results[0].regression_result.regressions[0].value == 3.0
    assert result.results[1].classification_result.classifications[0].classes[0].score == 3.0
    assert result.results[0].model_spec.version.value == 123


def test_BadModelConfig(tmp_path, start_server):
    bad = tmp_path / "bad_model_config.txt"
    bad.write_text("improperly formatted file\n")
    proc = start_server([f"--model_config_file={bad}"], rest=False, wait=False)
    assert proc.wait_exit(60) != 0
    assert "Error parsing text-format tensorflow.serving.ModelServerConfig" in proc.log_text()


def test_ModelConfigReload(server, stub, model_stub, bases):
    """Rewriting the file to serve half_plus_three alone takes effect within a poll period."""
    bases["config"].write_text(config_text(("half_plus_three", bases["half_plus_three"])))
    time.sleep(POLL_PERIOD + 1)

    def removed():
        with pytest.raises(grpc.RpcError) as excinfo:
            predict(stub, "half_plus_two")
        assert excinfo.value.code() == grpc.StatusCode.NOT_FOUND
        assert excinfo.value.details() == "Servable not found for request: Latest(half_plus_two)"

    eventually(removed, timeout=5)
    result = predict(stub, "half_plus_three", specify_output=False)
    assert result.outputs["y"].float_val[0] == 4.0
    # Unloaded versions stay listed, as END.
    eventually(lambda: _assert_equal(status(model_stub, "half_plus_two"), [(123, 50)]))


def _assert_equal(actual, expected):
    assert actual == expected
    return actual


def test_HandleReloadConfigRequest_rejects_bad_configs_and_keeps_serving(model_stub, stub,
                                                                          bases):
    cases = [
        (config_text(("a", bases["half_plus_two"]), ("a", bases["half_plus_three"])),
         "Illegal to list model a multiple times in config list"),
        (config_text(("rel", "relative/path")),
         "Expected model rel to have an absolute path or URI; got base_path()=relative/path"),
        ('model_config_list { config { name: "p" base_path: "/x" model_platform: "onnx" } }',
         "Model p requests unsupported platform onnx"),
    ]
    for text, message in cases:
        with pytest.raises(grpc.RpcError) as excinfo:
            reload(model_stub, text)
        assert excinfo.value.code() == grpc.StatusCode.INVALID_ARGUMENT
        assert excinfo.value.details() == message
    assert predict(stub, "half_plus_three").outputs["y"].float_val[0] == 4.0


def test_version_policies(model_stub, stub, bases):
    multi = bases["multi"]
    reload(model_stub, config_text(("multi", multi, "model_version_policy { all {} }")))
    assert status(model_stub, "multi") == [(3, 30), (2, 30), (1, 30)]
    assert predict(stub, "multi", version=1).model_spec.version.value == 1
    assert predict(stub, "multi").model_spec.version.value == 3  # Latest
    reload(model_stub, config_text(
        ("multi", multi, "model_version_policy { specific { versions: 1 versions: 3 } }")))
    eventually(lambda: _assert_equal(status(model_stub, "multi"), [(3, 30), (2, 50), (1, 30)]))
    reload(model_stub, config_text(
        ("multi", multi, "model_version_policy { latest { num_versions: 2 } }")))
    eventually(lambda: _assert_equal(status(model_stub, "multi"), [(3, 30), (2, 30), (1, 50)]))
    with pytest.raises(grpc.RpcError) as excinfo:
        predict(stub, "multi", version=1)
    assert excinfo.value.code() == grpc.StatusCode.NOT_FOUND
    assert excinfo.value.details() == "Servable not found for request: Specific(multi, 1)"


def test_version_labels(model_stub, stub, bases, server, helpers):
    multi = bases["multi"]
    policy = "model_version_policy { all {} }"
    reload(model_stub, config_text(("multi", multi, policy)))
    # A label may only point at an AVAILABLE version.
    with pytest.raises(grpc.RpcError) as excinfo:
        reload(model_stub, config_text(("multi", multi, policy + ' version_labels { key: '
                                        '"canary" value: 7 }')))
    assert excinfo.value.code() == grpc.StatusCode.FAILED_PRECONDITION
    assert excinfo.value.details() == (
        "Request to assign label to version 7 of model multi, which is not currently available "
        "for inference")
    labels = (' version_labels { key: "stable" value: 2 }'
              ' version_labels { key: "canary" value: 3 }')
    reload(model_stub, config_text(("multi", multi, policy + labels)))
    assert predict(stub, "multi", label="stable").model_spec.version.value == 2
    assert predict(stub, "multi", label="canary").model_spec.version.value == 3
    with pytest.raises(grpc.RpcError) as excinfo:
        predict(stub, "multi", label="nope")
    assert excinfo.value.code() == grpc.StatusCode.INVALID_ARGUMENT
    assert excinfo.value.details() == "Unrecognized servable version label: nope"
    # REST: labels path for predict and status; unknown label -> 400.
    code, body = helpers.call_rest(f"{server.rest_url}/v1/models/multi/labels/stable:predict",
                                   {"instances": [2.0]})
    assert code == 200 and json.loads(body) == {"predictions": [3.0]}
    code, body = helpers.call_rest(f"{server.rest_url}/v1/models/multi/labels/stable")
    assert code == 200
    assert json.loads(body)["model_version_status"][0]["version"] == "2"
    code, body = helpers.call_rest(f"{server.rest_url}/v1/models/multi/labels/nope:predict",
                                   {"instances": [2.0]})
    assert code == 400
    assert json.loads(body) == {"error": "Unrecognized servable version label: nope"}


def test_config_file_with_labels_at_startup_fails_like_tf_serving(tmp_path, start_server,
                                                                  bases):
    """Labels are checked before any version is loaded, so TF Serving refuses them at
    startup unless --allow_version_labels_for_unavailable_models."""
    config = tmp_path / "labels.txt"
    config.write_text(config_text(("multi", bases["multi"],
                                   'version_labels { key: "stable" value: 2 }')))
    proc = start_server([f"--model_config_file={config}"], rest=False, wait=False)
    assert proc.wait_exit(60) != 0
    assert ("Request to assign label to version 2 of model multi, which is not currently "
            "available for inference") in proc.log_text()


def test_reload_config_rejects_non_list_configs(model_stub):
    request = model_management_pb2.ReloadConfigRequest()
    request.config.CopyFrom(model_server_config_pb2.ModelServerConfig())
    with pytest.raises(grpc.RpcError) as excinfo:
        model_stub.HandleReloadConfigRequest(request, RPC_TIMEOUT)
    assert excinfo.value.code() == grpc.StatusCode.INVALID_ARGUMENT
