"""Blessing thresholds (tfx_pipeline/evaluation.py), read as TFMA applies them.

The config tests read the thresholds the way TFMA's validator does
(`metric_thresholds_from_metrics_specs`, after the defaults TFX's Evaluator applies). The runs
evaluate the config for real with TFMA, model-agnostic: candidate and baseline scores are
features of the examples, so the scenarios (better, worse, no serving model) are exact.
"""
from __future__ import annotations

import dataclasses
import datetime
import json

import numpy as np
import pytest
import tensorflow as tf
import tensorflow_model_analysis as tfma

from tfx_pipeline import run_summary
from tfx_pipeline.evaluation import eval_config
from tfx_pipeline.ips_split import CURVE_KEY, IPS_GAIN_KEY, IPS_WEIGHT_KEY
from tfx_pipeline.purchase_lift import lift
from tfx_pipeline.purchase_lift_metric import NAME as LIFT

MIN_AUC, BLESS = 0.52, 1.0


def _thresholds(config: tfma.EvalConfig, has_baseline: bool = True) -> dict[tuple, list]:
    """(metric, weighted, is_diff) -> threshold bound after TFX's defaults, as TFMA's validator sees them."""
    config = tfma.utils.update_eval_config_with_defaults(config, has_baseline=has_baseline, rubber_stamp=True)
    found: dict[tuple, float] = {}
    for key, entries in tfma.metrics.metric_thresholds_from_metrics_specs(config.metrics_specs, config).items():
        if key.model_name == tfma.BASELINE_KEY:
            continue
        (spec, threshold), = entries
        assert spec is None  # a plain threshold: every slice, and the config has only the overall one
        if isinstance(threshold, tfma.GenericChangeThreshold):
            assert threshold.direction == tfma.MetricDirection.HIGHER_IS_BETTER
            found[(key.name, key.example_weighted, key.is_diff)] = threshold.absolute.value
        else:
            found[(key.name, key.example_weighted, key.is_diff)] = threshold.lower_bound.value
    return found


def test_ips_thresholds_floor_the_weighted_auc_and_compare_estimated_purchases():
    found = _thresholds(eval_config(MIN_AUC, BLESS))
    assert found == pytest.approx({("auc", True, False): MIN_AUC, (LIFT, False, True): -BLESS})
    lift_spec = next(s for s in eval_config(MIN_AUC, BLESS).metrics_specs if s.metrics[0].class_name == "PurchaseLift")
    assert lift_spec.query_key == "request_id" and json.loads(lift_spec.metrics[0].config) == {"weighted": True}


def test_ips_weighting_weighs_auc_by_example_and_ndcg_through_the_gain():
    config = eval_config(MIN_AUC, BLESS, weighting="ips")
    assert config.model_specs[0].example_weight_key == IPS_WEIGHT_KEY
    ndcg_spec = next(s for s in config.metrics_specs if s.query_key)
    assert ndcg_spec.example_weights.unweighted and not ndcg_spec.example_weights.weighted
    assert json.loads(ndcg_spec.metrics[0].config) == {"gain_key": IPS_GAIN_KEY}
    # An unweighted AUC is computed beside the weighted one, without thresholds; NDCG is reported.
    plain = [s for s in config.metrics_specs if not s.query_key and s.example_weights.unweighted]
    assert [m.class_name for s in plain for m in s.metrics] == ["ExampleCount", "AUC"]
    assert not any(m.HasField("threshold") for s in plain + [ndcg_spec] for m in s.metrics)


def test_no_weighting_is_unweighted_auc_and_purchase_gain():
    config = eval_config(MIN_AUC, BLESS, weighting="none")
    assert config.model_specs[0].example_weight_key == ""
    ndcg_spec = next(s for s in config.metrics_specs if s.query_key)
    assert json.loads(ndcg_spec.metrics[0].config) == {"gain_key": "purchased"}
    assert set(_thresholds(config)) == {("auc", False, False), (LIFT, False, True)}
    lift_spec = next(s for s in config.metrics_specs if s.metrics[0].class_name == "PurchaseLift")
    assert json.loads(lift_spec.metrics[0].config) == {"weighted": False}
    with pytest.raises(ValueError, match="weighting must be one of"):
        eval_config(MIN_AUC, BLESS, weighting="propensity")


