"""serving/manager.py's background loading: a swap's load runs nicer and hands the GIL over sooner.

(Loading, swapping and unloading versions under requests are covered end to end in
test_versions.py; this checks the priority change itself, which those tests cannot see.)
"""
from __future__ import annotations

import os
import sys
import threading

import pytest

from serving.manager import _background_load

pytestmark = pytest.mark.skipif(not hasattr(os, "setpriority"), reason="needs os.setpriority")


def _in_thread(fn):
    result = {}
    thread = threading.Thread(target=lambda: result.update(fn()))
    thread.start()
    thread.join(30)
    return result


def test_a_swap_load_runs_nicer_and_shortens_the_switch_interval_meanwhile():
    default_interval = sys.getswitchinterval()

    def load():
        tid = threading.get_native_id()
        before = os.getpriority(os.PRIO_PROCESS, tid)
        with _background_load(nice=5, switch_interval_s=0.0005):
            during = os.getpriority(os.PRIO_PROCESS, tid)
            interval = sys.getswitchinterval()
        return {"before": before, "during": during, "interval": interval}

    seen = _in_thread(load)
    assert seen["during"] == min(19, seen["before"] + 5)
    assert seen["interval"] == pytest.approx(0.0005)
    assert sys.getswitchinterval() == pytest.approx(default_interval)
    # Only the loader thread was made nicer, never the process's other threads.
    assert os.getpriority(os.PRIO_PROCESS, threading.get_native_id()) == seen["before"]


def test_overlapping_loads_restore_the_switch_interval_only_when_the_last_one_ends():
    default_interval = sys.getswitchinterval()
    first_in, second_done, release = threading.Event(), threading.Event(), threading.Event()
    seen = {}

    def first():
        with _background_load(nice=0, switch_interval_s=0.001):
            first_in.set()
            release.wait(30)
            seen["after_second"] = sys.getswitchinterval()

    def second():
        first_in.wait(30)
        with _background_load(nice=0, switch_interval_s=0.001):
            pass
        second_done.set()

    threads = [threading.Thread(target=first), threading.Thread(target=second)]
    for thread in threads:
        thread.start()
    second_done.wait(30)
    release.set()
    for thread in threads:
        thread.join(30)
    assert seen["after_second"] == pytest.approx(0.001)
    assert sys.getswitchinterval() == pytest.approx(default_interval)
