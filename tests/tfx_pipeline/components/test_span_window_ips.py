"""SpanWindow's blessing data: the newest span's test split (or eval and test splits) with inverse-propensity weights.

Two generated days through the pipeline's own ExampleGen, StatisticsGen, schema, data gate and
SpanWindow (a LocalDagRunner partial run that stops at SpanWindow: no training).
"""
from __future__ import annotations

import datetime
import json
import os
from unittest import mock

import numpy as np
import pytest
import tensorflow as tf

from freshrank.market import simulate
from tfx_pipeline.components.span_window import TEST, _split_files
from tfx_pipeline.ips_split import CURVE_ENTRIES, CURVE_KEY, IPS_GAIN_KEY, IPS_WEIGHT_KEY, estimate_curve
from tfx_pipeline.lineage import custom as _custom
from trainer import propensity

pytestmark = pytest.mark.e2e
DAY1, DAY2 = datetime.date(2026, 11, 1), datetime.date(2026, 11, 2)


def _examples(split_dir: str) -> list[tf.train.Example]:
    files = sorted(tf.io.gfile.glob(os.path.join(split_dir, "*")))
    return [tf.train.Example.FromString(r)
            for r in tf.data.TFRecordDataset(files, compression_type="GZIP").as_numpy_iterator()]


def _value(example: tf.train.Example, key: str):
    feature = example.features.feature[key]
    return getattr(feature, feature.WhichOneof("kind")).value[0]


def _stripped(example: tf.train.Example) -> bytes:
    copy = tf.train.Example()
    copy.CopyFrom(example)
    for key in (IPS_WEIGHT_KEY, IPS_GAIN_KEY, CURVE_KEY):
        del copy.features.feature[key]
    return copy.SerializeToString(deterministic=True)


def _run_to_span_window(data, home, day, **settings):
    from tfx import v1 as tfx
    from tfx.orchestration import pipeline as tfx_pipeline_lib

    from tfx_pipeline.config import PipelineConfig
    from tfx_pipeline.lineage import Lineage
    from tfx_pipeline.pipeline import create_pipeline

    config = PipelineConfig(data_root=str(data), home=str(home), span=day, **settings)
    tfx.orchestration.LocalDagRunner().run(create_pipeline(config),
                                           run_options=tfx_pipeline_lib.RunOptions(to_nodes=["SpanWindow"]))
    lineage = Lineage(tfx.orchestration.metadata.sqlite_metadata_connection_config(config.metadata_path))
    nodes = lineage.run_nodes(lineage.latest_run_id())
    return nodes["SpanWindow"].outputs["window"][0], nodes["CsvExampleGen"].outputs["examples"][0]


@pytest.fixture(scope="module")
def data(tmp_path_factory):
    root = tmp_path_factory.mktemp("window")
    simulate(root / "data", DAY1, 2, requests_per_day=300, seed=5)
    return root / "data"


@pytest.fixture(scope="module")
def windows(data):
    # ExampleGen and StatisticsGen run Beam in this process: TFX must not build itself as a 49 MB
    # sdist in /tmp for them (tfx_pipeline/tfx_package.py).
    from tfx.utils import dependency_utils

    with mock.patch.object(dependency_utils, "build_ephemeral_package",
                           side_effect=AssertionError("TFX built an sdist for an in-process Beam run")):
        return [_run_to_span_window(data, data.parent / "home", day) for day in (DAY1, DAY2)]


def _serialized(examples: list[tf.train.Example]) -> list[bytes]:
    return [e.SerializeToString(deterministic=True) for e in examples]


def test_the_test_split_is_the_newest_spans_own_with_weights_added(windows):
    for (window, ingested), day in zip(windows, (DAY1, DAY2), strict=True):
        assert sorted(os.listdir(window.uri)) == ["Split-eval", "Split-test", "Split-train"]
        assert json.loads(window.properties["split_names"].string_value) == ["train", "eval", "test"]
        test = _examples(os.path.join(window.uri, f"Split-{TEST}"))
        source = _examples(os.path.join(ingested.uri, f"Split-{TEST}"))
        assert len(test) == len(source) == _custom(window, "test_examples") > 0
        assert [_stripped(e) for e in test] == _serialized(source)
        assert {_value(e, "request_id").decode()[:9] for e in test} == {f"r{day:%Y%m%d}"}
        assert _custom(window, "test_splits") == ["test"]