def test_without_a_serving_model_only_the_value_thresholds_remain():
    """tensorflow/tfx#5148: a value threshold must survive, or the first run writes no blessing."""
    found = _thresholds(eval_config(MIN_AUC, BLESS), has_baseline=False)
    assert found == {("auc", True, False): MIN_AUC}


# --- TFMA runs ---------------------------------------------------------------------------------

PAGES, ITEMS = 60, 6
# P(examined | position) for positions 1..50, the inverse of the weights written below.
CURVE = [1.0 / min(1.0 + 0.6 * i, 10.0) for i in range(50)]


@dataclasses.dataclass
class Scored:
    """One evaluation set: pages of ITEMS impressions with labels, weights and both models' scores."""

    eval_set: str
    candidate_good: bool  # the candidate's scores follow relevance (else: noise)
    baseline_good: bool
    seed: int


def _write(path: str, sets: list[Scored]) -> dict:
    rows = {"labels": [], "weights": [], "cand": [], "base": [], "eval_set": [], "page": [], "position": []}
    with tf.io.TFRecordWriter(path) as writer:
        for s in sets:
            rng = np.random.default_rng(s.seed)
            for page in range(PAGES):
                relevance = rng.random(ITEMS)
                purchased = (relevance > 0.75) | (relevance == relevance.max())
                for i in range(ITEMS):  # logged in index order: position i + 1
                    weight = min(1.0 + 0.6 * i, 10.0)
                    noise = rng.random(2)
                    # A good model orders by relevance, less surely further down the page.
                    good = relevance[i] + i / ITEMS * (noise[0] - 0.5)
                    cand = good if s.candidate_good else noise[0]
                    base = good if s.baseline_good else noise[1]
                    feature = {
                        "request_id": _bytes(f"{s.eval_set}-{page}"),
                        "purchased": tf.train.Feature(int64_list=tf.train.Int64List(value=[int(purchased[i])])),
                        "position": tf.train.Feature(int64_list=tf.train.Int64List(value=[i + 1])),
                        IPS_WEIGHT_KEY: _float(weight), IPS_GAIN_KEY: _float(weight * purchased[i]),
                        CURVE_KEY: tf.train.Feature(float_list=tf.train.FloatList(value=CURVE)),
                        "cand": _float(cand), "base": _float(base),
                    }
                    writer.write(tf.train.Example(features=tf.train.Features(feature=feature)).SerializeToString())
                    rows["labels"].append(int(purchased[i]))
                    rows["weights"].append(weight)
                    rows["cand"].append(cand)
                    rows["base"].append(base)
                    rows["eval_set"].append(s.eval_set)
                    rows["page"].append(f"{s.eval_set}-{page}")
                    rows["position"].append(i + 1)
    return {k: np.array(v) for k, v in rows.items()}


def _bytes(value: str) -> tf.train.Feature:
    return tf.train.Feature(bytes_list=tf.train.BytesList(value=[value.encode()]))


def _float(value: float) -> tf.train.Feature:
    return tf.train.Feature(float_list=tf.train.FloatList(value=[float(value)]))


def _evaluate(tmp_path, sets: list[Scored], config: tfma.EvalConfig, has_baseline: bool = True):
    """Runs TFMA as TFX's Evaluator does (its defaults, then evaluate and validate); returns (result, out, rows)."""
    from tensorflow_model_analysis.api import model_eval_lib

    tmp_path.mkdir(parents=True, exist_ok=True)
    data = str(tmp_path / "examples.tfrecord")
    rows = _write(data, sets)
    candidate = config.model_specs[0]
    candidate.ClearField("signature_name")
    candidate.name, candidate.prediction_key = "candidate", "cand"
    if has_baseline:
        baseline = config.model_specs.add()
        baseline.CopyFrom(candidate)
        baseline.name, baseline.prediction_key, baseline.is_baseline = tfma.BASELINE_KEY, "base", True
    # What TFX's Evaluator does before TFMA runs; TFMA's own defaults would, without models, see no
    # baseline, so they are skipped here.
    config = tfma.utils.update_eval_config_with_defaults(config, has_baseline=has_baseline, rubber_stamp=True)
    out = str(tmp_path / "evaluation")
    with pytest.MonkeyPatch.context() as patch:
        patch.setattr(model_eval_lib, "_update_eval_config_with_defaults", lambda config, _models: config)
        tfma.run_model_analysis(eval_config=config, data_location=data, file_format="tfrecords", output_path=out)
    return tfma.load_validation_result(out), out, rows


