"""benchmarks/serving_ab.py's measuring parts: the A side's code, the CPU counter, the summary.

The A/B comparison is only right if side A really runs the commit asked for, if the server's CPU
is read from all its threads, and if blocks without a finished request do not poison the medians.
"""
from __future__ import annotations

import os
import subprocess
import sys
import threading
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[2]
sys.path.insert(0, str(REPO / "benchmarks"))

import serving_ab as ab  # noqa: E402


def test_export_commit_writes_that_commits_tree(tmp_path):
    ab.export_commit("HEAD", tmp_path)
    committed = subprocess.run(["git", "-C", str(REPO), "show", "HEAD:serving/servable.py"],
                               check=True, capture_output=True).stdout
    assert (tmp_path / "serving" / "servable.py").read_bytes() == committed
    assert (tmp_path / "trainer" / "contract.py").exists()  # the server imports it


def test_process_counters_include_every_thread():
    cpu_before, faults_before = ab.process_counters(os.getpid())

    def burn() -> None:
        end = time.thread_time() + 0.3
        while time.thread_time() < end:
            pass

    thread = threading.Thread(target=burn)
    thread.start()
    thread.join()
    cpu_after, faults_after = ab.process_counters(os.getpid())
    assert cpu_after - cpu_before >= 0.25  # the other thread's CPU is counted
    assert faults_after >= faults_before


def test_spread_leaves_out_blocks_without_requests():
    assert ab.spread([2.0, float("nan"), 1.0, 3.0]) == "2.000 (1.000-3.000)"
    assert ab.spread([float("nan")]) == "n/a"
