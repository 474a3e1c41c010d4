"""A loaded version in-process (serving/servable.py): warmup prepares what requests then run."""
from __future__ import annotations

import shutil

import pytest
from tensorflow_serving.apis import prediction_log_pb2

from serving import c_session
from serving.servable import LoadOptions, Servable
from tests.serving.test_versions import predict_request, write_warmup


@pytest.mark.parametrize("use_c_api", [False, True], ids=["python_loader", "c_api_loader"])
def test_requests_after_warmup_build_no_executor_of_their_own(models, tmp_path, monkeypatch, use_c_api):
    """TensorFlow builds and optimises a graph's executors once per callable (570 ms for the
    default ranker). Warmup runs on the background pool and requests on the request pool; with
    TensorFlow's Python session, which has one pool, both must share the callable, or the first
    request after every swap pays for a second build."""
    if use_c_api and not c_session.available():
        pytest.skip("this TensorFlow does not export the C API loader")
    version = tmp_path / "1"
    shutil.copytree(models.half_plus_two, version)
    log = prediction_log_pb2.PredictionLog()
    log.predict_log.request.CopyFrom(predict_request(1.0))
    write_warmup(version, [log.SerializeToString()] * 2)
    made: list[tuple] = []
    if use_c_api:
        real = c_session.CSession.make_callable

        def counting(self, feeds, fetches, background=False):
            made.append((tuple(feeds), tuple(fetches)))
            return real(self, feeds, fetches, background)

        monkeypatch.setattr(c_session.CSession, "make_callable", counting)
    else:
        import tensorflow as tf

        real = tf.compat.v1.Session._make_callable_from_options

        def counting(self, options):
            made.append((tuple(options.feed), tuple(options.fetch)))
            return real(self, options)

        monkeypatch.setattr(tf.compat.v1.Session, "_make_callable_from_options", counting)

    servable = Servable.load("default", 1, str(version), LoadOptions(use_c_api=use_c_api))
    try:
        assert len(made) == 1  # warmup: two records of one signature, one callable
        for x in (2.0, 4.0):
            assert servable.predict(predict_request(x)).outputs["y"].float_val[0] == pytest.approx(0.5 * x + 2)
        # The C API's callables are thin (one executor per feeds and fetches in the session, whatever the
        # pool); TensorFlow's Python session builds one per callable, so it must not make another.
        assert len(made) == (2 if use_c_api else 1), made
    finally:
        servable.close()
