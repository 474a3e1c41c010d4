"""The gRPC server's handler threads: a pool that hands work to the most recently idle thread.

grpcio's synchronous server runs every RPC handler through the executor it is given. The
standard `concurrent.futures.ThreadPoolExecutor` keeps its idle threads waiting on one shared
queue, so the thread that picks up a request is whichever the kernel wakes, in practice the one
that has waited longest: after a burst of 32 concurrent clients has grown the pool to 32+
threads, a lone client's requests cycle through all of them, each time on a thread whose stack,
thread-local malloc arena and cache lines have gone cold. This pool keeps its idle threads on a
stack and wakes the one that finished last (LIFO, as TF Serving's own thread pools and most
native servers do), so at low load the same one or two threads serve every request.

Semantics kept from ThreadPoolExecutor: at most `max_workers` threads, started on demand; work
beyond that waits in FIFO order; `submit` returns a `concurrent.futures.Future`; `shutdown`
refuses new work, can cancel queued work, and can wait for the threads.
"""
from __future__ import annotations

import threading
from collections import deque
from collections.abc import Callable
from concurrent import futures
from typing import Any

_WorkItem = tuple[futures.Future, Callable[..., Any], tuple, dict]


class _Worker:
    __slots__ = ("wake", "item")

    def __init__(self) -> None:
        self.wake = threading.Lock()
        self.wake.acquire()  # released by whoever hands this worker an item (or None: exit)
        self.item: _WorkItem | None = None


class LifoThreadPool(futures.Executor):
    """A bounded thread pool whose most recently idle thread takes the next work item."""

    def __init__(self, max_workers: int, thread_name_prefix: str = "pool"):
        if max_workers <= 0:
            raise ValueError("max_workers must be greater than 0")
        self._max_workers = max_workers
        self._prefix = thread_name_prefix
        self._lock = threading.Lock()
        self._idle: list[_Worker] = []  # a stack: the last one to go idle is woken first
        self._queued: deque[_WorkItem] = deque()
        self._threads: list[threading.Thread] = []
        self._shutdown = False

    def submit(self, fn: Callable[..., Any], /, *args: Any, **kwargs: Any) -> futures.Future:
        future: futures.Future = futures.Future()
        item = (future, fn, args, kwargs)
        with self._lock:
            if self._shutdown:
                raise RuntimeError("cannot schedule new futures after shutdown")
            if self._idle:
                worker = self._idle.pop()
                worker.item = item
                worker.wake.release()
            elif len(self._threads) < self._max_workers:
                thread = threading.Thread(target=self._work, args=(item,), daemon=True,
                                          name=f"{self._prefix}_{len(self._threads)}")
                self._threads.append(thread)
                thread.start()
            else:
                self._queued.append(item)
        return future

    def _work(self, item: _WorkItem | None) -> None:
        worker = _Worker()
        while item is not None:
            future, fn, args, kwargs = item
            item = None
            if future.set_running_or_notify_cancel():
                try:
                    result = fn(*args, **kwargs)
                except BaseException as exc:  # noqa: BLE001 - delivered through the future
                    future.set_exception(exc)
                else:
                    future.set_result(result)
            del future, fn, args, kwargs
            with self._lock:
                if self._queued:
                    item = self._queued.popleft()
                    continue
                if self._shutdown:
                    return
                self._idle.append(worker)
            worker.wake.acquire()
            item, worker.item = worker.item, None

    def shutdown(self, wait: bool = True, *, cancel_futures: bool = False) -> None:
        with self._lock:
            self._shutdown = True
            if cancel_futures:
                while self._queued:
                    self._queued.popleft()[0].cancel()
            idle, self._idle = self._idle, []
            threads = list(self._threads)
        for worker in idle:
            worker.item = None
            worker.wake.release()
        if wait:
            for thread in threads:
                thread.join()
