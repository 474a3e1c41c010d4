"""Dynamic batching: the scheduler's semantics (in-process, with a recording numpy runner) and
--enable_batching end to end (TF Serving's testPredictBatching plus concurrency checks)."""
from __future__ import annotations

import re
import threading
import time
from concurrent.futures import ThreadPoolExecutor

import grpc
import numpy as np
import pytest
import tensorflow as tf
from google.protobuf import text_format
from tensorflow_serving.apis import (
    classification_pb2,
    predict_pb2,
    prediction_service_pb2_grpc,
)

from serving import errors, protos
from serving.batching import BatchingOptions, BatchScheduler


class Recorder:
    """A runner that doubles its inputs and records the batches it saw."""

    def __init__(self, delay: float = 0.0, gate: threading.Event | None = None):
        self.batches: list[list[np.ndarray]] = []
        self.delay = delay
        self.gate = gate
        self.lock = threading.Lock()

    def __call__(self, arrays):
        if self.gate is not None:
            self.gate.wait(10)
        time.sleep(self.delay)
        with self.lock:
            self.batches.append([a.copy() for a in arrays])
        return [a * 2 for a in arrays]


def run_concurrently(scheduler, runner, inputs, key="k"):
    with ThreadPoolExecutor(len(inputs)) as pool:
        futures = [pool.submit(scheduler.run, key, runner, [x]) for x in inputs]
        return [f.result(timeout=10) for f in futures]


def test_concurrent_tasks_share_batches_and_get_their_own_rows():
    scheduler = BatchScheduler(BatchingOptions(max_batch_size=8, batch_timeout_micros=100_000,
                                               num_batch_threads=1))
    runner = Recorder(delay=0.02)
    inputs = [np.full((1, 2), i, dtype=np.float32) for i in range(8)]
    results = run_concurrently(scheduler, runner, inputs)
    for x, (y,) in zip(inputs, results, strict=True):
        np.testing.assert_array_equal(y, x * 2)
    assert len(runner.batches) < len(inputs)
    assert sum(b[0].shape[0] for b in runner.batches) == 8
    scheduler.stop()


def test_batches_never_exceed_max_batch_size():
    scheduler = BatchScheduler(BatchingOptions(max_batch_size=8, batch_timeout_micros=50_000,
                                               num_batch_threads=2))
    runner = Recorder(delay=0.01)
    inputs = [np.arange(3, dtype=np.float32) + 10 * i for i in range(10)]
    results = run_concurrently(scheduler, runner, inputs)
    assert all(b[0].shape[0] <= 8 for b in runner.batches)
    for x, (y,) in zip(inputs, results, strict=True):
        np.testing.assert_array_equal(y, x * 2)
    with pytest.raises(errors.ServingError) as excinfo:
        scheduler.run("k", runner, [np.zeros(9)])
    assert excinfo.value.code == grpc.StatusCode.INVALID_ARGUMENT
    assert excinfo.value.message == "Task size 9 is larger than maximum input batch size 8"
    scheduler.stop()


def test_full_queue_fails_fast_with_unavailable():
    gate = threading.Event()
    scheduler = BatchScheduler(BatchingOptions(max_batch_size=1, max_enqueued_batches=1,
                                               num_batch_threads=1))
    runner = Recorder(gate=gate)
    with ThreadPoolExecutor(2) as pool:
        first = pool.submit(scheduler.run, "k", runner, [np.zeros(1)])
        time.sleep(0.1)  # the only batch thread is now blocked in the runner
        second = pool.submit(scheduler.run, "k", runner, [np.ones(1)])
        time.sleep(0.1)  # its batch is the one enqueued batch allowed
        with pytest.raises(errors.ServingError) as excinfo:
            scheduler.run("k", runner, [np.ones(1)])
        assert excinfo.value.code == grpc.StatusCode.UNAVAILABLE
        assert excinfo.value.message == ("The batch scheduling queue to which this task was "
                                         "submitted is full")
        gate.set()
        np.testing.assert_array_equal(first.result(5)[0], [0.0])
        np.testing.assert_array_equal(second.result(5)[0], [2.0])
    scheduler.stop()


def test_batch_timeout_holds_a_lone_task_and_zero_timeout_does_not():
    for timeout_us, low, high in ((200_000, 0.18, 1.0), (0, 0.0, 0.1)):
        scheduler = BatchScheduler(BatchingOptions(max_batch_size=8,
                                                   batch_timeout_micros=timeout_us,
                                                   num_batch_threads=1))
        start = time.monotonic()
        scheduler.run("k", Recorder(), [np.zeros(1)])
        elapsed = time.monotonic() - start
        assert low <= elapsed < high, (timeout_us, elapsed)
        scheduler.stop()


class ThreadRecorder(Recorder):
    """A Recorder that also notes which thread ran each batch and how many ran at once."""

    def __init__(self, gate: threading.Event | None = None):
        super().__init__(gate=gate)
        self.threads: list[str] = []
        self.running = 0
        self.most_at_once = 0

    def __call__(self, arrays):
        with self.lock:
            self.threads.append(threading.current_thread().name)
            self.running += 1
            self.most_at_once = max(self.most_at_once, self.running)
        try:
            return super().__call__(arrays)
        finally:
            with self.lock:
                self.running -= 1