def _failures(result) -> set[tuple[str, bool]]:
    return {(f.metric_key.name, f.metric_key.is_diff) for ps in result.metric_validations_per_slice
            for f in ps.failures}


def _weighted_auc(labels, scores, weights) -> float:
    pos, neg = labels == 1, labels == 0
    greater = scores[pos][:, None] > scores[neg][None, :]
    ties = scores[pos][:, None] == scores[neg][None, :]
    pair_weights = weights[pos][:, None] * weights[neg][None, :]
    return float(((greater + 0.5 * ties) * pair_weights).sum() / pair_weights.sum())


def test_a_better_candidate_is_blessed_and_its_metrics_are_the_ips_weighted_ones(tmp_path):
    sets = [Scored("new", candidate_good=True, baseline_good=False, seed=1)]
    result, out, rows = _evaluate(tmp_path, sets, eval_config(MIN_AUC, BLESS))
    assert result.validation_ok, _failures(result)
    metrics = run_summary.read_metrics(out)
    assert metrics["weighting"] == "ips"
    assert metrics["auc"] > metrics["baseline_auc"] and metrics["ndcg@10"] > metrics["baseline_ndcg@10"]
    # Blessing's own figure: the paired estimate of purchases, as tfx_pipeline/purchase_lift computes it.
    expected = lift(rows["page"], rows["position"], rows["labels"], rows["cand"], rows["base"],
                    np.r_[1.0, CURVE])
    assert metrics["purchase_lift_per_100"] == pytest.approx(expected.per_100, abs=1e-3)
    assert metrics["purchase_lift_z"] == pytest.approx(expected.z(), abs=1e-3) and expected.z() > 3
    assert metrics["purchase_lift_pages"] == PAGES
    # TFMA's AUC is a Riemann sum over 10,000 thresholds; the weighted value is the IPS-weighted one.
    assert metrics["auc"] == pytest.approx(_weighted_auc(rows["labels"], rows["cand"], rows["weights"]), abs=2e-3)
    assert metrics["unweighted_auc"] == pytest.approx(
        _weighted_auc(rows["labels"], rows["cand"], np.ones(len(rows["labels"]))), abs=2e-3)
    assert metrics["auc"] < metrics["unweighted_auc"] - 0.01  # the deep slots weigh more, and it errs there


@pytest.mark.parametrize("weighting", ["ips", "none"])
def test_a_worse_candidate_is_refused_on_estimated_purchases(tmp_path, weighting):
    sets = [Scored("new", candidate_good=False, baseline_good=True, seed=3)]
    result, out, _ = _evaluate(tmp_path, sets, eval_config(MIN_AUC, BLESS, weighting=weighting))
    assert not result.validation_ok
    assert (LIFT, True) in _failures(result)
    metrics = run_summary.read_metrics(out)
    assert metrics["weighting"] == weighting and metrics["purchase_lift_z"] < -BLESS


def test_the_first_run_blesses_on_the_auc_floor_alone(tmp_path):
    good = [Scored("new", candidate_good=True, baseline_good=False, seed=6)]
    result, out, _ = _evaluate(tmp_path / "good", good, eval_config(MIN_AUC, BLESS), has_baseline=False)
    assert result.validation_ok, _failures(result)
    assert "baseline_auc" not in run_summary.read_metrics(out)
    poor = [Scored("new", candidate_good=False, baseline_good=False, seed=7)]
    result = _evaluate(tmp_path / "poor", poor, eval_config(0.9, BLESS), has_baseline=False)[0]
    assert _failures(result) == {("auc", False)}


# --- settings ----------------------------------------------------------------------------------


