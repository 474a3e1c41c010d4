"""Config protos that TF Serving reads but the `tensorflow-serving-api` wheel does not ship.

The wheel (2.16.1) contains `tensorflow_serving.apis` and part of `tensorflow_serving.config`,
but not `session_bundle_config.proto` (BatchingParameters), `monitoring_config.proto` or
`ssl_config.proto`. Their text files are still what operators write, so the server must parse
them exactly. When the official modules exist they are used; otherwise the same messages (same
package, names, field numbers and types as tensorflow/serving) are built here in a private
descriptor pool, so text format parsing behaves identically and nothing clashes with a later
official wheel.
"""
from __future__ import annotations

from typing import Any

from google.protobuf import descriptor_pb2, descriptor_pool, message_factory, wrappers_pb2

_F = descriptor_pb2.FieldDescriptorProto


def _field(name: str, number: int, ftype: int, *, type_name: str = "", repeated: bool = False):
    field = _F(name=name, number=number, type=ftype)
    field.label = _F.LABEL_REPEATED if repeated else _F.LABEL_OPTIONAL
    if type_name:
        field.type_name = type_name
    return field


def _build_private_messages() -> dict[str, Any]:
    pool = descriptor_pool.DescriptorPool()
    wrappers = descriptor_pb2.FileDescriptorProto()
    wrappers_pb2.DESCRIPTOR.CopyToProto(wrappers)
    pool.Add(wrappers)

    session_bundle = descriptor_pb2.FileDescriptorProto(
        name="tensorflow_serving/servables/tensorflow/session_bundle_config.proto",
        package="tensorflow.serving",
        syntax="proto3",
        dependency=["google/protobuf/wrappers.proto"],
    )
    batching = session_bundle.message_type.add(name="BatchingParameters")
    int64_value = ".google.protobuf.Int64Value"
    batching.field.extend(
        [
            _field("max_batch_size", 1, _F.TYPE_MESSAGE, type_name=int64_value),
            _field("batch_timeout_micros", 2, _F.TYPE_MESSAGE, type_name=int64_value),
            _field("max_enqueued_batches", 3, _F.TYPE_MESSAGE, type_name=int64_value),
            _field("num_batch_threads", 4, _F.TYPE_MESSAGE, type_name=int64_value),
            _field("thread_pool_name", 5, _F.TYPE_MESSAGE,
                   type_name=".google.protobuf.StringValue"),
            _field("allowed_batch_sizes", 6, _F.TYPE_INT64, repeated=True),
            _field("pad_variable_length_inputs", 7, _F.TYPE_BOOL),
        ]
    )
    pool.Add(session_bundle)

    monitoring = descriptor_pb2.FileDescriptorProto(
        name="tensorflow_serving/config/monitoring_config.proto",
        package="tensorflow.serving",
        syntax="proto3",
    )
    prometheus = monitoring.message_type.add(name="PrometheusConfig")
    prometheus.field.extend(
        [_field("enable", 1, _F.TYPE_BOOL), _field("path", 2, _F.TYPE_STRING)]
    )
    monitoring_config = monitoring.message_type.add(name="MonitoringConfig")
    monitoring_config.field.append(
        _field("prometheus_config", 1, _F.TYPE_MESSAGE,
               type_name=".tensorflow.serving.PrometheusConfig")
    )
    pool.Add(monitoring)

    ssl = descriptor_pb2.FileDescriptorProto(
        name="tensorflow_serving/config/ssl_config.proto",
        package="tensorflow.serving",
        syntax="proto3",
    )
    ssl_config = ssl.message_type.add(name="SSLConfig")
    ssl_config.field.extend(
        [
            _field("server_key", 1, _F.TYPE_STRING),
            _field("server_cert", 2, _F.TYPE_STRING),
            _field("custom_ca", 3, _F.TYPE_STRING),
            _field("client_verify", 4, _F.TYPE_BOOL),
        ]
    )
    pool.Add(ssl)

    factory = message_factory.MessageFactory(pool)
    return {
        name: factory.GetPrototype(pool.FindMessageTypeByName(f"tensorflow.serving.{name}"))
        for name in ("BatchingParameters", "MonitoringConfig", "PrometheusConfig", "SSLConfig")
    }


def _load() -> dict[str, Any]:
    messages: dict[str, Any] = {}
    try:  # pragma: no cover - only with a wheel that ships these protos
        from tensorflow_serving.servables.tensorflow import session_bundle_config_pb2

        messages["BatchingParameters"] = session_bundle_config_pb2.BatchingParameters
    except ImportError:
        pass
    try:  # pragma: no cover
        from tensorflow_serving.config import monitoring_config_pb2

        messages["MonitoringConfig"] = monitoring_config_pb2.MonitoringConfig
        messages["PrometheusConfig"] = monitoring_config_pb2.PrometheusConfig
    except ImportError:
        pass
    try:  # pragma: no cover
        from tensorflow_serving.config import ssl_config_pb2

        messages["SSLConfig"] = ssl_config_pb2.SSLConfig
    except ImportError:
        pass
    if len(messages) < 4:
        private = _build_private_messages()
        for name, cls in private.items():
            messages.setdefault(name, cls)
    return messages


_MESSAGES = _load()
BatchingParameters = _MESSAGES["BatchingParameters"]
MonitoringConfig = _MESSAGES["MonitoringConfig"]
PrometheusConfig = _MESSAGES["PrometheusConfig"]
SSLConfig = _MESSAGES["SSLConfig"]
