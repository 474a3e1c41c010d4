"""gRPC PredictionService and ModelService on the official tensorflow-serving-api stubs.

Each RPC resolves its ModelSpec through the manager (holding the version for the duration of the
call, so a concurrent swap cannot pull it away), runs it, and maps any failure to TF Serving's
status code and message. Nothing a client sends can escape as an unhandled exception: unknown
errors become INTERNAL, and the server keeps serving.
"""
from __future__ import annotations

import logging
import time
from collections.abc import Callable
from typing import Any

import grpc
from tensorflow_serving.apis import (
    classification_pb2,
    get_model_metadata_pb2,
    inference_pb2,
    model_management_pb2,
    model_service_pb2_grpc,
    predict_pb2,
    prediction_service_pb2_grpc,
    regression_pb2,
)

from serving import errors
from serving.executor import LifoThreadPool
from serving.manager import ModelManager
from serving.metrics import Metrics
from serving.predict_wire import WirePredictRequest

log = logging.getLogger("serving.grpc")

SIGNATURE_DEF_FIELD = "signature_def"
PREDICTION_SERVICE = "tensorflow.serving.PredictionService"


def _require_model_spec(request: Any) -> None:
    if not request.HasField("model_spec"):
        raise errors.invalid_argument("Missing ModelSpec")


class _Service:
    def __init__(self, manager: ModelManager, metrics: Metrics | None):
        self._manager = manager
        self._metrics = metrics

    def _serve(self, api: str, model_name: str, context: grpc.ServicerContext,
               handler: Callable[[], Any]) -> Any:
        start = time.perf_counter()
        error: errors.ServingError | None = None
        try:
            return handler()
        except BaseException as exc:  # noqa: BLE001 - every failure becomes a status
            error = errors.from_exception(exc)
            if error.code == grpc.StatusCode.INTERNAL:
                log.exception("%s failed", api)
        finally:
            if self._metrics is not None and api:
                self._metrics.record_request(
                    model_name, api, "GRPC", "OK" if error is None else error.code.name,
                    (time.perf_counter() - start) * 1e6,
                )
        context.abort(error.code, error.grpc_details())


class PredictionService(_Service, prediction_service_pb2_grpc.PredictionServiceServicer):
    """tensorflow.serving.PredictionService."""

    def Predict(self, request, context):  # noqa: N802 - gRPC method names
        def run():
            _require_model_spec(request)
            with self._manager.servable(request.model_spec) as servable:
                return servable.predict(request)

        return self._serve("Predict", request.model_spec.name, context, run)

    def Classify(self, request, context):  # noqa: N802
        def run():
            _require_model_spec(request)
            with self._manager.servable(request.model_spec) as servable:
                return servable.classify(request)

        return self._serve("Classify", request.model_spec.name, context, run)

    def Regress(self, request, context):  # noqa: N802
        def run():
            _require_model_spec(request)
            with self._manager.servable(request.model_spec) as servable:
                return servable.regress(request)

        return self._serve("Regress", request.model_spec.name, context, run)

    def MultiInference(self, request, context):  # noqa: N802
        def run():
            if not request.tasks:
                raise errors.invalid_argument("MultiInferenceRequest must have at least one task")
            with self._manager.servable(request.tasks[0].model_spec) as servable:
                return servable.multi_inference(request)

        name = request.tasks[0].model_spec.name if request.tasks else ""
        return self._serve("MultiInference", name, context, run)

    def GetModelMetadata(self, request, context):  # noqa: N802
        def run():
            return model_metadata(self._manager, request)

        return self._serve("", request.model_spec.name, context, run)


def model_metadata(manager: ModelManager, request: Any) -> Any:
    """GetModelMetadataImpl (signature_def is the only metadata field)."""
    _require_model_spec(request)
    if not request.metadata_field:
        raise errors.invalid_argument(
            "GetModelMetadataRequest must specify at least one metadata_field"
        )
    for field in request.metadata_field:
        if field != SIGNATURE_DEF_FIELD:
            raise errors.invalid_argument(f"Metadata field {field} is not supported")
    response = get_model_metadata_pb2.GetModelMetadataResponse()
    with manager.servable(request.model_spec) as servable:
        response.model_spec.name = servable.name
        response.model_spec.version.value = servable.version
        response.metadata[SIGNATURE_DEF_FIELD].Pack(servable.signature_def_map())
    return response