def test_a_lone_task_runs_in_its_callers_thread_only_without_a_timeout():
    for timeout_us, where in ((0, "caller"), (1_000, "batch_threads_0")):
        scheduler = BatchScheduler(BatchingOptions(batch_timeout_micros=timeout_us,
                                                   num_batch_threads=1))
        runner = ThreadRecorder()
        caller = threading.Thread(target=scheduler.run, args=("k", runner, [np.ones(2)]),
                                  name="caller")
        caller.start()
        caller.join(10)
        assert runner.threads == [where]
        assert scheduler.stats.batches == 1 and scheduler.stats.rows == 2
        scheduler.stop()


def test_a_task_run_in_its_caller_holds_a_batch_thread_slot():
    gate = threading.Event()
    scheduler = BatchScheduler(BatchingOptions(num_batch_threads=1))
    runner = ThreadRecorder(gate=gate)
    with ThreadPoolExecutor(3) as pool:
        first = pool.submit(scheduler.run, "k", runner, [np.zeros(1)])
        time.sleep(0.1)  # the first task now runs alone in its caller, held at the gate
        rest = [pool.submit(scheduler.run, "k", runner, [np.full(1, i)]) for i in (1, 2)]
        time.sleep(0.1)
        assert len(runner.threads) == 1  # the others wait for the slot, as for a batch thread
        gate.set()
        np.testing.assert_array_equal(first.result(5)[0], [0.0])
        assert [r.result(5)[0][0] for r in rest] == [2.0, 4.0]
    assert runner.most_at_once == 1
    assert runner.threads[1:] == ["batch_threads_0"]  # the two queued together: one batch
    assert [b[0].tolist() for b in runner.batches][1:] == [[1.0, 2.0]]
    # Under concurrent load the first request after a batch must not run alone in its caller
    # while the others wait for the slot: after a batch of several it is queued, so they can
    # join it; once a batch of one has run (requests come one at a time again), lone tasks run
    # in their callers again.
    for expected in ("batch_threads_0", "caller"):
        lone = threading.Thread(target=scheduler.run, args=("k", runner, [np.ones(1)]), name="caller")
        lone.start()
        lone.join(5)
        assert runner.threads[-1] == expected
    scheduler.stop()


def test_allowed_batch_sizes_pad_the_batch_and_drop_the_padding():
    scheduler = BatchScheduler(BatchingOptions(max_batch_size=8, allowed_batch_sizes=(2, 4, 8),
                                               num_batch_threads=1))
    runner = Recorder()
    x = np.array([[1.0], [2.0], [3.0]], dtype=np.float32)
    (y,) = scheduler.run("k", runner, [x])
    assert runner.batches[0][0].shape == (4, 1)
    np.testing.assert_array_equal(runner.batches[0][0][3], x[0])  # padded with the first row
    np.testing.assert_array_equal(y, x * 2)
    scheduler.stop()


def test_variable_length_inputs_pad_or_go_to_separate_queues():
    short = np.array([[1, 2]], dtype=np.int64)
    long = np.array([[3, 4, 5]], dtype=np.int64)
    for pad in (True, False):
        scheduler = BatchScheduler(BatchingOptions(max_batch_size=4, batch_timeout_micros=100_000,
                                                   num_batch_threads=1,
                                                   pad_variable_length_inputs=pad))
        runner = Recorder()
        a, b = run_concurrently(scheduler, runner, [short, long])
        if pad:
            assert len(runner.batches) == 1
            np.testing.assert_array_equal(runner.batches[0][0], [[1, 2, 1], [3, 4, 5]])
            np.testing.assert_array_equal(a[0], [[2, 4, 2]])
        else:
            assert sorted(b_[0].shape for b_ in runner.batches) == [(1, 2), (1, 3)]
            np.testing.assert_array_equal(a[0], short * 2)
        np.testing.assert_array_equal(b[0], long * 2)
        scheduler.stop()


def test_runner_errors_reach_every_task_and_the_scheduler_keeps_going():
    scheduler = BatchScheduler(BatchingOptions(max_batch_size=4, batch_timeout_micros=50_000,
                                               num_batch_threads=1))

    def failing(arrays):
        raise errors.invalid_argument("boom")

    with ThreadPoolExecutor(3) as pool:
        futures = [pool.submit(scheduler.run, "k", failing, [np.zeros(1)]) for _ in range(3)]
        for future in futures:
            with pytest.raises(errors.ServingError, match="boom"):
                future.result(5)
    np.testing.assert_array_equal(scheduler.run("k2", Recorder(), [np.ones(1)])[0], [2.0])
    with pytest.raises(errors.ServingError) as excinfo:
        scheduler.run("k3", lambda arrays: [np.zeros(5)], [np.ones(2)])
    assert excinfo.value.code == grpc.StatusCode.FAILED_PRECONDITION
    scheduler.stop()


