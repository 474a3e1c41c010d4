"""What "at least as good as the serving model" means: TFMA metrics and blessing thresholds.

The Evaluator reads SpanWindow's `test` split: the newest span's test pages (with `--bless-pages
held-out` its eval and test pages) with `ips_weight` and `ips_gain` added
(tfx_pipeline/ips_split.py). Metrics: AUC of `purchased` over
all impressions, and NDCG@10 with `purchased` as gain over each result page (`request_id`);
TFMA skips pages without a purchase, which have no ideal order.

Those pages were ordered by another ranker (legacy, or the serving model), and a purchase at
position 8 is rarer than one at position 1 partly because fewer shoppers look that far: an
unweighted metric favours the model that imitates the logged order, which is the serving
model itself. With `weighting="ips"` (the default) both metrics are inverse-propensity weighted:
AUC by the example weight `ips_weight`, NDCG@10 through the gain `ips_gain` = purchased x
ips_weight (TFMA's NDCG takes one example weight per page, so per-impression weights can only
enter through the gain). With `weighting="none"` both are unweighted. The unweighted AUC is
reported beside the weighted one either way.

A value threshold always applies (without one the first run writes no blessing at all,
tensorflow/tfx#5148); change thresholds (no more than `bless_tolerance` below the serving
model) apply whenever a serving model exists.
"""
from __future__ import annotations

import json

import tensorflow_model_analysis as tfma

from tfx_pipeline.components.span_window import TEST
from tfx_pipeline.ips_split import IPS_GAIN_KEY, IPS_WEIGHT_KEY
from trainer.config import GROUP_KEY, LABEL_KEY

EVAL_SPLIT = TEST  # the window artifact's split the Evaluator reads
LIFT_MODULE = "tfx_pipeline.purchase_lift_metric"
NDCG_K = 10
IPS, UNWEIGHTED = "ips", "none"
WEIGHTINGS = (IPS, UNWEIGHTED)


def eval_config(min_auc: float, bless_tolerance: float, weighting: str = IPS) -> tfma.EvalConfig:
    if weighting not in WEIGHTINGS:
        raise ValueError(f"weighting must be one of {WEIGHTINGS}, got {weighting!r}")
    weighted = weighting == IPS
    unweighted = tfma.ExampleWeightOptions(unweighted=True)
    counts = [tfma.MetricConfig(class_name="ExampleCount")]
    # The floor: a value threshold, so the first run (no serving model) is judged too (tfx#5148).
    auc = tfma.MetricConfig(class_name="AUC", threshold=tfma.MetricThreshold(
        value_threshold=tfma.GenericValueThreshold(lower_bound={"value": min_auc})))
    if weighted:
        auc_specs = [
            tfma.MetricsSpec(metrics=[*counts, tfma.MetricConfig(class_name="AUC")], example_weights=unweighted),
            tfma.MetricsSpec(metrics=[auc], example_weights=tfma.ExampleWeightOptions(weighted=True)),
        ]
    else:
        auc_specs = [tfma.MetricsSpec(metrics=[*counts, auc], example_weights=unweighted)]
    # Against the serving model: a change threshold, which TFX drops when there is none.
    lift = tfma.MetricConfig(
        class_name="PurchaseLift", module=LIFT_MODULE, config=json.dumps({"weighted": weighted}),
        threshold=tfma.MetricThreshold(change_threshold=tfma.GenericChangeThreshold(
            direction=tfma.MetricDirection.HIGHER_IS_BETTER, absolute={"value": -bless_tolerance})))
    return tfma.EvalConfig(
        model_specs=[
            tfma.ModelSpec(signature_name="regress", label_key=LABEL_KEY, prediction_key="outputs",
                           example_weight_key=IPS_WEIGHT_KEY if weighted else "")
        ],
        slicing_specs=[tfma.SlicingSpec()],
        metrics_specs=[
            *auc_specs,
            tfma.MetricsSpec(
                query_key=GROUP_KEY,
                # top_k through binarize (not the metric's own config), as TFMA's NDCG wants it.
                binarize=tfma.BinarizationOptions(top_k_list={"values": [NDCG_K]}),
                # One weight per page is all TFMA's NDCG takes: the IPS weights enter through the gain.
                example_weights=unweighted,
                metrics=[tfma.MetricConfig(class_name="NDCG",
                                           config=json.dumps({"gain_key": IPS_GAIN_KEY if weighted else LABEL_KEY}))],
            ),
            tfma.MetricsSpec(query_key=GROUP_KEY, example_weights=unweighted, metrics=[lift]),
        ],
    )
