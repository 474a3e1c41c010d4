"""Shared fixtures for the model server tests: test SavedModels and a real server subprocess.

The SavedModels are built here, once per session, the way TF Serving's own test data is built
(saved_model_half_plus_two.py): half_plus_two computes y = 0.5x + 2 with the signatures
serving_default, regress_x_to_y, regress_x_to_y2 (+3), regress_x2_to_y3 and classify_x_to_y,
the last four over serialized tf.Examples. `ServerProcess` runs `python -m serving.main` exactly
as an operator would and waits for its "Running gRPC ModelServer at" line.
"""
from __future__ import annotations

import os
import shutil
import socket
import sys
from collections.abc import Iterator
from pathlib import Path

os.environ.setdefault("TF_USE_LEGACY_KERAS", "1")
os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

import pytest  # noqa: E402

from serving import process  # noqa: E402

REPO_ROOT = Path(__file__).resolve().parents[2]
VERSION = "00000123"


SERVER_FIXTURES = {"server", "default_server", "start_server"}


def pytest_collection_modifyitems(config, items):
    """Tests that run a server subprocess are end-to-end: `make test-fast` (-m "not e2e")
    skips them, `make test` runs them."""
    here = Path(__file__).resolve().parent
    for item in items:
        path = Path(str(item.fspath)).resolve()
        if here in path.parents and SERVER_FIXTURES & set(item.fixturenames):
            item.add_marker(pytest.mark.e2e)


# -- SavedModels -------------------------------------------------------------------------------


def build_half_plus_two(export_dir: str | Path, b: float = 2.0, c: float = 3.0) -> str:
    """TF Serving's half_plus_two (TF1 graph, same tensor names and signatures); b=3 gives
    half_plus_three."""
    import tensorflow as tf

    tf1 = tf.compat.v1
    export_dir = str(export_dir)
    builder = tf1.saved_model.builder.SavedModelBuilder(export_dir)
    with tf1.Session(graph=tf.Graph()) as sess:
        a = tf1.Variable(0.5, name="a")
        b_var = tf1.Variable(b, name="b")
        c_var = tf1.Variable(c, name="c")
        # Unknown rank, as in TF Serving's checked-in saved_model_half_plus_two_cpu.
        serialized = tf1.placeholder(tf.string, name="tf_example")
        parsed = tf1.parse_example(serialized, {
            "x": tf1.FixedLenFeature([1], tf.float32),
            "x2": tf1.FixedLenFeature([1], tf.float32, default_value=[0.0]),
        })
        parsed["x"].set_shape([None, 1])
        parsed["x2"].set_shape([None, 1])
        x = tf.identity(parsed["x"], name="x")
        y = tf.identity(tf.add(tf.multiply(a, x), b_var), name="y")
        y2 = tf.identity(tf.add(tf.multiply(a, x), c_var), name="y2")
        x2 = tf.identity(parsed["x2"], name="x2")
        a2 = tf1.Variable(0.5, name="a2")
        c2 = tf1.Variable(3.0, name="c2")
        y3 = tf.identity(tf.add(tf.multiply(a2, x2), c2), name="y3")
        info = tf1.saved_model.utils.build_tensor_info
        build = tf1.saved_model.signature_def_utils.build_signature_def

        def regression(inp, out):
            return build({"inputs": info(inp)}, {"outputs": info(out)},
                         "tensorflow/serving/regress")

        signatures = {
            "regress_x_to_y": regression(serialized, y),
            "regress_x_to_y2": regression(serialized, y2),
            "regress_x2_to_y3": regression(x2, y3),
            "classify_x_to_y": build({"inputs": info(serialized)}, {"scores": info(y)},
                                     "tensorflow/serving/classify"),
            "serving_default": build({"x": info(x)}, {"y": info(y)},
                                     "tensorflow/serving/predict"),
        }
        sess.run(tf1.global_variables_initializer())
        builder.add_meta_graph_and_variables(sess, ["serve"], signature_def_map=signatures)
    builder.save()
    return export_dir


