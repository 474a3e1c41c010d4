"""The C API session: the same SavedModel gives the same answers as TensorFlow's Python session,
strings of every length and layout survive the round trip, and errors keep TensorFlow's codes."""
from __future__ import annotations

import os

os.environ.setdefault("TF_USE_LEGACY_KERAS", "1")

import numpy as np  # noqa: E402
import pytest  # noqa: E402

from serving import c_session  # noqa: E402
from serving.servable import LoadOptions, Servable  # noqa: E402

STRINGS = [b"", b"a", b"short", b"x" * 22, b"y" * 23, "caf\u00e9 \u5496\u5561".encode(), b"\xff\x00\xfe",
           b"long " * 200]


@pytest.fixture(scope="module")
def string_model(tmp_path_factory) -> str:
    """A TF2 SavedModel whose outputs are strings made by TensorFlow (short ones stored inline,
    long ones on the heap), the fed strings passed through, and numbers computed from both."""
    import tensorflow as tf

    class Module(tf.Module):
        @tf.function(input_signature=[tf.TensorSpec([None], tf.string), tf.TensorSpec([None, 2], tf.int64),
                                      tf.TensorSpec([], tf.float32)])
        def serve(self, text, ids, scale):
            return {
                "echo": tf.identity(text),
                "joined": tf.strings.join([text, "|", tf.strings.as_string(ids[:, 0])]),
                "length": tf.strings.length(text),
                "sums": tf.cast(tf.reduce_sum(ids, axis=1), tf.float32) * scale,
                "upper": tf.strings.upper(text),
                "flag": tf.strings.length(text) > 3,
            }

    path = str(tmp_path_factory.mktemp("strings") / "1")
    module = Module()
    tf.saved_model.save(module, path, signatures={"serving_default": module.serve})
    return path


def _both(path: str):
    python = Servable.load("m", 1, path, LoadOptions(use_c_api=False, enable_warmup=False))
    c_api = Servable.load("m", 1, path, LoadOptions(enable_warmup=False, use_c_api=True))
    return python, c_api


def _run(servable: Servable, arrays: dict[str, np.ndarray]) -> dict[str, np.ndarray]:
    signature = servable.signature("serving_default")
    aliases = sorted(arrays)
    feeds = tuple(signature.inputs[a].name for a in aliases)
    outputs = signature.output_aliases
    results = servable.run_direct(feeds, signature.output_names, [arrays[a] for a in aliases])
    return dict(zip(outputs, results, strict=True))


def test_the_c_api_is_available_and_the_server_flag_turns_it_on():
    from serving.flags import parse_flags

    assert c_session.available(), "this TensorFlow must export TF_LoadSessionFromSavedModel"
    assert not LoadOptions().use_c_api  # opt-in: each request costs ~0.1 ms more
    base = ["--model_base_path=/tmp/m", "--model_name=m"]
    assert parse_flags([*base, "--load_with_c_api"]).load_with_c_api
    assert not parse_flags(base).load_with_c_api


_NICE_PROBE = """
import glob, json, os, sys
from serving.servable import LoadOptions, Servable

def nice_by_thread():
    values = {}
    for stat in glob.glob("/proc/self/task/*/stat"):
        try:
            fields = open(stat, encoding="utf-8").read().rsplit(")", 1)[1].split()
        except OSError:
            continue
        values[int(stat.split("/")[4])] = int(fields[16])
    return values

before = nice_by_thread()
servable = Servable.load("m", 1, sys.argv[1], LoadOptions(use_c_api=True, background_nice=7, inter_op_threads=2))
started = [nice for tid, nice in nice_by_thread().items() if tid not in before]
print(json.dumps({"mine": os.getpriority(os.PRIO_PROCESS, 0), "started": started}))
servable.close()
"""


def test_the_background_pool_runs_nicer_than_the_request_pool(string_model):
    """Warmup and the load's own runs go to a pool whose thread is niced, so a version warming
    up does not take the CPU from requests; the request pool keeps the server's priority. (A
    fresh process: the pools are made once per process.)"""
    import json
    import subprocess
    import sys
    from pathlib import Path

    repo = Path(__file__).resolve().parents[2]
    env = dict(os.environ, PYTHONPATH=str(repo), TF_CPP_MIN_LOG_LEVEL="2")
    out = subprocess.run([sys.executable, "-c", _NICE_PROBE, string_model], env=env, check=True,
                         capture_output=True, text=True, timeout=300).stdout
    report = json.loads(out.strip().splitlines()[-1])
    mine, started = report["mine"], report["started"]
    assert started.count(min(mine + 7, 19)) == 1, report  # the background pool's one thread
    assert started.count(mine) >= 2, report  # the request pool's two threads


