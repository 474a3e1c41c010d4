"""`freshrank-model-server`: wiring flags, configs, the manager and the gRPC / REST servers.

Start-up follows tensorflow_model_server: read the configs, load every model's initial
versions (the server exits if a model's versions all fail, as TF Serving does), then open the
gRPC port and the REST port and print where they listen:

  Running gRPC ModelServer at 127.0.0.1:8500 ...
  Exporting HTTP/REST API at:127.0.0.1:8501 ...

and for each version that becomes available:

  Successfully loaded servable version {name: ranker version: 1700000000}

Run as `freshrank-model-server --flags...` or `python -m serving.main --flags...`.
"""
from __future__ import annotations

import dataclasses
import gc
import logging
import os
import signal
import sys
import threading
from collections.abc import Sequence
from typing import Any

log = logging.getLogger("serving.main")


def _configure_logging() -> None:
    handler = logging.StreamHandler(sys.stderr)
    handler.setFormatter(logging.Formatter(
        "%(asctime)s.%(msecs)03d: %(levelname).1s %(name)s] %(message)s", "%Y-%m-%d %H:%M:%S"))
    root = logging.getLogger()
    root.handlers[:] = [handler]
    root.setLevel(logging.INFO)


def _import_tensorflow() -> None:
    """TensorFlow plus tensorflow_text, whose ops the ranker's graph uses (TF Serving #1490)."""
    os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
    os.environ.setdefault("TF_USE_LEGACY_KERAS", "1")
    import tensorflow  # noqa: F401

    try:
        import tensorflow_text  # noqa: F401
    except ImportError as exc:  # pragma: no cover - installed with the project
        log.warning("tensorflow_text is not importable (%s); models using its ops will fail "
                    "to load", exc)
    # TensorFlow's own Python logger would otherwise print every deprecation warning.
    logging.getLogger("tensorflow").setLevel(logging.ERROR)


def _tune_garbage_collector() -> None:
    """Keeps the cyclic garbage collector off the request path.

    Every request allocates protobuf, gRPC and numpy objects, so the collector runs often, and
    each full collection walks the few hundred thousand objects TensorFlow creates at import.
    Freezing those (they live as long as the process) and collecting the young generation less
    often cut the server's CPU per request measurably (docs/serving-performance.md); garbage
    is still collected, only in larger steps.
    """
    gc.collect()
    gc.freeze()
    gc.set_threshold(20_000, 20, 20)


def _watch_config_file(manager: Any, path: str, interval_s: int, first: Any,
                       stop: threading.Event) -> None:
    """Re-reads --model_config_file every interval and applies it when it changed."""
    from serving import config as config_lib
    from serving import errors

    applied = first
    last_error = ""
    while not stop.wait(interval_s):
        try:
            config = config_lib.read_model_config_file(path)
        except config_lib.ConfigError as exc:
            if str(exc) != last_error:
                log.error("Failed to read model config file: %s", exc)
                last_error = str(exc)
            continue
        if config == applied:
            continue
        try:
            manager.apply_config(config)
            applied = config
            last_error = ""
        except errors.ServingError as exc:
            if str(exc) != last_error:
                log.error("Failed to reload model config file %s: %s", path, exc)
                last_error = str(exc)


class StartupError(Exception):
    """The server cannot start; the message is what TF Serving would print."""