def test_pipeline_config_checks_the_blessing_settings_naming_the_flag(tmp_path):
    from tfx_pipeline.config import PipelineConfig

    def config(**kwargs):
        return PipelineConfig(data_root=str(tmp_path), home=str(tmp_path / "home"), span=datetime.date(2026, 11, 1),
                              **kwargs)

    assert config().bless_weighting == "ips"
    with pytest.raises(ValueError, match=r"--bless-weighting must be one of ips, none, got 'IPS'"):
        config(bless_weighting="IPS")
    with pytest.raises(ValueError, match=r"--bless-tolerance must be >= 0, got nan"):
        config(bless_tolerance=float("nan"))
    with pytest.raises(ValueError, match=r"--bless-pages must be one of test, held-out, got 'eval'"):
        config(bless_pages="eval")


def test_the_pipeline_evaluates_the_window_with_these_settings(tmp_path):
    from tfx_pipeline.config import PipelineConfig
    from tfx_pipeline.pipeline import create_pipeline

    config = PipelineConfig(data_root=str(tmp_path), home=str(tmp_path / "home"), span=datetime.date(2026, 11, 1),
                            min_auc=0.6, bless_tolerance=0.02, bless_weighting="none")
    evaluator = next(c for c in create_pipeline(config).components if c.id == "Evaluator")
    assert evaluator.inputs["examples"].producer_component_id == "SpanWindow"
    assert json.loads(evaluator.exec_properties["example_splits"]) == ["test"]
    from tfx.utils import proto_utils

    handed = proto_utils.json_to_proto(evaluator.exec_properties["eval_config"], tfma.EvalConfig())
    assert handed == eval_config(0.6, 0.02, "none")


@pytest.mark.parametrize("command", ["run", "watch"])
def test_run_and_watch_take_the_blessing_flags(tmp_path, monkeypatch, command):
    from click.testing import CliRunner

    from freshrank import cli
    from tfx_pipeline import local_runner

    seen = []
    day = tmp_path / "data" / "2026-11-01"
    day.mkdir(parents=True)
    (day / "part-00000.csv").write_text("request_id\n")
    (day / "_SUCCESS").write_text("")
    monkeypatch.setattr(cli, "_run", lambda config: seen.append(config) or 0)
    monkeypatch.setattr(local_runner, "run_once", lambda config: seen.append(config) or {})
    monkeypatch.setattr("freshrank.watch.watch", lambda data, log, run_span, *a, **k: run_span(
        datetime.date(2026, 11, 1)) and 0)
    base = [command, "--data", str(tmp_path / "data"), "--home", str(tmp_path / "home")]
    if command == "watch":
        base.append("--once")
    assert CliRunner().invoke(cli.main, base).exit_code == 0
    assert seen[-1].bless_weighting == "ips"
    result = CliRunner().invoke(cli.main, base + ["--bless-weighting", "none"])
    assert result.exit_code == 0, result.output
    assert seen[-1].bless_weighting == "none"
    result = CliRunner().invoke(cli.main, base + ["--bless-weighting", "clicks"])
    assert result.exit_code == 2 and "'clicks' is not one of 'ips', 'none'" in result.output


def test_compile_takes_the_blessing_flags(tmp_path, monkeypatch):
    from click.testing import CliRunner

    from freshrank import cli
    from tfx_pipeline import kubeflow

    seen = []

    def compile_pipeline(config, image, out, trainer_resources=None):
        seen.append(config)
        return {"pipelineSpec": {"root": {"dag": {"tasks": {}}, "inputDefinitions": {"parameters": {}}}}}

    monkeypatch.setattr(kubeflow, "compile_pipeline", compile_pipeline)
    base = ["compile", "--image", "img:1", "--data", "gs://b/data", "--home", "gs://b/home",
            "--out", str(tmp_path / "p.json")]
    assert CliRunner().invoke(cli.main, base).exit_code == 0
    assert seen[-1].bless_weighting == "ips"
    result = CliRunner().invoke(cli.main, base + ["--bless-weighting", "none"])
    assert result.exit_code == 0, result.output
    assert seen[-1].bless_weighting == "none"