def test_strings_numbers_and_scalars_match_the_python_session(string_model):
    python, c_api = _both(string_model)
    try:
        assert isinstance(c_api._session, c_session.CSession)  # noqa: SLF001
        text = np.array(STRINGS, dtype=object)
        ids = np.arange(2 * len(STRINGS), dtype=np.int64).reshape(-1, 2)
        feeds = {"text": text, "ids": ids, "scale": np.array(1.5, dtype=np.float32)}
        expected, got = _run(python, feeds), _run(c_api, feeds)
        assert sorted(got) == sorted(expected)
        for name in expected:
            assert got[name].dtype == expected[name].dtype, name
            assert got[name].shape == expected[name].shape, name
            assert got[name].tolist() == expected[name].tolist(), name
        assert got["echo"].tolist() == STRINGS  # fed views come back as the same bytes
        assert got["joined"][-1] == b"long " * 200 + b"|14"
        # str elements are fed as UTF-8, as TensorFlow's own feeding does.
        unicode_feeds = dict(feeds, text=np.array([s.decode("utf-8", "replace") for s in STRINGS], dtype=object))
        assert _run(c_api, unicode_feeds)["echo"].tolist() == _run(python, unicode_feeds)["echo"].tolist()
        # Empty batches and a batch of one (the path for a pair).
        for count in (0, 1):
            small = {"text": text[:count], "ids": ids[:count], "scale": np.array(2.0, dtype=np.float32)}
            assert {k: v.tolist() for k, v in _run(c_api, small).items()} == \
                {k: v.tolist() for k, v in _run(python, small).items()}
    finally:
        python.close()
        c_api.close()


def test_run_errors_keep_tensorflows_code_and_message(string_model):
    from serving import errors

    python, c_api = _both(string_model)
    try:
        bad = {"text": np.array([b"a", b"b"], dtype=object), "ids": np.zeros((2, 2), dtype=np.float32),
               "scale": np.array(1.0, dtype=np.float32)}
        caught = []
        for servable in (python, c_api):
            with pytest.raises(errors.ServingError) as error:
                _run(servable, bad)
            caught.append(error.value)
        assert caught[0].code == caught[1].code and caught[1].code.name == "INVALID_ARGUMENT"
        # TF Serving's own text (its C++ Session::Run); the Python callable words it differently.
        assert caught[1].message.startswith("Expects arg[") and "to be int64 but float is provided" in caught[1].message
        signature = c_api.signature("serving_default")
        with pytest.raises(errors.ServingError, match="was not in the Graph"):
            c_api.run_direct(("no_such_op:0",), signature.output_names, [np.zeros(1)])
        with pytest.raises(errors.ServingError, match="no_such_op"):  # TensorFlow's own words
            python.run_direct(("no_such_op:0",), signature.output_names, [np.zeros(1)])
    finally:
        python.close()
        c_api.close()


def test_load_errors_name_the_problem(string_model, tmp_path):
    from serving import errors

    with pytest.raises(errors.ServingError) as missing_tag:
        Servable.load("m", 1, string_model, LoadOptions(tags=("gpu",), enable_warmup=False, use_c_api=True))
    assert missing_tag.value.code.name == "NOT_FOUND" and "tags" in missing_tag.value.message
    with pytest.raises(errors.ServingError) as no_model:
        Servable.load("m", 1, str(tmp_path / "nothing"), LoadOptions(enable_warmup=False, use_c_api=True))
    assert no_model.value.code.name == "NOT_FOUND" and "nothing" in no_model.value.message
    corrupt = tmp_path / "corrupt"
    corrupt.mkdir()
    (corrupt / "saved_model.pb").write_bytes(b"\x0a\xff\xff garbage")
    with pytest.raises(errors.ServingError):
        Servable.load("m", 1, str(corrupt), LoadOptions(enable_warmup=False, use_c_api=True))


def test_signatures_only_keeps_the_signatures_and_drops_the_graph(string_model):
    from tensorflow.core.protobuf import saved_model_pb2

    saved = saved_model_pb2.SavedModel.FromString(open(os.path.join(string_model, "saved_model.pb"), "rb").read())
    full = saved.meta_graphs[0]
    trimmed = c_session.signatures_only(full.SerializeToString())
    assert trimmed.signature_def == full.signature_def
    assert trimmed.meta_info_def == full.meta_info_def
    assert not trimmed.HasField("graph_def") and len(full.graph_def.node) > 0
