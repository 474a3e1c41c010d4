"""benchmarks/grpc_floor.py: the do-nothing server serving_bench.py subtracts as transport floor.

The benchmark's split of the overhead is only right if the floor server really holds each call
for the asked time and reports the time it held, so that is what is checked here.
"""
from __future__ import annotations

import subprocess
import sys
import time
from pathlib import Path

import grpc
import pytest

FLOOR = Path(__file__).resolve().parents[2] / "benchmarks" / "grpc_floor.py"
PREDICT = "/tensorflow.serving.PredictionService/Predict"


@pytest.fixture()
def floor_server():
    proc = subprocess.Popen([sys.executable, str(FLOOR), "--hold-ms", "30"],
                            stdout=subprocess.PIPE, stderr=subprocess.STDOUT)
    try:
        line = proc.stdout.readline().decode()
        assert line.startswith("PORT "), line
        yield f"127.0.0.1:{int(line.split()[1])}"
    finally:
        proc.kill()
        proc.wait()


def test_floor_server_holds_each_call_and_reports_the_hold(floor_server):
    with grpc.insecure_channel(floor_server) as channel:
        call = channel.unary_unary(PREDICT)
        for _ in range(3):
            start = time.perf_counter()
            held = float(call(b"any request bytes", timeout=30))
            round_trip = time.perf_counter() - start
            assert 0.030 <= held < 1.0
            assert round_trip > held


def test_floor_server_answers_only_predict(floor_server):
    with grpc.insecure_channel(floor_server) as channel:
        call = channel.unary_unary("/tensorflow.serving.PredictionService/Classify")
        with pytest.raises(grpc.RpcError) as caught:
            call(b"", timeout=30)
    assert caught.value.code() == grpc.StatusCode.UNIMPLEMENTED
