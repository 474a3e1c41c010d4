"""freshrank-model-server as a subprocess: start it, read what it logs, stop it.

The demo, the serving benchmark and the serving tests all run the server in its own process (the
Pusher -> server hand-off is only real across processes), and all of them need the same few
things: the gRPC port it bound (it is started on port 0 and logs the port, as TF Serving does),
waiting for a line of its log (a version loaded, a config rejected), and a clean stop (SIGTERM,
then SIGKILL). This is that one launcher; its log goes to a file the caller names.
"""
from __future__ import annotations

import os
import re
import shutil
import signal
import subprocess
import sys
import time

GRPC_LINE = re.compile(r"Running gRPC ModelServer at (\S*):(\d+)")
REST_LINE = re.compile(r"Exporting HTTP/REST API at:")


class ServerFailed(RuntimeError):
    """The model server exited or never logged what was waited for; the message carries its log's end."""


def server_command() -> list[str]:
    """`freshrank-model-server` next to this Python (the venv's), else `python -m serving.main`."""
    script = os.path.join(os.path.dirname(sys.executable), "freshrank-model-server")
    if os.path.exists(script):
        return [script]
    found = shutil.which("freshrank-model-server")
    return [found] if found else [sys.executable, "-m", "serving.main"]


class ServerProcess:
    """One server started with `flags` (TF Serving's flag names), its output in `log_path`.

    `new_session`: its own process group, so a Ctrl-C in the caller's terminal reaches only the
    caller, which then stops the server. `command`: what to run (default `server_command()`).
    """

    def __init__(self, flags: list[str], log_path: str | os.PathLike, env: dict | None = None,
                 cwd: str | None = None, new_session: bool = False, command: list[str] | None = None):
        self.log_path = str(log_path)
        self._log = open(self.log_path, "ab")
        environment = dict(os.environ if env is None else env)
        environment.setdefault("TF_USE_LEGACY_KERAS", "1")
        environment.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
        environment.setdefault("PYTHONUNBUFFERED", "1")
        self.proc = subprocess.Popen([*(command or server_command()), *flags], cwd=cwd, env=environment,
                                     stdout=self._log, stderr=subprocess.STDOUT, start_new_session=new_session)
        self.grpc_port = 0

    @property
    def grpc_address(self) -> str:
        return f"127.0.0.1:{self.grpc_port}"

    def log_text(self) -> str:
        with open(self.log_path, encoding="utf-8", errors="replace") as f:
            return f.read()

    def wait_for_log(self, pattern: re.Pattern | str, timeout: float = 30.0, count: int = 1) -> re.Match:
        """The `count`-th match of `pattern` in the log, once it is there; ServerFailed if the
        server exits first or `timeout` seconds pass."""
        pattern = re.compile(pattern) if isinstance(pattern, str) else pattern
        deadline = time.monotonic() + timeout
        while True:
            matches = list(pattern.finditer(self.log_text()))
            if len(matches) >= count:
                return matches[count - 1]
            if self.proc.poll() is not None:
                raise ServerFailed(f"the model server exited ({self.proc.returncode}) before logging "
                                   f"{pattern.pattern!r} (log {self.log_path}):\n{self.log_text()[-4000:]}")
            if time.monotonic() > deadline:
                raise ServerFailed(f"the model server did not log {pattern.pattern!r} within {timeout:.0f} s "
                                   f"(log {self.log_path}):\n{self.log_text()[-4000:]}")
            time.sleep(0.05)

    def wait_ready(self, timeout: float = 90.0, rest: bool = False) -> ServerProcess:
        """Waits until gRPC (and, with `rest`, the REST API) listens; learns the gRPC port."""
        self.grpc_port = int(self.wait_for_log(GRPC_LINE, timeout).group(2))
        if rest:
            self.wait_for_log(REST_LINE, timeout)
        return self

    def running(self) -> bool:
        return self.proc.poll() is None

    def wait_exit(self, timeout: float = 60.0) -> int:
        try:
            return self.proc.wait(timeout)
        finally:
            self._log.close()

    def stop(self, term_timeout: float = 30.0) -> None:
        """SIGTERM (the server drains and exits cleanly), then SIGKILL if it is still there."""
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
            try:
                self.proc.wait(term_timeout)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait(10)
        self._log.close()
