"""A `freshrank-model-server` subprocess over a serving directory, as the demo and tests use it.

Why a subprocess and not an in-process server: the demo trains (TensorFlow, Beam) in its own
process, and the point is to show the Pusher -> model server hand-off exactly as production
runs it: a separate server polls the directory and loads each new version on its own.

`ModelServerProcess` picks its gRPC port by asking the server for port 0 (it prints the port
it bound), waits for versions through gRPC `GetModelStatus`, ranks through gRPC `Predict`
(one request per search, all candidates batched), and always stops the server on exit, also
on Ctrl-C or an error.
"""
from __future__ import annotations

import os
import re
import shutil
import signal
import subprocess
import sys
import threading
import time
from collections.abc import Sequence
from concurrent.futures import ThreadPoolExecutor
from typing import Any

from serving.client import MAX_MESSAGE_BYTES, RankError, build_predict_request, scores_from_response

AVAILABLE = 30  # tensorflow_serving.apis.get_model_status_pb2.ModelVersionStatus.AVAILABLE
_LISTENING = re.compile(r"Running gRPC ModelServer at \S*:(\d+)")


class ServerFailed(RuntimeError):
    """The model server exited or never came up; the message carries the end of its log."""


def server_command() -> list[str]:
    """`freshrank-model-server` next to this Python (the venv's), else `python -m serving.main`."""
    script = os.path.join(os.path.dirname(sys.executable), "freshrank-model-server")
    if os.path.exists(script):
        return [script]
    found = shutil.which("freshrank-model-server")
    return [found] if found else [sys.executable, "-m", "serving.main"]


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
        self._process: subprocess.Popen | None = None
        self._log = None
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
        self._log = open(self.log_path, "a+", encoding="utf-8")
        env = dict(os.environ, TF_USE_LEGACY_KERAS="1", TF_CPP_MIN_LOG_LEVEL="2", PYTHONWARNINGS="ignore")
        command = [*server_command(), "--port=0", "--rest_api_port=0", f"--model_name={self.model_name}",
                   f"--model_base_path={self.base_path}",
                   f"--file_system_poll_wait_seconds={self.poll_seconds}"]
        # Its own process group: a Ctrl-C in the terminal reaches the demo, which then stops it.
        self._process = subprocess.Popen(command, stdout=self._log, stderr=subprocess.STDOUT, env=env,
                                         start_new_session=True)
        deadline = time.monotonic() + self.start_timeout_s
        while time.monotonic() < deadline:
            match = _LISTENING.search(self._read_log())
            if match:
                self.port = int(match.group(1))
                return
            if self._process.poll() is not None:
                break
            time.sleep(0.2)
        log_tail = self._read_log()[-3000:]
        self.stop()
        raise ServerFailed(f"freshrank-model-server did not start (log {self.log_path}):\n{log_tail}")

    def stop(self) -> None:
        """SIGTERM (the server shuts down cleanly), then SIGKILL if it has not exited in 30 s."""
        if self._channel is not None:
            self._channel.close()
            self._channel = None
        if self._process is not None and self._process.poll() is None:
            self._process.send_signal(signal.SIGTERM)
            try:
                self._process.wait(timeout=30)
            except subprocess.TimeoutExpired:
                self._process.kill()
                self._process.wait(timeout=10)
        self._process = None
        if self._log is not None:
            self._log.close()
            self._log = None

    @property
    def address(self) -> str:
        if self.port is None:
            raise ServerFailed("the model server is not running")
        return f"127.0.0.1:{self.port}"

    def _read_log(self) -> str:
        with open(self.log_path, encoding="utf-8", errors="replace") as f:
            return f.read()

    def _check_alive(self) -> None:
        if self._process is None or self._process.poll() is not None:
            raise ServerFailed(f"freshrank-model-server exited (log {self.log_path}):\n"
                               f"{self._read_log()[-3000:]}")

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
                           f"(log {self.log_path}):\n{self._read_log()[-3000:]}")

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