@dataclasses.dataclass
class ServerOptions:
    """Everything the flags and the files they name say, read before TensorFlow is imported, so a
    bad file fails in a second (TF Serving's `Server::Options`)."""

    flags: Any
    model_config: Any
    monitoring: Any
    ssl_config: Any
    batching: Any
    channel_args: list

    @classmethod
    def from_flags(cls, flags: Any) -> ServerOptions:
        from serving import config as config_lib
        from serving.batching import BatchingOptions

        try:
            if flags.model_config_file:
                model_config = config_lib.read_model_config_file(flags.model_config_file)
            else:
                # TF Serving rejects a relative --model_base_path; resolving it against the working
                # directory accepts more and changes nothing for absolute paths.
                model_config = config_lib.single_model_config(
                    flags.model_name, os.path.abspath(flags.model_base_path)
                    if "://" not in flags.model_base_path else flags.model_base_path)
            if not flags.allow_version_labels_for_unavailable_models:
                config_lib.check_startup_labels(model_config)
            monitoring = config_lib.read_monitoring_config(flags.monitoring_config_file)
            ssl_config = (config_lib.read_ssl_config(flags.ssl_config_file)
                          if flags.ssl_config_file else None)
            batching = None
            if flags.enable_batching:
                batching = BatchingOptions.from_proto(
                    config_lib.read_batching_parameters(flags.batching_parameters_file))
            channel_args = config_lib.channel_arguments(flags.grpc_channel_arguments)
        except (config_lib.ConfigError, ValueError) as exc:
            raise StartupError(f"Failed to start server. Error: {exc}") from None
        return cls(flags, model_config, monitoring, ssl_config, batching, channel_args)