def build_half_plus_two_tf2(export_dir: str | Path, b: float = 2.0) -> str:
    """A native TF2 (tf.Module) half_plus_two, as tf.saved_model.save writes it."""
    import tensorflow as tf

    class HalfPlusTwo(tf.Module):
        def __init__(self):
            super().__init__()
            self.a = tf.Variable(0.5)
            self.b = tf.Variable(b)

        def _y(self, x):
            return self.a * x + self.b

        @tf.function(input_signature=[tf.TensorSpec([None], tf.float32, name="x")])
        def predict(self, x):
            return {"y": self._y(x)}

        @tf.function(input_signature=[tf.TensorSpec([None], tf.string, name="inputs")])
        def regress(self, inputs):
            x = tf.io.parse_example(inputs, {"x": tf.io.FixedLenFeature([1], tf.float32)})["x"]
            return {"outputs": self._y(x)}

        @tf.function(input_signature=[tf.TensorSpec([None], tf.string, name="inputs")])
        def classify(self, inputs):
            x = tf.io.parse_example(inputs, {"x": tf.io.FixedLenFeature([1], tf.float32)})["x"]
            return {"scores": self._y(x)}

    module = HalfPlusTwo()
    tf.saved_model.save(module, str(export_dir), signatures={
        "serving_default": module.predict,
        "regress_x_to_y": module.regress,
        "classify_x_to_y": module.classify,
    })
    return str(export_dir)


def build_ranker(export_dir: str | Path) -> str:
    """A model with the production ranker's serving signature (and a tensorflow_text op):
    score = sigmoid(0.01 * len(title bytes) + 0.001 * price + 0.1 * query tokens)."""
    import tensorflow as tf
    import tensorflow_text as tft

    from trainer.config import TrainConfig
    from trainer.model import raw_input_specs

    class Ranker(tf.Module):
        def __init__(self):
            super().__init__()
            self.tokenizer = tft.WhitespaceTokenizer()

        @tf.function(input_signature=list(raw_input_specs(TrainConfig()).values()))  # the ranker's inputs
        def serve(self, query, title, brand, category, product_id, price):
            query_tokens = tf.cast(self.tokenizer.tokenize(query).row_lengths(), tf.float32)
            length = tf.cast(tf.strings.length(title), tf.float32)
            return {"score": tf.sigmoid(0.01 * length + 0.001 * price + 0.1 * query_tokens)}

    module = Ranker()
    tf.saved_model.save(module, str(export_dir), signatures={"serving_default": module.serve})
    return str(export_dir)


def expected_rank_score(query: str, title: str, price: float) -> float:
    import math

    z = 0.01 * len(title.encode("utf-8")) + 0.001 * price + 0.1 * len(query.split())
    return 1.0 / (1.0 + math.exp(-z))


class Models:
    """Paths of the session's built models (each is a version directory)."""

    def __init__(self, root: Path):
        self.root = root
        self.half_plus_two = Path(build_half_plus_two(root / "half_plus_two" / VERSION))
        self.half_plus_three = Path(build_half_plus_two(root / "half_plus_three" / VERSION,
                                                        b=3.0))
        self.half_plus_two_tf2 = Path(build_half_plus_two_tf2(root / "tf2" / VERSION))
        self.ranker = Path(build_ranker(root / "ranker" / "1"))

    @staticmethod
    def copy_version(src: Path, base_path: Path, version: int | str) -> Path:
        dst = Path(base_path) / str(version)
        shutil.copytree(src, dst)
        return dst


@pytest.fixture(scope="session")
def models(tmp_path_factory) -> Models:
    return Models(tmp_path_factory.mktemp("models"))


# -- server subprocess ------------------------------------------------------------------------


def free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


class ServerProcess(process.ServerProcess):
    """`python -m serving.main` of this checkout with the given flags; the gRPC port is picked by
    the server, the REST port (when on) here."""

    def __init__(self, flags: list[str], log_path: Path, rest: bool = True):
        self.rest_port = free_port() if rest else 0
        env = dict(os.environ)
        env["PYTHONPATH"] = os.pathsep.join(filter(None, [str(REPO_ROOT), env.get("PYTHONPATH", "")]))
        super().__init__(["--port=0", f"--rest_api_port={self.rest_port}", *flags], log_path, env=env,
                         cwd=str(REPO_ROOT), command=[sys.executable, "-m", "serving.main"])

    @property
    def rest_url(self) -> str:
        return f"http://127.0.0.1:{self.rest_port}"

    def wait_ready(self, timeout: float = 90.0) -> ServerProcess:
        return super().wait_ready(timeout, rest=bool(self.rest_port))


