"""The HTTP/REST API on --rest_api_port (http_rest_api_handler.cc, http_server.cc).

Routes (paths are case-insensitive, model names and labels URL-decoded):
  POST /v1/models/<m>[/versions/<n>|/labels/<l>]:(predict|classify|regress)
  GET  /v1/models/<m>[/versions/<n>|/labels/<l>]            model status
  GET  /v1/models/<m>[/versions/<n>|/labels/<l>]/metadata   signature defs
  GET  <prometheus path>                                    metrics, when enabled
Any other /v1 request is "Malformed request" (400). Errors are {"error": "..."} with TF
Serving's HTTP codes. Bodies above --max_request_bytes are refused with 413 before being read,
requests run on a bounded pool, and --rest_api_timeout_in_ms bounds how long a caller waits.
"""
from __future__ import annotations

import logging
import re
import socket
import time
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from concurrent.futures import TimeoutError as FutureTimeout
from http import HTTPStatus
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any
from urllib.parse import unquote

import grpc
from tensorflow_serving.apis import (
    classification_pb2,
    get_model_metadata_pb2,
    get_model_status_pb2,
    model_pb2,
    predict_pb2,
    regression_pb2,
)

from serving import errors, rest_json
from serving.grpc_service import model_metadata
from serving.manager import ModelManager
from serving.metrics import Metrics

log = logging.getLogger("serving.rest")

PREDICTION_PATH = re.compile(
    r"(?i)/v1/models/([^/:]+)(?:(?:/versions/(\d+))|(?:/labels/([^/:]+)))?"
    r":(classify|regress|predict)"
)
STATUS_PATH = re.compile(
    r"(?i)/v1/models(?:/([^/:]+))?(?:(?:/versions/(\d+))|(?:/labels/([^/:]+)))?(?:/(metadata))?"
)
V1_PATH = re.compile(r"(?i)/v1/.*")
_API_NAMES = {"predict": "Predict", "classify": "Classify", "regress": "Regress"}


