"""The server's command line: TF Serving's flag names and defaults (model_servers/main.cc).

Scripts and deployment manifests written for `tensorflow_model_server` must work unchanged, so
every flag keeps its TF Serving name, meaning and default. Both `--flag=value` and
`--flag value` are accepted; booleans also take the bare `--flag` and absl's `--noflag`.
freshrank additions are marked as such in their help text.
"""
from __future__ import annotations

import argparse
import os
from collections.abc import Sequence
from dataclasses import dataclass

_TRUE = {"true", "t", "1", "yes", "y"}
_FALSE = {"false", "f", "0", "no", "n"}


def parse_bool(text: str) -> bool:
    value = text.strip().lower()
    if value in _TRUE:
        return True
    if value in _FALSE:
        return False
    raise argparse.ArgumentTypeError(f"expected true or false, got {text!r}")


@dataclass(frozen=True)
class ServerFlags:
    """Parsed flags; field names are the flag names."""

    port: int
    grpc_socket_path: str
    rest_api_port: int
    rest_api_num_threads: int
    rest_api_timeout_in_ms: int
    enable_batching: bool
    batching_parameters_file: str
    allow_version_labels_for_unavailable_models: bool
    model_config_file: str
    model_config_file_poll_wait_seconds: int
    model_name: str
    model_base_path: str
    max_num_load_retries: int
    load_retry_interval_micros: int
    file_system_poll_wait_seconds: int
    num_load_threads: int
    num_unload_threads: int
    swap_load_nice: int
    swap_load_switch_interval_micros: int
    enable_model_warmup: bool
    saved_model_tags: str
    grpc_channel_arguments: str
    grpc_max_threads: int
    enable_signature_method_name_check: bool
    tensorflow_intra_op_parallelism: int
    tensorflow_inter_op_parallelism: int
    tensorflow_disable_thread_spinning: bool
    load_with_c_api: bool
    monitoring_config_file: str
    ssl_config_file: str
    bind_address: str
    max_request_bytes: int


