"""`freshrank export-serving-config`: TF Serving's models.config and batching parameters.

Both files are read back with the model server's own parsers (TF Serving's text protos and
validation rules, serving/config.py) and with the official ModelServerConfig proto; the
Kubernetes manifest in deploy/ is checked against the names the command writes.
"""
from __future__ import annotations

import json

import pytest
import yaml
from click.testing import CliRunner
from google.protobuf import text_format
from tensorflow_serving.config import model_server_config_pb2

from freshrank import serving_config
from serving import config as server_config
from serving.batching import BatchingOptions
from tests.helpers import REPO

VERSIONS = [1764380000, 1764466400, 1764552800]


@pytest.fixture()
def home(tmp_path):
    model_dir = tmp_path / "home" / "serving" / "ranker"
    for version in VERSIONS:
        (model_dir / str(version) / "variables").mkdir(parents=True)
        (model_dir / str(version) / "saved_model.pb").write_bytes(b"pb")
    # A push still copying (saved_model.pb is written last) and a stray folder: both ignored.
    (model_dir / "1764639200" / "variables").mkdir(parents=True)
    (model_dir / "tmp-upload").mkdir()
    return tmp_path / "home"


def test_export_writes_configs_tf_serving_accepts(home):
    exported = serving_config.export(str(home))
    assert exported.versions == VERSIONS
    config = server_config.read_model_config_file(exported.models_config)
    server_config.validate_model_server_config(config)  # raises where TF Serving's ServerCore would
    (model,) = config.model_config_list.config
    assert model.name == "ranker"
    assert model.base_path == str(home / "serving" / "ranker")
    assert model.model_platform == "tensorflow"
    assert model.model_version_policy.latest.num_versions == 2
    assert dict(model.version_labels) == {"stable": VERSIONS[-1], "previous": VERSIONS[-2]}

    # The official proto reads the same file.
    official = text_format.Parse((home / "serving_config" / "models.config").read_text(),
                                 model_server_config_pb2.ModelServerConfig())
    assert official == config

    params = server_config.read_batching_parameters(exported.batching_config)
    options = BatchingOptions.from_proto(params)  # the server's own validation
    assert (options.max_batch_size, options.batch_timeout_micros, options.max_enqueued_batches,
            options.num_batch_threads) == (128, 2000, 100, 4)


def test_container_base_path_specific_policy_and_extra_labels(home, tmp_path):
    exported = serving_config.export(
        str(home), out_dir=str(tmp_path / "cfg"), base_path="/models/ranker", policy="specific",
        extra_labels={"canary": VERSIONS[0]},
        batching=serving_config.Batching(max_batch_size=64, allowed_batch_sizes=(8, 16, 32, 64)),
    )
    config = server_config.read_model_config_file(str(tmp_path / "cfg" / "models.config"))
    server_config.validate_model_server_config(config)
    (model,) = config.model_config_list.config
    assert model.base_path == "/models/ranker"
    assert list(model.model_version_policy.specific.versions) == VERSIONS
    assert dict(model.version_labels) == {"stable": VERSIONS[2], "previous": VERSIONS[1], "canary": VERSIONS[0]}
    assert exported.served == VERSIONS
    options = BatchingOptions.from_proto(server_config.read_batching_parameters(exported.batching_config))
    assert options.allowed_batch_sizes == (8, 16, 32, 64)


def test_labels_only_name_versions_the_server_will_load(home):
    with pytest.raises(ValueError, match="older than the 2 newest"):
        serving_config.export(str(home), extra_labels={"canary": VERSIONS[0]})  # latest policy drops it
    with pytest.raises(ValueError, match="not a complete pushed version"):
        serving_config.export(str(home), extra_labels={"canary": 1764639200})  # still being copied
    with pytest.raises(ValueError, match="absolute"):
        serving_config.export(str(home), base_path="models/ranker")
    with pytest.raises(ValueError, match="NAME=VERSION"):
        serving_config.parse_labels(["canary:1"])
    with pytest.raises(ValueError, match="max_batch_size"):
        serving_config.Batching(max_batch_size=64, allowed_batch_sizes=(8, 32)).to_text()


def test_no_push_yet_serves_whatever_comes_first(tmp_path):
    exported = serving_config.export(str(tmp_path / "empty"), keep=1)
    config = server_config.read_model_config_file(exported.models_config)
    (model,) = config.model_config_list.config
    assert exported.versions == [] and not model.version_labels
    assert model.model_version_policy.latest.num_versions == 1


def test_cli(home):
    from freshrank.cli import main

    result = CliRunner().invoke(main, ["export-serving-config", "--home", str(home), "--base-path",
                                       "/models/ranker", "--keep", "3", "--label", f"canary={VERSIONS[0]}",
                                       "--max-batch-size", "32", "--allowed-batch-sizes", "8,16,32"])
    assert result.exit_code == 0, result.output
    summary = json.loads(result.stdout)
    assert summary["labels"] == {"stable": VERSIONS[2], "previous": VERSIONS[1], "canary": VERSIONS[0]}
    assert summary["models_config"] == str(home / "serving_config" / "models.config")
    config = server_config.read_model_config_file(summary["models_config"])
    assert config.model_config_list.config[0].model_version_policy.latest.num_versions == 3
    bad = CliRunner().invoke(main, ["export-serving-config", "--home", str(home), "--label", "canary=1"])
    assert bad.exit_code == 2 and "not a complete pushed version" in bad.output


def test_kubernetes_manifest_reads_the_exported_files():
    docs = list(yaml.safe_load_all((REPO / "deploy" / "kubernetes" / "tf-serving.yaml").read_text()))
    deployment = next(d for d in docs if d["kind"] == "Deployment")
    pod = deployment["spec"]["template"]["spec"]
    (container,) = pod["containers"]
    assert container["image"].startswith("tensorflow/serving:")
    args = dict(a[2:].split("=", 1) for a in container["args"])
    config_mount = next(m["mountPath"] for m in container["volumeMounts"] if m["name"] == "config")
    assert args["model_config_file"] == f"{config_mount}/{serving_config.MODELS_CONFIG}"
    assert args["batching_parameters_file"] == f"{config_mount}/{serving_config.BATCHING_CONFIG}"
    assert args["enable_batching"] == "true"
    volume = next(v for v in pod["volumes"] if v["name"] == "config")
    assert volume["configMap"]["name"] == "freshrank-serving-config"
    assert {p["containerPort"] for p in container["ports"]} == {int(args["port"]), int(args["rest_api_port"])}
    service = next(d for d in docs if d["kind"] == "Service")
    assert service["spec"]["selector"] == deployment["spec"]["selector"]["matchLabels"]