class RestApi:
    """Transport-independent request handling: (method, path, body) -> (status, json)."""

    def __init__(self, manager: ModelManager, metrics: Metrics | None, timeout_ms: int,
                 num_threads: int, monitoring_path: str = ""):
        self._manager = manager
        self._metrics = metrics
        self._timeout_s = timeout_ms / 1000.0 if timeout_ms > 0 else None
        self._pool = ThreadPoolExecutor(max_workers=max(1, num_threads),
                                        thread_name_prefix="rest")
        self.monitoring_path = monitoring_path

    def handle(self, method: str, path: str, body: bytes) -> tuple[int, str, str]:
        """Returns (HTTP status, content type, body)."""
        if self.monitoring_path and path == self.monitoring_path and self._metrics is not None:
            if method != "GET":
                return (HTTPStatus.METHOD_NOT_ALLOWED, "application/json",
                        rest_json.error_json(f"{method} is not supported on {path}"))
            return HTTPStatus.OK, "text/plain; version=0.0.4", self._metrics.render()
        if not V1_PATH.fullmatch(path):
            return (HTTPStatus.NOT_FOUND, "application/json",
                    rest_json.error_json(f"Not found: {path}"))
        start = time.perf_counter()
        api, model_name = "", ""
        try:
            api, model_name, work = self._route(method, path, body)
            future = self._pool.submit(work)
            try:
                output = future.result(timeout=self._timeout_s)
            except FutureTimeout:
                future.cancel()
                raise errors.ServingError(grpc.StatusCode.DEADLINE_EXCEEDED,
                                          "Deadline Exceeded") from None
            status_name = "OK"
            result = (HTTPStatus.OK, "application/json", output)
        except BaseException as exc:  # noqa: BLE001 - every failure becomes an error body
            error = errors.from_exception(exc)
            if error.code == grpc.StatusCode.INTERNAL:
                log.exception("REST %s %s failed", method, path)
            status_name = error.code.name
            result = (error.http_status, "application/json", rest_json.error_json(error.message))
        if self._metrics is not None and api:
            self._metrics.record_request(model_name, api, "REST", status_name,
                                         (time.perf_counter() - start) * 1e6)
        return result

    def _route(self, method: str, path: str, body: bytes) -> tuple[str, str, Callable[[], str]]:
        if method == "POST":
            match = PREDICTION_PATH.fullmatch(path)
            if match:
                name, version, label, verb = match.groups()
                spec = _model_spec(name, version, label)
                if verb == "predict":
                    return "Predict", spec.name, lambda: self._predict(spec, body)
                if verb == "classify":
                    return "Classify", spec.name, lambda: self._classify(spec, body)
                if verb == "regress":
                    return "Regress", spec.name, lambda: self._regress(spec, body)
        elif method == "GET":
            match = STATUS_PATH.fullmatch(path)
            if match:
                name, version, label, subresource = match.groups()
                if not name:
                    raise errors.invalid_argument("Missing model name in request.")
                spec = _model_spec(name, version, label)
                if subresource == "metadata":
                    return "", spec.name, lambda: self._metadata(spec)
                return "", spec.name, lambda: self._status(spec)
        raise errors.invalid_argument(f"Malformed request: {method} {path}")

    def _predict(self, spec: Any, body: bytes) -> str:
        doc = rest_json.parse_object(body)
        request = predict_pb2.PredictRequest()
        request.model_spec.CopyFrom(spec)
        request.model_spec.signature_name = rest_json.signature_name(doc)
        with self._manager.servable(request.model_spec) as servable:
            signature = servable.signature(request.model_spec.signature_name)
            if signature is None:
                wanted = request.model_spec.signature_name or "serving_default"
                raise errors.invalid_argument(
                    f'Serving signature name: "{wanted}" not found in signature def'
                )
            request_format = rest_json.fill_predict_inputs(doc, signature.inputs,
                                                           request.inputs)
            response = servable.predict(request)
        return rest_json.predict_response_json(response.outputs, request_format)

    def _classify(self, spec: Any, body: bytes) -> str:
        doc = rest_json.parse_object(body)
        request = classification_pb2.ClassificationRequest()
        request.model_spec.CopyFrom(spec)
        rest_json.fill_example_request(doc, request)
        with self._manager.servable(request.model_spec) as servable:
            response = servable.classify(request)
        return rest_json.classification_json(response.result)

    def _regress(self, spec: Any, body: bytes) -> str:
        doc = rest_json.parse_object(body)
        request = regression_pb2.RegressionRequest()
        request.model_spec.CopyFrom(spec)
        rest_json.fill_example_request(doc, request)
        with self._manager.servable(request.model_spec) as servable:
            response = servable.regress(request)
        return rest_json.regression_json(response.result)

    def _status(self, spec: Any) -> str:
        request = get_model_status_pb2.GetModelStatusRequest()
        request.model_spec.CopyFrom(spec)
        return rest_json.status_json(self._manager.model_status(request.model_spec))

    def _metadata(self, spec: Any) -> str:
        request = get_model_metadata_pb2.GetModelMetadataRequest()
        request.model_spec.CopyFrom(spec)
        request.metadata_field.append("signature_def")
        response = model_metadata(self._manager, request)
        signature_map = get_model_metadata_pb2.SignatureDefMap()
        response.metadata["signature_def"].Unpack(signature_map)
        return rest_json.metadata_json(response.model_spec, signature_map)

    def close(self) -> None:
        self._pool.shutdown(wait=False, cancel_futures=True)


def _model_spec(name: str, version: str | None, label: str | None) -> Any:
    spec = model_pb2.ModelSpec()
    spec.name = unquote(name)
    if version is not None:
        number = int(version)
        if number >= 2**63:
            raise errors.invalid_argument(f"Failed to convert version: {version} to numeric.")
        spec.version.value = number
    if label is not None:
        spec.version_label = unquote(label)
    return spec


class _BodyTooLarge(Exception):
    pass


