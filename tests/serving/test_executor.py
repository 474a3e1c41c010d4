"""serving/executor.py: the gRPC handler pool wakes its most recently idle thread, stays bounded,
queues in order, and delivers results, errors and shutdowns like ThreadPoolExecutor."""
from __future__ import annotations

import threading
from concurrent import futures

import pytest

from serving.executor import LifoThreadPool


def _grow(pool: futures.Executor, threads: int) -> None:
    """Makes the pool start `threads` threads: that many tasks held at a barrier together."""
    barrier = threading.Barrier(threads + 1)
    done = [pool.submit(barrier.wait, 10) for _ in range(threads)]
    barrier.wait(10)
    for future in done:
        future.result(10)


def test_a_lone_caller_keeps_getting_a_hot_thread_after_a_burst() -> None:
    pool = LifoThreadPool(16, thread_name_prefix="t")
    try:
        _grow(pool, 8)
        used = {pool.submit(threading.get_ident).result(10) for _ in range(40)}
        # One task at a time: only the thread that just finished can be missing from the idle
        # stack, so at most two threads take turns (ThreadPoolExecutor cycles through all 8).
        assert len(used) <= 2
    finally:
        pool.shutdown()


def test_bounded_and_queued_in_order() -> None:
    pool = LifoThreadPool(2)
    release = threading.Event()
    order: list[int] = []
    try:
        blockers = [pool.submit(release.wait, 10) for _ in range(2)]
        queued = [pool.submit(order.append, i) for i in range(5)]
        assert not any(f.done() for f in queued)
        assert len(pool._threads) == 2  # noqa: SLF001 - the bound itself is the behaviour
        release.set()
        for future in blockers + queued:
            future.result(10)
        assert order == [0, 1, 2, 3, 4]
    finally:
        pool.shutdown()


def test_errors_reach_the_future_and_the_thread_survives() -> None:
    pool = LifoThreadPool(1)
    try:
        failed = pool.submit(lambda: 1 / 0)
        with pytest.raises(ZeroDivisionError):
            failed.result(10)
        assert pool.submit(lambda x: x + 1, 41).result(10) == 42
    finally:
        pool.shutdown()


def test_shutdown_refuses_work_cancels_the_queue_and_joins() -> None:
    pool = LifoThreadPool(1)
    release = threading.Event()
    running = pool.submit(release.wait, 10)
    queued = pool.submit(lambda: "never")
    threading.Timer(0.2, release.set).start()
    pool.shutdown(wait=True, cancel_futures=True)
    assert running.result(0) is True
    assert queued.cancelled()
    assert not any(t.is_alive() for t in pool._threads)  # noqa: SLF001
    with pytest.raises(RuntimeError, match="after shutdown"):
        pool.submit(print)
