"""`PurchaseLift`: the TFMA metric that blesses on estimated purchases, candidate against baseline.

TFMA has ranking metrics (NDCG, MinLabelPosition) but none that weighs a logged page by how
likely each position was looked at, and its change thresholds compare two metrics computed
separately, so a paired comparison of two rankers on the same pages is not expressible with them.
This is a cross-model metric, as TFMA's own `ModelCosineSimilarity` is: for every result page
(`query_key`) it gets both models' predictions, orders the page by each and estimates the page's
purchases under each order from the logged positions and purchases (tfx_pipeline/purchase_lift.py,
inverse-propensity weighted; `weighted=False`: unweighted). It outputs diff keys on the candidate:

- `purchase_lift_z` (the metric's name): the mean per-page difference in standard errors;
- `purchase_lift_per_100`: the difference in purchases per 100 searches;
- `purchase_lift_pages`: the pages it was measured on.

Blessing puts a change threshold on the z value (at least `-bless_tolerance`), so a candidate is refused
only when the logs say it sells less by more than noise explains. A change threshold is what TFX
drops on a first run, when there is no baseline: then this metric computes nothing either.

Each example carries the examination curve SpanWindow fitted (`examination_curve`, P(examined) at
positions 1..N relative to position 1) beside its logged `position`: the curve is learned at run
time, after this config was written.
"""
from __future__ import annotations

import dataclasses
from collections.abc import Iterable

import apache_beam as beam
import numpy as np
from tensorflow_model_analysis.metrics import metric_types, metric_util
from tensorflow_model_analysis.proto import config_pb2
from tensorflow_model_analysis.utils import model_util, util

from tfx_pipeline.ips_split import CURVE_KEY
from tfx_pipeline.purchase_lift import Lift, page_purchases
from trainer.config import GROUP_KEY, POSITION_KEY

NAME = "purchase_lift_z"
PER_100, PAGES = "purchase_lift_per_100", "purchase_lift_pages"


class PurchaseLift(metric_types.Metric):
    """Candidate minus baseline, estimated purchases per page on the same logged pages."""

    def __init__(self, name: str = NAME, weighted: bool = True):
        super().__init__(_computations, name=name, weighted=weighted)


def _computations(name: str, weighted: bool, eval_config: config_pb2.EvalConfig | None = None,
                  model_names: Iterable[str] | None = None, output_names: Iterable[str] | None = None,
                  example_weighted: bool = False, query_key: str = GROUP_KEY) -> metric_types.MetricComputations:
    baseline = model_util.get_baseline_model_spec(eval_config) if eval_config else None
    if baseline is None:  # a first run: nothing to compare with, and TFX drops the change threshold
        return []
    computations = []
    for model_name in model_names or []:
        if model_name == baseline.name:
            continue
        for output_name in output_names or [""]:
            keys = [metric_types.MetricKey(key_name, model_name=model_name, output_name=output_name,
                                           example_weighted=example_weighted, is_diff=True)
                    for key_name in (name, PER_100, PAGES)]
            computations.append(metric_types.MetricComputation(
                keys=keys,
                preprocessors=[metric_types.CombinedFeaturePreprocessor(
                    feature_keys=[query_key or GROUP_KEY, POSITION_KEY, CURVE_KEY])],
                combiner=_LiftCombiner(keys, eval_config, baseline.name, model_name, output_name, weighted),
            ))
    return computations


@dataclasses.dataclass
class _Sums:
    pages: int = 0
    total: float = 0.0
    squares: float = 0.0


class _LiftCombiner(beam.CombineFn):
    """Accumulates per-page differences (count, sum, sum of squares): mergeable across workers."""

    def __init__(self, keys: list[metric_types.MetricKey], eval_config, baseline_name: str, model_name: str,
                 output_name: str, weighted: bool):
        self._keys, self._eval_config = keys, eval_config
        self._baseline_name, self._model_name, self._output_name = baseline_name, model_name, output_name
        self._weighted = weighted

    def _predictions(self, element: metric_types.StandardMetricInputs, model_name: str):
        labels, predictions, _ = next(metric_util.to_label_prediction_example_weight(
            element, eval_config=self._eval_config, model_name=model_name, output_name=self._output_name,
            flatten=False, allow_none=True))
        return np.asarray(labels).reshape(-1), np.asarray(predictions, dtype=np.float64).reshape(-1)

    def create_accumulator(self) -> _Sums:
        return _Sums()

    def add_input(self, accumulator: _Sums, element: metric_types.StandardMetricInputs) -> _Sums:
        purchased, candidate = self._predictions(element, self._model_name)
        _, baseline = self._predictions(element, self._baseline_name)
        positions = np.asarray(util.get_by_keys(element.combined_features, [POSITION_KEY])).reshape(-1)
        curves = np.asarray(util.get_by_keys(element.combined_features, [CURVE_KEY]), dtype=np.float64)
        curve = np.r_[1.0, curves.reshape(len(positions), -1)[0]]  # entry 0 unused, as propensity's curves
        page = np.zeros(len(positions), dtype=np.int64)
        difference = float(page_purchases(page, positions, purchased, candidate, curve, self._weighted)[1][0]
                           - page_purchases(page, positions, purchased, baseline, curve, self._weighted)[1][0])
        accumulator.pages += 1
        accumulator.total += difference
        accumulator.squares += difference * difference
        return accumulator

    def merge_accumulators(self, accumulators: Iterable[_Sums]) -> _Sums:
        merged = _Sums()
        for a in accumulators:
            merged.pages += a.pages
            merged.total += a.total
            merged.squares += a.squares
        return merged

    def extract_output(self, accumulator: _Sums) -> dict[metric_types.MetricKey, float]:
        n = accumulator.pages
        mean = accumulator.total / n if n else 0.0
        variance = (accumulator.squares - n * mean * mean) / (n - 1) if n > 1 else 0.0
        lift = paired_summary(mean, max(variance, 0.0), n)
        return dict(zip(self._keys, (lift.z(), lift.per_100, float(n)), strict=True))


def paired_summary(mean: float, variance: float, pages: int) -> Lift:
    """The same `Lift` that `purchase_lift.paired` gives, from the accumulated moments."""
    se = (variance / pages) ** 0.5 if pages else 0.0
    return Lift(100.0 * mean, 100.0 * se, pages)


metric_types.register_metric(PurchaseLift)
