"""Flags (TF Serving's names and defaults), config files, version directories and policies."""
from __future__ import annotations

import pytest
from google.protobuf import text_format
from tensorflow_serving.config import model_server_config_pb2

from serving import config as config_lib
from serving import errors, versions
from serving.flags import parse_flags


def test_defaults_are_tf_servings():
    flags = parse_flags(["--model_base_path=/models/x"])
    assert flags.port == 8500
    assert flags.rest_api_port == 0
    assert flags.model_name == "default"
    assert flags.model_config_file == ""
    assert flags.model_config_file_poll_wait_seconds == 0
    assert flags.file_system_poll_wait_seconds == 1
    assert flags.enable_batching is False
    assert flags.batching_parameters_file == ""
    assert flags.enable_model_warmup is True
    assert flags.monitoring_config_file == ""
    assert flags.rest_api_timeout_in_ms == 30000
    assert flags.ssl_config_file == ""
    assert flags.max_num_load_retries == 5
    assert flags.load_retry_interval_micros == 60_000_000
    assert flags.saved_model_tags == "serve"
    assert flags.bind_address == "127.0.0.1"


def test_both_flag_spellings_and_boolean_forms():
    flags = parse_flags(["--port", "9000", "--rest_api_port=9001", "--model_name", "ranker",
                         "--model_base_path", "/m", "--enable_batching",
                         "--noenable_model_warmup", "--file_system_poll_wait_seconds=-1"])
    assert (flags.port, flags.rest_api_port, flags.model_name) == (9000, 9001, "ranker")
    assert flags.enable_batching is True
    assert flags.enable_model_warmup is False
    assert flags.file_system_poll_wait_seconds == -1
    assert parse_flags(["--model_base_path=/m", "--enable_batching=false"]).enable_batching \
        is False
    assert parse_flags(["--model_base_path=/m", "--enable_batching", "true"]).enable_batching \
        is True
    assert parse_flags(["--model_config_file=/c.txt"]).model_config_file == "/c.txt"


@pytest.mark.parametrize("argv", [
    [],                                                   # neither base path nor config
    ["--model_base_path=/m", "--bogus_flag=1"],           # unknown flags are errors
    ["--model_base_path=/m", "--port=9", "--rest_api_port=9"],
    ["--model_base_path=/m", "--enable_batching=maybe"],
    ["--model_base_path=/m", "--port=abc"],
    ["--model_base_pa=/m"],                               # no abbreviations
    ["--model_base_path=/m", "--swap_load_nice=20"],      # Linux niceness stops at 19
    ["--model_base_path=/m", "--swap_load_switch_interval_micros=-1"],
])
def test_bad_command_lines_exit_with_usage(argv, capsys):
    with pytest.raises(SystemExit) as excinfo:
        parse_flags(argv)
    assert excinfo.value.code == 2


GOOD_CONFIG = """
model_config_list {
  config {
    name: "ranker"
    base_path: "/srv/serving/ranker"
    model_platform: "tensorflow"
    model_version_policy { latest { num_versions: 2 } }
    version_labels { key: "stable" value: 7 }
  }
}
"""


def test_model_config_file_parsing(tmp_path):
    path = tmp_path / "models.config"
    path.write_text(GOOD_CONFIG)
    config = config_lib.read_model_config_file(str(path))
    model = config.model_config_list.config[0]
    assert (model.name, model.base_path, model.model_version_policy.latest.num_versions) == \
        ("ranker", "/srv/serving/ranker", 2)
    assert dict(model.version_labels) == {"stable": 7}
    config_lib.validate_model_server_config(config)
    path.write_text("model_config_list { config { name: 1 2 3 } }")
    with pytest.raises(config_lib.ConfigError) as excinfo:
        config_lib.read_model_config_file(str(path))
    assert str(excinfo.value).startswith(
        "Error parsing text-format tensorflow.serving.ModelServerConfig")
    with pytest.raises(config_lib.ConfigError, match="Could not read"):
        config_lib.read_model_config_file(str(tmp_path / "missing.config"))