def test_blessing_on_the_held_out_pages_reads_the_newest_spans_eval_and_test_pages(data, tmp_path):
    # --bless-pages held-out: twice the pages for the Evaluator; the Trainer's eval split stays the
    # newest span's eval pages alone.
    window, ingested = _run_to_span_window(data, tmp_path / "home", DAY1, bless_pages="held-out")
    test = _examples(os.path.join(window.uri, f"Split-{TEST}"))
    source = [e for split in ("eval", "test") for e in _examples(os.path.join(ingested.uri, f"Split-{split}"))]
    assert [_stripped(e) for e in test] == _serialized(source)
    assert len(test) == _custom(window, "test_examples") > len(_examples(os.path.join(ingested.uri, "Split-test")))
    assert _custom(window, "test_splits") == ["eval", "test"]
    assert all(_value(e, IPS_WEIGHT_KEY) >= 1.0 for e in test)
    assert sorted(_serialized(_examples(os.path.join(window.uri, "Split-eval")))) == sorted(
        _serialized(_examples(os.path.join(ingested.uri, "Split-eval"))))


def test_weights_are_clipped_inverse_propensities_from_the_windows_train_splits(windows):
    (_, day1_ingested), (window, day2_ingested) = windows
    curve = estimate_curve([p for e in (day1_ingested, day2_ingested)
                            for p in _split_files({"date": "", "examples_uri": e.uri}, "train")])
    assert _custom(window, "ips_curve") == pytest.approx([round(float(v), 4) for v in curve[:CURVE_ENTRIES]])
    assert _custom(window, "ips_curve")[1] == 1.0
    examples = _examples(os.path.join(window.uri, f"Split-{TEST}"))
    positions = np.array([_value(e, "position") for e in examples])
    weights = np.array([_value(e, IPS_WEIGHT_KEY) for e in examples])
    gains = np.array([_value(e, IPS_GAIN_KEY) for e in examples])
    purchased = np.array([_value(e, "purchased") for e in examples])
    assert weights == pytest.approx(propensity.ips_weights(positions, curve), rel=1e-6)
    assert weights.min() >= 1.0 and weights.max() <= propensity.MAX_WEIGHT
    assert np.all(weights[positions == 1] == 1.0)
    assert weights[positions >= 5].mean() > 1.5  # deeper slots are looked at less often
    assert gains == pytest.approx(purchased * weights, rel=1e-6)
    # The whole curve rides on every example, for the purchase-lift metric's ranks.
    for example in examples[:5]:
        assert list(example.features.feature[CURVE_KEY].float_list.value) == pytest.approx(curve[1:], rel=1e-6)
    assert purchased.sum() > 0
    # Every window member's train split counts, not the newest span's alone.
    one = estimate_curve(_split_files({"date": "", "examples_uri": day2_ingested.uri}, "train"))
    assert not np.allclose(one[:CURVE_ENTRIES], _custom(window, "ips_curve"), atol=1e-4)
    assert _custom(window, "window_spans") == [DAY1.isoformat(), DAY2.isoformat()]


def test_the_default_window_trains_on_the_previous_spans_held_out_pages(windows):
    """The pipeline's default (TrainConfig.reuse_holdout): day 2's training split is day 2's train
    pages and day 1's eval and test pages; day 1's window, with no span before it, its own train pages."""
    (day1_window, day1_ingested), (day2_window, day2_ingested) = windows

    def serialized(uri, split):
        return sorted(e.SerializeToString(deterministic=True) for e in _examples(os.path.join(uri, f"Split-{split}")))

    expected = sorted(serialized(day2_ingested.uri, "train") + serialized(day1_ingested.uri, "eval")
                      + serialized(day1_ingested.uri, "test"))
    assert serialized(day2_window.uri, "train") == expected
    assert _custom(day2_window, "train_examples") == len(expected)
    assert _custom(day2_window, "reuse_holdout") == 1
    assert serialized(day1_window.uri, "train") == serialized(day1_ingested.uri, "train")
