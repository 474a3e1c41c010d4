"""Reading and validating the server's text-proto config files.

The model config file is TF Serving's `ModelServerConfig` text proto (tensorflow_serving.config);
batching, monitoring and SSL configs are their TF Serving protos too (see `serving.protos`).
Validation follows server_core.cc so that a config this server accepts is one the real TF
Serving accepts, and a config it rejects fails with the same message.
"""
from __future__ import annotations

import os
from typing import Any

from google.protobuf import text_format
from tensorflow_serving.config import model_server_config_pb2

from serving import errors, protos

TENSORFLOW_PLATFORM = "tensorflow"


class ConfigError(Exception):
    """A config file that cannot be used; the message is what TF Serving would print."""


def _read_text(path: str) -> str:
    try:
        with open(path, encoding="utf-8") as f:
            return f.read()
    except (OSError, UnicodeDecodeError) as exc:
        raise ConfigError(f"Could not read {path}: {exc}") from exc


def parse_text_proto(text: str, message: Any, path: str = "<string>") -> Any:
    try:
        return text_format.Parse(text, message)
    except text_format.ParseError as exc:
        raise ConfigError(
            f"Error parsing text-format {message.DESCRIPTOR.full_name}: {exc} (file {path})"
        ) from exc


def single_model_config(model_name: str, base_path: str) -> Any:
    """The config TF Serving builds from --model_name/--model_base_path."""
    config = model_server_config_pb2.ModelServerConfig()
    model = config.model_config_list.config.add()
    model.name = model_name
    model.base_path = base_path
    model.model_platform = TENSORFLOW_PLATFORM
    return config


def read_model_config_file(path: str) -> Any:
    config = parse_text_proto(_read_text(path), model_server_config_pb2.ModelServerConfig(), path)
    return config


def validate_model_server_config(config: Any) -> None:
    """Raises ServingError exactly where ServerCore::ReloadConfig would reject the config."""
    kind = config.WhichOneof("config")
    if kind == "custom_model_config":
        raise errors.invalid_argument(
            "ServerModelConfig type not supported by HandleReloadConfigRequest. Only "
            "ModelConfigList is currently supported"
        )
    if kind is None:
        return
    names: set[str] = set()
    for model in config.model_config_list.config:
        if model.name in names:
            raise errors.invalid_argument(
                f"Illegal to list model {model.name} multiple times in config list"
            )
        names.add(model.name)
        if not model.name:
            raise errors.invalid_argument("Model names in the config list must not be empty")
        if not _is_absolute_path_or_uri(model.base_path):
            raise errors.invalid_argument(
                f"Expected model {model.name} to have an absolute path or URI; "
                f"got base_path()={model.base_path}"
            )
        if "://" in model.base_path:
            raise errors.invalid_argument(
                f"Model {model.name}: only local file system base paths are supported by "
                f"freshrank-model-server; got base_path()={model.base_path}"
            )
        platform = model_platform(model)
        if platform != TENSORFLOW_PLATFORM:
            raise errors.invalid_argument(
                f"Model {model.name} requests unsupported platform {platform}"
            )
        policy = model.model_version_policy
        if policy.WhichOneof("policy_choice") == "latest" and policy.latest.num_versions < 0:
            raise errors.invalid_argument(
                f"Model {model.name}: latest.num_versions must not be negative"
            )


def check_startup_labels(config: Any) -> None:
    """TF Serving assigns labels before loading anything, so at start-up every label points at
    a version that is not AVAILABLE yet and the server refuses to start. Checked here, before
    TensorFlow is imported, to fail in a second (--allow_version_labels_for_unavailable_models
    skips this)."""
    if config.WhichOneof("config") != "model_config_list":
        return
    for model in config.model_config_list.config:
        for version in model.version_labels.values():
            raise ConfigError(
                f"Request to assign label to version {version} of model {model.name}, which is "
                "not currently available for inference"
            )


def model_platform(model: Any) -> str:
    if model.model_type:  # deprecated ModelType enum: 1 == TENSORFLOW
        if model.model_platform:
            raise errors.invalid_argument(
                "Illegal setting both ModelServerConfig::model_type (deprecated) and "
                "ModelServerConfig::model_platform."
            )
        if model.model_type == 1:
            return TENSORFLOW_PLATFORM
        raise errors.invalid_argument(
            f"ModelServerConfig::model_type choice {model.model_type} not supported."
        )
    if not model.model_platform:
        raise errors.invalid_argument(
            "Illegal setting neither ModelServerConfig::model_type (deprecated) nor "
            "ModelServerConfig::model_platform."
        )
    return model.model_platform


def _is_absolute_path_or_uri(path: str) -> bool:
    return os.path.isabs(path) or "://" in path


def read_batching_parameters(path: str) -> Any:
    params = protos.BatchingParameters()
    if path:
        parse_text_proto(_read_text(path), params, path)
    return params


def read_monitoring_config(path: str) -> Any:
    config = protos.MonitoringConfig()
    if path:
        parse_text_proto(_read_text(path), config, path)
    return config


def read_ssl_config(path: str) -> Any:
    config = protos.SSLConfig()
    parse_text_proto(_read_text(path), config, path)
    if not config.server_key or not config.server_cert:
        raise ConfigError(f"SSLConfig in {path} needs both server_key and server_cert")
    if config.client_verify and not config.custom_ca:
        raise ConfigError(f"SSLConfig in {path}: client_verify needs custom_ca")
    return config


def channel_arguments(text: str) -> list[tuple[str, Any]]:
    """--grpc_channel_arguments: "key=value,key2=value2"; integer values stay integers."""
    args: list[tuple[str, Any]] = []
    for item in filter(None, (part.strip() for part in text.split(","))):
        key, sep, value = item.partition("=")
        if not sep:
            raise ValueError(f"bad --grpc_channel_arguments entry {item!r} (want key=value)")
        try:
            args.append((key.strip(), int(value)))
        except ValueError:
            args.append((key.strip(), value.strip()))
    return args