def _make_handler(api: RestApi, max_body_bytes: int, socket_timeout_s: float):
    class Handler(BaseHTTPRequestHandler):
        protocol_version = "HTTP/1.1"
        server_version = "freshrank-model-server"
        timeout = socket_timeout_s

        def log_message(self, format: str, *args: Any) -> None:  # noqa: A002
            log.debug("%s - %s", self.address_string(), format % args)

        def _read_body(self) -> bytes:
            if "chunked" in self.headers.get("Transfer-Encoding", "").lower():
                return self._read_chunked()
            length_header = self.headers.get("Content-Length")
            if not length_header:
                return b""
            try:
                length = int(length_header)
            except ValueError as exc:
                raise errors.invalid_argument("Bad Content-Length header") from exc
            if length < 0:
                raise errors.invalid_argument("Bad Content-Length header")
            if length > max_body_bytes:
                # Read and drop a moderately oversized body so the client sees the 413 instead
                # of a reset connection; anything larger is cut off.
                if length <= 2 * max_body_bytes + (1 << 20):
                    remaining = length
                    while remaining > 0:
                        chunk = self.rfile.read(min(remaining, 1 << 16))
                        if not chunk:
                            break
                        remaining -= len(chunk)
                raise _BodyTooLarge(length)
            return self.rfile.read(length)

        def _read_chunked(self) -> bytes:
            chunks = []
            total = 0
            while True:
                line = self.rfile.readline(1024)
                try:
                    size = int(line.split(b";")[0].strip() or b"x", 16)
                except ValueError as exc:
                    raise errors.invalid_argument("Bad chunked encoding") from exc
                if size == 0:
                    while self.rfile.readline(1024) not in (b"\r\n", b"\n", b""):
                        pass
                    return b"".join(chunks)
                total += size
                if total > max_body_bytes:
                    raise _BodyTooLarge(total)
                chunks.append(self.rfile.read(size))
                self.rfile.readline(1024)

        def _reply(self, status: int, content_type: str, body: str) -> None:
            data = body.encode("utf-8")
            self.send_response(status)
            self.send_header("Content-Type", content_type)
            self.send_header("Content-Length", str(len(data)))
            self.end_headers()
            if self.command != "HEAD":
                self.wfile.write(data)

        def _handle(self) -> None:
            path = self.path.split("?", 1)[0]
            try:
                body = self._read_body()
            except _BodyTooLarge as exc:
                self.close_connection = True
                self._reply(HTTPStatus.REQUEST_ENTITY_TOO_LARGE, "application/json",
                            rest_json.error_json(
                                f"Request body of {exc.args[0]} bytes exceeds the limit of "
                                f"{max_body_bytes} bytes (--max_request_bytes)"))
                return
            except errors.ServingError as exc:
                self.close_connection = True
                self._reply(exc.http_status, "application/json",
                            rest_json.error_json(exc.message))
                return
            except (TimeoutError, OSError):
                self.close_connection = True
                return
            status, content_type, text = api.handle(self.command, path, body)
            self._reply(status, content_type, text)

        do_GET = _handle  # noqa: N815
        do_POST = _handle  # noqa: N815
        do_PUT = _handle  # noqa: N815
        do_DELETE = _handle  # noqa: N815
        do_PATCH = _handle  # noqa: N815
        do_HEAD = _handle  # noqa: N815

    return Handler


class RestServer(ThreadingHTTPServer):
    daemon_threads = True
    allow_reuse_address = True
    request_queue_size = 128

    def __init__(self, address: tuple[str, int], handler: type, ipv6: bool):
        self.address_family = socket.AF_INET6 if ipv6 else socket.AF_INET
        super().__init__(address, handler)


def create_rest_server(api: RestApi, host: str, port: int, max_body_bytes: int,
                       socket_timeout_s: float = 60.0) -> RestServer:
    handler = _make_handler(api, max_body_bytes, socket_timeout_s)
    return RestServer((host, port), handler, ipv6=":" in host)
