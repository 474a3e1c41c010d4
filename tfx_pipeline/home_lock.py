"""One run per home at a time: an exclusive `flock` on `HOME/.lock`, naming its holder.

Kept free of TFX imports so light commands (`freshrank rollback`) take the same lock cheaply.
"""
from __future__ import annotations

import contextlib
import fcntl
import os


class HomeLocked(RuntimeError):
    pass


@contextlib.contextmanager
def home_lock(home: str):
    """One run per home at a time: two would race on ML Metadata and the serving directory."""
    os.makedirs(home, exist_ok=True)
    path = os.path.join(home, ".lock")
    with open(path, "a+") as handle:
        try:
            fcntl.flock(handle, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            handle.seek(0)
            holder = handle.read().strip() or "another process"
            raise HomeLocked(
                f"{home} is in use by {holder}; wait for that run to finish (only one run per --home)"
            ) from None
        handle.seek(0)
        handle.truncate()
        handle.write(f"pid {os.getpid()}")
        handle.flush()
        try:
            yield
        finally:
            fcntl.flock(handle, fcntl.LOCK_UN)