class ModelService(_Service, model_service_pb2_grpc.ModelServiceServicer):
    """tensorflow.serving.ModelService."""

    def GetModelStatus(self, request, context):  # noqa: N802
        def run():
            _require_model_spec(request)
            return self._manager.model_status(request.model_spec)

        return self._serve("", request.model_spec.name, context, run)

    def HandleReloadConfigRequest(self, request, context):  # noqa: N802
        response = model_management_pb2.ReloadConfigResponse()
        error: errors.ServingError | None = None
        try:
            if request.config.WhichOneof("config") != "model_config_list":
                raise errors.invalid_argument(
                    "ServerModelConfig type not supported by HandleReloadConfigRequest. Only "
                    "ModelConfigList is currently supported"
                )
            for index, model in enumerate(request.config.model_config_list.config):
                log.info("Config entry index: %d path: %s name: %s platform: %s", index,
                         model.base_path, model.name, model.model_platform)
            self._manager.apply_config(request.config)
        except BaseException as exc:  # noqa: BLE001
            error = errors.from_exception(exc)
            log.error("ReloadConfig failed: %s", error.message)
        if error is None:
            return response
        response.status.error_code = error.code_number
        response.status.error_message = error.message
        context.abort(error.code, error.grpc_details())


def create_server(manager: ModelManager, metrics: Metrics | None, *, max_threads: int,
                  max_request_bytes: int, extra_options: list[tuple[str, Any]]) -> grpc.Server:
    options: list[tuple[str, Any]] = [
        ("grpc.max_receive_message_length", max_request_bytes),
        ("grpc.max_send_message_length", 2**31 - 1),
        ("grpc.so_reuseport", 0),
    ]
    overridden = {key for key, _ in extra_options}
    options = [o for o in options if o[0] not in overridden] + list(extra_options)
    server = grpc.server(LifoThreadPool(max_threads, thread_name_prefix="grpc"),
                         options=options)
    _add_prediction_service(PredictionService(manager, metrics), server)
    model_service_pb2_grpc.add_ModelServiceServicer_to_server(ModelService(manager, metrics),
                                                              server)
    return server


def _add_prediction_service(servicer: PredictionService, server: grpc.Server) -> None:
    """What `prediction_service_pb2_grpc.add_PredictionServiceServicer_to_server` registers,
    except that Predict's requests are parsed by `serving.predict_wire` (no map container)."""
    methods = {
        "Classify": (classification_pb2.ClassificationRequest,
                     classification_pb2.ClassificationResponse),
        "Regress": (regression_pb2.RegressionRequest, regression_pb2.RegressionResponse),
        "Predict": (WirePredictRequest, predict_pb2.PredictResponse),
        "MultiInference": (inference_pb2.MultiInferenceRequest,
                           inference_pb2.MultiInferenceResponse),
        "GetModelMetadata": (get_model_metadata_pb2.GetModelMetadataRequest,
                             get_model_metadata_pb2.GetModelMetadataResponse),
    }
    handlers = {
        name: grpc.unary_unary_rpc_method_handler(
            getattr(servicer, name), request_deserializer=request.FromString,
            response_serializer=response.SerializeToString)
        for name, (request, response) in methods.items()
    }
    server.add_generic_rpc_handlers(
        (grpc.method_handlers_generic_handler(PREDICTION_SERVICE, handlers),))


def server_credentials(ssl_config: Any) -> grpc.ServerCredentials:
    """SSLConfig -> credentials; client_verify requires client certificates signed by custom_ca."""
    return grpc.ssl_server_credentials(
        [(ssl_config.server_key.encode(), ssl_config.server_cert.encode())],
        root_certificates=ssl_config.custom_ca.encode() if ssl_config.custom_ca else None,
        require_client_auth=bool(ssl_config.client_verify),
    )


def host_port(host: str, port: int) -> str:
    return f"[{host}]:{port}" if ":" in host and not host.startswith("[") else f"{host}:{port}"
