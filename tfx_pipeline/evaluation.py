"""What "at least as good as the serving model" means: TFMA metrics and blessing thresholds.

AUC of `purchased` over all impressions, and NDCG@10 with `purchased` as gain over each
result page (`request_id`); TFMA skips pages without a purchase, which have no ideal order.
A value threshold always applies (without one the first run writes no blessing at all,
tensorflow/tfx#5148); change thresholds apply whenever a serving model exists.
"""
from __future__ import annotations

import json

import tensorflow_model_analysis as tfma

from trainer.config import GROUP_KEY, LABEL_KEY

EVAL_SPLIT = "test"
NDCG_K = 10


def eval_config(min_auc: float, bless_tolerance: float) -> tfma.EvalConfig:
    def threshold(lower_bound: float | None) -> tfma.MetricThreshold:
        value = tfma.GenericValueThreshold(lower_bound={"value": lower_bound}) if lower_bound is not None else None
        change = tfma.GenericChangeThreshold(
            direction=tfma.MetricDirection.HIGHER_IS_BETTER, absolute={"value": -bless_tolerance}
        )
        return tfma.MetricThreshold(value_threshold=value, change_threshold=change)

    return tfma.EvalConfig(
        model_specs=[
            tfma.ModelSpec(signature_name="regress", label_key=LABEL_KEY, prediction_key="outputs")
        ],
        slicing_specs=[tfma.SlicingSpec()],
        metrics_specs=[
            tfma.MetricsSpec(
                metrics=[
                    tfma.MetricConfig(class_name="ExampleCount"),
                    tfma.MetricConfig(class_name="AUC", threshold=threshold(min_auc)),
                ]
            ),
            tfma.MetricsSpec(
                query_key=GROUP_KEY,
                # top_k through binarize (not the metric's own config) so thresholds find ndcg@k.
                binarize=tfma.BinarizationOptions(top_k_list={"values": [NDCG_K]}),
                metrics=[
                    tfma.MetricConfig(
                        class_name="NDCG",
                        config=json.dumps({"gain_key": LABEL_KEY}),
                        threshold=threshold(0.0),
                    )
                ],
            ),
        ],
    )