@pytest.mark.parametrize("text, message", [
    ('config { name: "a" base_path: "/a" model_platform: "tensorflow" } '
     'config { name: "a" base_path: "/b" model_platform: "tensorflow" }',
     "Illegal to list model a multiple times in config list"),
    ('config { name: "a" base_path: "a/rel" model_platform: "tensorflow" }',
     "Expected model a to have an absolute path or URI; got base_path()=a/rel"),
    ('config { name: "a" base_path: "/a" }',
     "Illegal setting neither ModelServerConfig::model_type (deprecated) nor "
     "ModelServerConfig::model_platform."),
    ('config { name: "a" base_path: "/a" model_platform: "tflite" }',
     "Model a requests unsupported platform tflite"),
    ('config { name: "a" base_path: "gs://bucket/a" model_platform: "tensorflow" }',
     "only local file system base paths are supported"),
])
def test_config_validation_messages(text, message):
    config = model_server_config_pb2.ModelServerConfig()
    text_format.Parse(f"model_config_list {{ {text} }}", config)
    with pytest.raises(errors.ServingError) as excinfo:
        config_lib.validate_model_server_config(config)
    assert excinfo.value.code.name == "INVALID_ARGUMENT"
    assert message in excinfo.value.message


def test_single_model_config_matches_tf_serving():
    config = config_lib.single_model_config("default", "/models/half_plus_two")
    assert text_format.MessageToString(config) == text_format.MessageToString(
        text_format.Parse('model_config_list { config { name: "default" base_path: '
                          '"/models/half_plus_two" model_platform: "tensorflow" } }',
                          model_server_config_pb2.ModelServerConfig()))


def test_batching_monitoring_and_ssl_configs(tmp_path):
    path = tmp_path / "batching.txt"
    path.write_text("max_batch_size { value: 32 } num_batch_threads { value: 4 }")
    params = config_lib.read_batching_parameters(str(path))
    assert params.max_batch_size.value == 32 and not params.HasField("batch_timeout_micros")
    path.write_text('prometheus_config { enable: true, path: "/metrics" }')
    monitoring = config_lib.read_monitoring_config(str(path))
    assert monitoring.prometheus_config.enable and monitoring.prometheus_config.path == "/metrics"
    path.write_text('server_key: "k" server_cert: "c" client_verify: true')
    with pytest.raises(config_lib.ConfigError, match="client_verify needs custom_ca"):
        config_lib.read_ssl_config(str(path))
    assert config_lib.channel_arguments("grpc.max_connection_age_ms=2000,grpc.lb=x") == [
        ("grpc.max_connection_age_ms", 2000), ("grpc.lb", "x")]
    with pytest.raises(ValueError):
        config_lib.channel_arguments("novalue")


def _version_dir(base, name, complete=True):
    path = base / name
    path.mkdir(parents=True)
    if complete:
        (path / "saved_model.pb").write_bytes(b"")
    return path


def test_scan_base_path(tmp_path):
    base = tmp_path / "model"
    _version_dir(base, "00000123")
    _version_dir(base, "7")
    _version_dir(base, "9", complete=False)
    for skipped in ("abc", "1.5", "-1", "1e3", " 4", "99999999999999999999999"):
        _version_dir(base, skipped)
    (base / "12").write_text("a file, not a directory")
    scan = versions.scan_base_path(str(base))
    assert scan.base_path_exists
    assert sorted(scan.versions) == [7, 123]
    assert sorted(scan.incomplete) == [9]
    assert not versions.scan_base_path(str(tmp_path / "nope")).base_path_exists


@pytest.mark.parametrize("policy_text, expected", [
    ("", {5}),
    ("latest { }", {5}),
    ("latest { num_versions: 2 }", {5, 3}),
    ("latest { num_versions: 10 }", {1, 3, 5}),
    ("all { }", {1, 3, 5}),
    ("specific { versions: 3 versions: 4 }", {3}),
])
def test_version_policies(policy_text, expected):
    config = model_server_config_pb2.ModelConfig()
    text_format.Parse(f"model_version_policy {{ {policy_text} }}", config)
    assert versions.aspired_versions({1, 3, 5}, config.model_version_policy) == expected
    assert versions.aspired_versions(set(), config.model_version_policy) == set()