class Server:
    """The model server's pieces, built and started in TF Serving's order (`Server::BuildAndStart`:
    models loaded, then the gRPC port, then the REST port), run until a signal, stopped."""

    def __init__(self, options: ServerOptions):
        self.options = options
        self.metrics = self.batcher = self.manager = None
        self.grpc_server = self.rest_server = self.rest_api = None
        self._stop = threading.Event()

    def build_and_start(self) -> None:
        """Raises StartupError; what was started before the failure is stopped by `stop()`."""
        self._start_models()
        self._start_grpc()
        if self.options.flags.rest_api_port > 0:
            self._start_rest()

    def _start_models(self) -> None:
        from serving import errors
        from serving.batching import BatchScheduler
        from serving.manager import ManagerOptions, ModelManager
        from serving.metrics import Metrics
        from serving.servable import LoadOptions

        flags = self.options.flags
        self.metrics = Metrics()
        if self.options.batching:
            self.batcher = BatchScheduler(self.options.batching, on_batch=self.metrics.record_batch)
        load_options = LoadOptions(
            tags=tuple(t.strip() for t in flags.saved_model_tags.split(",") if t.strip()),
            intra_op_threads=flags.tensorflow_intra_op_parallelism,
            inter_op_threads=flags.tensorflow_inter_op_parallelism,
            enable_warmup=flags.enable_model_warmup,
            method_name_check=flags.enable_signature_method_name_check,
            disable_thread_spinning=flags.tensorflow_disable_thread_spinning,
            use_c_api=flags.load_with_c_api,
            background_nice=flags.swap_load_nice,
        )
        self.manager = ModelManager(
            ManagerOptions(
                file_system_poll_wait_seconds=flags.file_system_poll_wait_seconds,
                max_num_load_retries=flags.max_num_load_retries,
                load_retry_interval_s=flags.load_retry_interval_micros / 1e6,
                num_load_threads=flags.num_load_threads,
                num_unload_threads=flags.num_unload_threads,
                swap_load_nice=flags.swap_load_nice,
                swap_load_switch_interval_s=flags.swap_load_switch_interval_micros / 1e6,
                allow_version_labels_for_unavailable_models=(
                    flags.allow_version_labels_for_unavailable_models),
                load_options=load_options,
            ),
            metrics=self.metrics,
            batcher=self.batcher,
        )
        try:
            self.manager.apply_config(self.options.model_config)
        except errors.ServingError as exc:
            raise StartupError(f"Failed to start server. Error: {exc}") from None
        self.manager.start_polling()
        if flags.model_config_file and flags.model_config_file_poll_wait_seconds > 0:
            threading.Thread(
                target=_watch_config_file,
                args=(self.manager, flags.model_config_file, flags.model_config_file_poll_wait_seconds,
                      self.options.model_config, self._stop),
                name="model_config_poll", daemon=True,
            ).start()

    def _start_grpc(self) -> None:
        from serving import grpc_service

        flags, ssl_config = self.options.flags, self.options.ssl_config
        self.grpc_server = grpc_service.create_server(
            self.manager, self.metrics, max_threads=flags.grpc_max_threads,
            max_request_bytes=flags.max_request_bytes, extra_options=self.options.channel_args)
        address = grpc_service.host_port(flags.bind_address, flags.port)
        try:
            if ssl_config is not None:
                port = self.grpc_server.add_secure_port(address, grpc_service.server_credentials(ssl_config))
            else:
                port = self.grpc_server.add_insecure_port(address)
            if flags.grpc_socket_path:
                self.grpc_server.add_insecure_port(f"unix:{flags.grpc_socket_path}")
        except RuntimeError as exc:
            port = 0
            log.error("%s", exc)
        if not port:
            self.grpc_server = None
            raise StartupError(f"Failed to start server. Error: could not bind gRPC port {address}")
        self.grpc_server.start()
        log.info("Running gRPC ModelServer at %s ...", grpc_service.host_port(flags.bind_address, port))
        if ssl_config is not None:
            log.info("gRPC uses TLS%s", " with client certificate verification"
                     if ssl_config.client_verify else "")

    def _start_rest(self) -> None:
        from serving import grpc_service, rest

        flags, monitoring = self.options.flags, self.options.monitoring
        self.rest_api = rest.RestApi(
            self.manager, self.metrics, flags.rest_api_timeout_in_ms, flags.rest_api_num_threads,
            monitoring_path=(monitoring.prometheus_config.path or "/monitoring/prometheus/metrics")
            if monitoring.prometheus_config.enable else "",
        )
        try:
            self.rest_server = rest.create_rest_server(self.rest_api, flags.bind_address,
                                                       flags.rest_api_port, flags.max_request_bytes)
        except OSError as exc:
            raise StartupError(f"Failed to start HTTP Server at {flags.bind_address}:{flags.rest_api_port}: "
                               f"{exc}") from None
        threading.Thread(target=self.rest_server.serve_forever, kwargs={"poll_interval": 0.1},
                         name="rest", daemon=True).start()
        log.info("Exporting HTTP/REST API at:%s ...",
                 grpc_service.host_port(flags.bind_address, self.rest_server.server_address[1]))

    def wait_for_termination(self) -> None:
        """Until SIGTERM or SIGINT."""
        def _shutdown(signum: int, _frame: Any) -> None:
            log.info("Received signal %d, shutting down", signum)
            self._stop.set()

        signal.signal(signal.SIGTERM, _shutdown)
        signal.signal(signal.SIGINT, _shutdown)
        while not self._stop.wait(3600):
            pass

    def stop(self) -> None:
        """Stops whatever was started, newest first: REST, gRPC, models, batching."""
        self._stop.set()
        if self.grpc_server is not None:
            self.grpc_server.stop(grace=1).wait(2)
        if self.rest_server is not None:
            self.rest_server.shutdown()
            self.rest_server.server_close()
        if self.rest_api is not None:
            self.rest_api.close()
        if self.manager is not None:
            self.manager.stop()
        if self.batcher is not None:
            self.batcher.stop()


def run(argv: Sequence[str]) -> int:
    from serving.flags import parse_flags

    flags = parse_flags(argv)
    _configure_logging()
    try:
        options = ServerOptions.from_flags(flags)
    except StartupError as exc:
        print(exc, file=sys.stderr, flush=True)
        return 1
    _import_tensorflow()
    _tune_garbage_collector()
    server = Server(options)
    try:
        server.build_and_start()
    except StartupError as exc:
        print(exc, file=sys.stderr, flush=True)
        server.stop()
        return 1
    server.wait_for_termination()
    server.stop()
    log.info("Server stopped")
    return 0


def main(argv: Sequence[str] | None = None, fast_exit: bool = True) -> int:
    """Console-script entry point (`freshrank-model-server`).

    Once the server has shut down cleanly, the process exits at once (os._exit): TensorFlow's
    and gRPC's interpreter-exit handlers would otherwise take seconds and hold nothing that
    still needs saving. Pass fast_exit=False to get the exit code back instead.
    """
    code = run(sys.argv[1:] if argv is None else argv)
    if fast_exit:
        logging.shutdown()
        sys.stdout.flush()
        sys.stderr.flush()
        os._exit(code)
    return code


if __name__ == "__main__":
    sys.exit(main())