_BOOL_FLAGS = (
    "enable_batching",
    "allow_version_labels_for_unavailable_models",
    "enable_model_warmup",
    "enable_signature_method_name_check",
    "tensorflow_disable_thread_spinning",
    "load_with_c_api",
)


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="freshrank-model-server",
        description="TensorFlow Serving compatible model server (freshrank).",
        allow_abbrev=False,
    )
    add = parser.add_argument
    add("--port", type=int, default=8500,
        help="Port to listen on for gRPC API (0: pick a free port and print it)")
    add("--grpc_socket_path", default="",
        help="If non-empty, listen to a UNIX socket for gRPC API on the given path")
    add("--rest_api_port", type=int, default=0,
        help="Port to listen on for HTTP/REST API. If set to zero HTTP/REST API will not be "
             "exported. This port must be different than the one specified in --port.")
    add("--rest_api_num_threads", type=int, default=(os.cpu_count() or 1) * 4,
        help="Number of threads for HTTP/REST API processing.")
    add("--rest_api_timeout_in_ms", type=int, default=30000,
        help="Timeout for HTTP/REST API calls.")
    add("--enable_batching", type=parse_bool, nargs="?", const=True, default=False,
        help="enable batching")
    add("--allow_version_labels_for_unavailable_models", type=parse_bool, nargs="?",
        const=True, default=False,
        help="If true, allows assigning unused version labels to models that are not "
             "available yet.")
    add("--batching_parameters_file", default="",
        help="If non-empty, read an ascii BatchingParameters protobuf from the supplied file "
             "name and use the contained values instead of the defaults.")
    add("--model_config_file", default="",
        help="If non-empty, read an ascii ModelServerConfig protobuf from the supplied file "
             "name, and serve the models in that file. If used, --model_name and "
             "--model_base_path are ignored.")
    add("--model_config_file_poll_wait_seconds", type=int, default=0,
        help="Interval in seconds between each poll of the filesystem for model_config_file. "
             "If unset or set to zero, poll will be done exactly once and not periodically.")
    add("--model_name", default="default",
        help="name of model (ignored if --model_config_file flag is set)")
    add("--model_base_path", default="",
        help="path to export (ignored if --model_config_file flag is set, otherwise required)")
    add("--max_num_load_retries", type=int, default=5,
        help="maximum number of times it retries loading a model after the first failure, "
             "before giving up.")
    add("--load_retry_interval_micros", type=int, default=60 * 1000 * 1000,
        help="The interval, in microseconds, between each servable load retry.")
    add("--file_system_poll_wait_seconds", type=int, default=1,
        help="Interval in seconds between each poll of the filesystem for new model version. "
             "If set to zero poll will be exactly done once and not periodically. Setting "
             "this to negative value will disable polling entirely.")
    add("--num_load_threads", type=int, default=0,
        help="The number of threads in the thread-pool used to load servables (0: one).")
    add("--num_unload_threads", type=int, default=0,
        help="The number of threads in the thread-pool used to unload servables (0: one).")
    add("--swap_load_nice", type=int, default=10,
        help="freshrank: while a new version of a serving model loads and warms up, and while "
             "an old version unloads, the thread doing it runs this much nicer (Linux thread "
             "niceness, 0-19; 0: off), so requests to the serving version keep the CPU.")
    add("--swap_load_switch_interval_micros", type=int, default=500,
        help="freshrank: while a new version of a serving model loads or an old one unloads, "
             "Python's interpreter "
             "lock is handed to a waiting request thread after at most this long (Python's "
             "default: 5000; 0: leave it).")
    add("--enable_model_warmup", type=parse_bool, nargs="?", const=True, default=True,
        help="Enables model warmup, which triggers lazy initializations (such as TF "
             "optimizations) at load time, to reduce first request latency.")
    add("--saved_model_tags", default="serve",
        help="Comma-separated set of tags corresponding to the meta graph def to load from "
             "SavedModel.")
    add("--grpc_channel_arguments", default="",
        help="A comma separated list of arguments to be passed to the grpc server. "
             "(e.g. grpc.max_connection_age_ms=2000)")
    add("--grpc_max_threads", type=int, default=max(64, (os.cpu_count() or 1) * 4),
        help="Max grpc server threads to handle grpc messages.")
    add("--enable_signature_method_name_check", type=parse_bool, nargs="?", const=True,
        default=False,
        help="Enable method_name check for SignatureDef. Disable this if serving native TF2 "
             "regression/classification models.")
    add("--tensorflow_intra_op_parallelism", type=int, default=0,
        help="Number of threads to use to parallelize the execution of an individual op "
             "(0: chosen by TensorFlow).")
    add("--tensorflow_inter_op_parallelism", type=int, default=0,
        help="Controls the number of operators that can be executed simultaneously "
             "(0: chosen by TensorFlow).")
    add("--tensorflow_disable_thread_spinning", type=parse_bool, nargs="?", const=True,
        default=True,
        help="freshrank: stop TensorFlow's pool threads from spinning between runs, so they "
             "leave the CPU to the request threads (lower latency on small machines).")
    add("--load_with_c_api", type=parse_bool, nargs="?", const=True, default=False,
        help="freshrank: load and run SavedModels through TensorFlow's C API "
             "(TF_LoadSessionFromSavedModel, as TF Serving's C++ loader), so a version loading "
             "in the background never holds Python's interpreter lock: lower p99 during version "
             "swaps, about 0.1 ms more per request. Default: TensorFlow's Python loader.")
    add("--monitoring_config_file", default="",
        help="If non-empty, read an ascii MonitoringConfig protobuf from the supplied file "
             "name")
    add("--ssl_config_file", default="",
        help="If non-empty, read an ascii SSLConfig protobuf from the supplied file name "
             "and set up a secure gRPC channel")
    add("--bind_address", default="127.0.0.1",
        help="freshrank: address the gRPC and REST ports bind to (TF Serving binds all "
             "interfaces; use 0.0.0.0 for that).")
    add("--max_request_bytes", type=int, default=64 * 1024 * 1024,
        help="freshrank: largest accepted request, for gRPC messages and REST bodies.")
    return parser


def _expand_negated_booleans(argv: Sequence[str]) -> list[str]:
    """absl's `--noenable_batching` spelling becomes `--enable_batching=false`."""
    expanded = []
    for arg in argv:
        for name in _BOOL_FLAGS:
            if arg == f"--no{name}":
                arg = f"--{name}=false"
                break
        expanded.append(arg)
    return expanded


def parse_flags(argv: Sequence[str]) -> ServerFlags:
    """Parses argv (without the program name); exits with a usage message on bad flags."""
    parser = build_parser()
    namespace = parser.parse_args(_expand_negated_booleans(argv))
    if namespace.port == namespace.rest_api_port and namespace.port != 0:
        parser.error("--port and --rest_api_port must be different")
    if not namespace.model_config_file and not namespace.model_base_path:
        parser.error("Both server_model_config and model_base_path cannot be empty! "
                     "Use --model_base_path or --model_config_file.")
    if not 0 <= namespace.swap_load_nice <= 19:
        parser.error("--swap_load_nice must be between 0 and 19")
    if namespace.swap_load_switch_interval_micros < 0:
        parser.error("--swap_load_switch_interval_micros must be 0 or positive")
    if namespace.max_request_bytes <= 0:
        parser.error("--max_request_bytes must be positive")
    return ServerFlags(**vars(namespace))