def test_inputs_need_a_shared_batch_dimension():
    scheduler = BatchScheduler(BatchingOptions(num_batch_threads=1))
    with pytest.raises(errors.ServingError, match="must have at least one dimension"):
        scheduler.run("k", Recorder(), [np.float32(1.0)])
    with pytest.raises(errors.ServingError, match="must have equal 0th-dimension size"):
        scheduler.run("k", Recorder(), [np.zeros(2), np.zeros(3)])
    scheduler.stop()


def test_options_from_batching_parameters_proto():
    params = text_format.Parse(
        "max_batch_size { value: 16 } batch_timeout_micros { value: 500 } "
        "allowed_batch_sizes: 8 allowed_batch_sizes: 16", protos.BatchingParameters())
    options = BatchingOptions.from_proto(params)
    assert (options.max_batch_size, options.batch_timeout_micros, options.allowed_batch_sizes,
            options.max_enqueued_batches) == (16, 500, (8, 16), 10)
    bad = text_format.Parse("max_batch_size { value: 16 } allowed_batch_sizes: 8",
                            protos.BatchingParameters())
    with pytest.raises(ValueError, match="must equal max_batch_size"):
        BatchingOptions.from_proto(bad)


# -- end to end --------------------------------------------------------------------------------

BATCHING_CONFIG = """
max_batch_size { value: 8 }
batch_timeout_micros { value: 20000 }
max_enqueued_batches { value: 100 }
num_batch_threads { value: 2 }
allowed_batch_sizes: 4
allowed_batch_sizes: 8
"""


@pytest.fixture(scope="module")
def server(models, tmp_path_factory, helpers):
    root = tmp_path_factory.mktemp("batching")
    helpers.copy_version(models.half_plus_two, root / "half_plus_two", helpers.VERSION)
    (root / "batching_config.txt").write_text(BATCHING_CONFIG)
    (root / "monitoring.txt").write_text(helpers.MONITORING_CONFIG)
    proc = helpers.start_module_server(tmp_path_factory, "batching_log", [
        "--model_name=default", f"--model_base_path={root / 'half_plus_two'}",
        "--enable_batching", f"--batching_parameters_file={root / 'batching_config.txt'}",
        f"--monitoring_config_file={root / 'monitoring.txt'}",
    ])
    yield proc
    proc.stop()


@pytest.fixture(scope="module")
def stub(server):
    with grpc.insecure_channel(server.grpc_address) as channel:
        yield prediction_service_pb2_grpc.PredictionServiceStub(channel)


def x_request(values, shape=None):
    request = predict_pb2.PredictRequest()
    request.model_spec.name = "default"
    request.inputs["x"].CopyFrom(tf.make_tensor_proto(values, dtype=tf.float32, shape=shape))
    return request


def test_PredictBatching(stub):
    for specify_output in (True, False):
        request = x_request([2.0])
        if specify_output:
            request.output_filter.append("y")
        result = stub.Predict(request, 20)
        assert list(result.outputs["y"].float_val) == [3.0]
        assert result.model_spec.version.value == 123


def test_concurrent_requests_are_batched_and_answered_individually(stub, server, helpers):
    def batches_processed() -> int:
        _, body = helpers.call_rest(f"{server.rest_url}/monitoring/prometheus/metrics")
        match = re.search(r"processed_batch_size_count (\d+)", body.decode())
        return int(match.group(1)) if match else 0

    before = batches_processed()
    values = [float(i) for i in range(16)]
    with ThreadPoolExecutor(16) as pool:
        futures = [pool.submit(stub.Predict, x_request([v]), 20) for v in values]
        results = [f.result() for f in futures]
    for v, result in zip(values, results, strict=True):
        assert list(result.outputs["y"].float_val) == [0.5 * v + 2.0]
    batches = batches_processed() - before
    assert 2 <= batches < 16, batches


def test_batching_errors(stub):
    with pytest.raises(grpc.RpcError) as excinfo:
        stub.Predict(x_request(2.0, shape=[]), 20)
    assert excinfo.value.code() == grpc.StatusCode.INVALID_ARGUMENT
    assert excinfo.value.details() == ("Batching Run() input tensors must have at least one "
                                       "dimension")
    with pytest.raises(grpc.RpcError) as excinfo:
        stub.Predict(x_request([1.0] * 9), 20)
    assert excinfo.value.details() == "Task size 9 is larger than maximum input batch size 8"


def test_classify_goes_through_batching_too(stub):
    request = classification_pb2.ClassificationRequest()
    request.model_spec.name = "default"
    request.model_spec.signature_name = "classify_x_to_y"
    for x in (20.0, 2.0, 4.0):
        request.input.example_list.examples.add().features.feature["x"].float_list.value.append(x)
    result = stub.Classify(request, 20)
    assert [c.classes[0].score for c in result.result.classifications] == [12.0, 3.0, 4.0]
