"""A `freshrank-model-server` subprocess over a serving directory, as the demo and tests use it.

Why a subprocess and not an in-process server: the demo trains (TensorFlow, Beam) in its own
process, and the point is to show the Pusher -> model server hand-off exactly as production
runs it: a separate server polls the directory and loads each new version on its own.

`ModelServerProcess` starts it through the shared launcher (serving/process.py: port 0, the
port read from its log, SIGTERM then SIGKILL), waits for versions through gRPC `GetModelStatus`, ranks through gRPC `Predict`
(one request per search, all candidates batched), and always stops the server on exit, also
on Ctrl-C or an error.
"""
from __future__ import annotations

import os
import threading
import time
from collections.abc import Sequence
from concurrent.futures import ThreadPoolExecutor
from typing import Any

from serving.client import MAX_MESSAGE_BYTES, RankError, build_predict_request, scores_from_response
from serving.process import ServerFailed, ServerProcess

AVAILABLE = 30  # tensorflow_serving.apis.get_model_status_pb2.ModelVersionStatus.AVAILABLE


class ModelServerProcess:
    """Starts the server on `base_path` (created if missing); use as a context manager."""

    def __init__(self, base_path: str, log_path: str, model_name: str = "ranker",
                 poll_seconds: int = 1, start_timeout_s: float = 180.0):
        self.base_path = os.path.abspath(base_path)
        self.log_path = log_path
        self.model_name = model_name
        self.poll_seconds = poll_seconds
        self.start_timeout_s = start_timeout_s
        self.port: int | None = None
        self._server: ServerProcess | None = None
        self._channel = None
        self._local = threading.local()

    # -- lifecycle ----------------------------------------------------------------------

    def __enter__(self) -> ModelServerProcess:
        self.start()
        return self

    def __exit__(self, *exc_info) -> None:
        self.stop()

    def start(self) -> None:
        os.makedirs(self.base_path, exist_ok=True)
        flags = ["--port=0", "--rest_api_port=0", f"--model_name={self.model_name}",
                 f"--model_base_path={self.base_path}", f"--file_system_poll_wait_seconds={self.poll_seconds}"]
        env = dict(os.environ, PYTHONWARNINGS="ignore")
        # Its own process group: a Ctrl-C in the terminal reaches the demo, which then stops it.
        self._server = ServerProcess(flags, self.log_path, env=env, new_session=True)
        try:
            self.port = self._server.wait_ready(self.start_timeout_s).grpc_port
        except ServerFailed as error:
            self.stop()
            raise ServerFailed(f"freshrank-model-server did not start: {error}") from None

    def stop(self) -> None:
        """SIGTERM (the server shuts down cleanly), then SIGKILL if it has not exited in 30 s."""
        if self._channel is not None:
            self._channel.close()
            self._channel = None
        if self._server is not None:
            self._server.stop()
            self._server = None

    @property
    def pid(self) -> int | None:
        return self._server.proc.pid if self._server is not None else None

    @property
    def address(self) -> str:
        if self.port is None:
            raise ServerFailed("the model server is not running")
        return f"127.0.0.1:{self.port}"

    def _log_tail(self) -> str:
        with open(self.log_path, encoding="utf-8", errors="replace") as f:
            return f.read()[-3000:]

    def _check_alive(self) -> None:
        if self._server is None or not self._server.running():
            raise ServerFailed(f"freshrank-model-server exited (log {self.log_path}):\n{self._log_tail()}")

    def _stubs(self) -> tuple[Any, Any]:
        import grpc
        from tensorflow_serving.apis import model_service_pb2_grpc, prediction_service_pb2_grpc

        if self._channel is None:
            self._channel = grpc.insecure_channel(
                self.address, options=[("grpc.max_send_message_length", MAX_MESSAGE_BYTES),
                                       ("grpc.max_receive_message_length", MAX_MESSAGE_BYTES)])
        return (prediction_service_pb2_grpc.PredictionServiceStub(self._channel),
                model_service_pb2_grpc.ModelServiceStub(self._channel))

    # -- status -------------------------------------------------------------------------

    def available_versions(self) -> list[int]:
        """Versions the server reports AVAILABLE (GetModelStatus), highest first; [] if none yet."""
        import grpc
        from tensorflow_serving.apis import get_model_status_pb2

        self._check_alive()
        request = get_model_status_pb2.GetModelStatusRequest()
        request.model_spec.name = self.model_name
        try:
            response = self._stubs()[1].GetModelStatus(request, timeout=10)
        except grpc.RpcError as error:
            if error.code() == grpc.StatusCode.NOT_FOUND:
                return []
            raise
        return sorted((s.version for s in response.model_version_status if s.state == AVAILABLE),
                      reverse=True)

    def wait_available(self, version: int, timeout_s: float = 600.0) -> float:
        """Blocks until `version` is AVAILABLE; returns the time.time() it was first seen so."""
        deadline = time.monotonic() + timeout_s
        while time.monotonic() < deadline:
            if version in self.available_versions():
                return time.time()
            time.sleep(0.25)
        raise ServerFailed(f"version {version} of {self.model_name} was not AVAILABLE after {timeout_s:.0f} s "
                           f"(log {self.log_path}):\n{self._log_tail()}")

    # -- ranking ------------------------------------------------------------------------

    def score(self, query: str, candidates: Sequence[dict], timeout: float = 30.0,
              user_id: str | None = None) -> tuple[list[float], int]:
        """One Predict for all of a search's candidates: (scores in input order, version that served).

        `user_id` only for a model trained with user features (its signature takes one).
        """
        import grpc

        request = build_predict_request(query, list(candidates), self.model_name, user_id=user_id)
        try:
            response = self._stubs()[0].Predict(request, timeout=timeout)
        except grpc.RpcError as error:
            raise RankError(f"Predict on {self.address} (model {self.model_name!r}) failed: "
                            f"{error.code().name}: {error.details()}") from error
        return scores_from_response(response, len(candidates)), int(response.model_spec.version.value)

    def rank_many(self, searches: Sequence[tuple], workers: int = 4) -> list[tuple[list[str], int]]:
        """Ranks (query, candidates[, user_id]) searches concurrently: (product ids best first, version) each.

        Ties keep the input (retrieval) order, as `serving.client.rank` does.
        """
        self._check_alive()

        def one(item: tuple) -> tuple[list[str], int]:
            query, candidates, *user = item
            scores, version = self.score(query, candidates, user_id=user[0] if user else None)
            order = sorted(range(len(candidates)), key=lambda i: -scores[i])
            return [candidates[i]["product_id"] for i in order], version

        with ThreadPoolExecutor(max_workers=workers) as pool:
            return list(pool.map(one, searches))