@pytest.fixture
def start_server(tmp_path) -> Iterator:
    """Factory fixture: start_server(flags, rest=True) -> ready ServerProcess; stops them all."""
    started: list[ServerProcess] = []

    def start(flags: list[str], rest: bool = True, wait: bool = True) -> ServerProcess:
        server = ServerProcess(flags, tmp_path / f"server{len(started)}.log", rest=rest)
        started.append(server)
        return server.wait_ready() if wait else server

    yield start
    for server in started:
        server.stop()


def start_module_server(tmp_path_factory, name: str, flags: list[str],
                        rest: bool = True) -> ServerProcess:
    log_dir = tmp_path_factory.mktemp(name)
    return ServerProcess(flags, log_dir / "server.log", rest=rest).wait_ready()


MONITORING_CONFIG = 'prometheus_config { enable: true, path: "/monitoring/prometheus/metrics" }\n'
DEFAULT_MAX_REQUEST_BYTES = 2 * 1024 * 1024


@pytest.fixture(scope="session")
def default_server(models, tmp_path_factory) -> Iterator[ServerProcess]:
    """TF Serving's test setup: --model_name=default serving half_plus_two (version 123), REST
    on, Prometheus on, and a 2 MiB request limit for the size tests."""
    root = tmp_path_factory.mktemp("default_server")
    base = root / "half_plus_two"
    Models.copy_version(models.half_plus_two, base, VERSION)
    monitoring = root / "monitoring_config.txt"
    monitoring.write_text(MONITORING_CONFIG)
    server = start_module_server(tmp_path_factory, "default_server_log", [
        "--model_name=default", f"--model_base_path={base}",
        f"--monitoring_config_file={monitoring}", "--rest_api_timeout_in_ms=5000",
        f"--max_request_bytes={DEFAULT_MAX_REQUEST_BYTES}",
    ])
    yield server
    server.stop()


def call_rest(url: str, body: object | None = None, raw: bytes | None = None,
              method: str | None = None, timeout: float = 20.0) -> tuple[int, bytes]:
    """(HTTP status, body) of one REST call; errors are returned, not raised."""
    import json
    import urllib.error
    import urllib.request

    data = raw if raw is not None else (json.dumps(body).encode() if body is not None else None)
    request = urllib.request.Request(url, data=data, method=method)
    try:
        with urllib.request.urlopen(request, timeout=timeout) as response:
            return response.status, response.read()
    except urllib.error.HTTPError as exc:
        return exc.code, exc.read()


@pytest.fixture(scope="module")
def channel(server):
    """A channel to the module's `server` fixture (each test module says which server it runs)."""
    import grpc

    with grpc.insecure_channel(server.grpc_address) as ch:
        yield ch


@pytest.fixture(scope="module")
def stub(channel):
    from tensorflow_serving.apis import prediction_service_pb2_grpc

    return prediction_service_pb2_grpc.PredictionServiceStub(channel)


@pytest.fixture(scope="module")
def model_stub(channel):
    from tensorflow_serving.apis import model_service_pb2_grpc

    return model_service_pb2_grpc.ModelServiceStub(channel)


@pytest.fixture(scope="session")
def helpers():
    """The helpers above, for test modules (conftest itself is not imported by tests)."""
    import types

    return types.SimpleNamespace(
        call_rest=call_rest, free_port=free_port, ServerProcess=ServerProcess,
        start_module_server=start_module_server, copy_version=Models.copy_version,
        build_half_plus_two=build_half_plus_two, build_half_plus_two_tf2=build_half_plus_two_tf2,
        build_ranker=build_ranker, expected_rank_score=expected_rank_score, VERSION=VERSION,
        MONITORING_CONFIG=MONITORING_CONFIG,
    )
