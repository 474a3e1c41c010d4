"""The one-line JSON record of a run: printed last on stdout and appended to `<home>/runs.jsonl`."""
from __future__ import annotations

import json
import math
import os
from typing import Any

from tfx_pipeline.lineage import Lineage, NodeRecord, custom, read_model_facts

PUSHED, NOT_BLESSED, REJECTED_DATA = "pushed", "not_blessed", "rejected_data"


def summarize(lineage: Lineage, nodes: dict[str, NodeRecord], span: str, total_seconds: float) -> dict:
    window = _first(nodes, "SpanWindow", "outputs", "window")
    model = _first(nodes, "Trainer", "outputs", "model")
    base = _first(nodes, "Trainer", "inputs", "base_model")
    blessing = _first(nodes, "Evaluator", "outputs", "blessing")
    evaluation = _first(nodes, "Evaluator", "outputs", "evaluation")
    pushed = _first(nodes, "Pusher", "outputs", "pushed_model")
    facts = read_model_facts(model.uri) if model is not None else {}
    blessed = bool(blessing is not None and custom(blessing, "blessed") == 1)
    pushed_version = None
    if pushed is not None and custom(pushed, "pushed") == 1:
        pushed_version = int(custom(pushed, "pushed_version"))
    return {
        "span": span,
        "window_spans": list(custom(window, "window_spans") or []) if window is not None else [],
        "train_examples": int(custom(window, "train_examples") or 0) if window is not None else 0,
        "warm_started_from": lineage.pushed_version_of(base.id) if base is not None else None,
        "status": PUSHED if pushed_version is not None else NOT_BLESSED,
        "blessed": blessed,
        "pushed_version": pushed_version,
        "metrics": read_metrics(evaluation.uri) if evaluation is not None else {},
        "train_seconds": facts.get("train_seconds"),
        "total_seconds": round(total_seconds, 3),
        "model_uri": model.uri if model is not None else None,
        "trainable_parameters": facts.get("trainable_parameters"),
        "examples_processed": facts.get("examples_processed"),
    }


def rejected(span: str, problems: list[str], total_seconds: float) -> dict:
    return {
        "span": span, "window_spans": [], "train_examples": 0, "warm_started_from": None,
        "status": REJECTED_DATA, "blessed": False, "pushed_version": None, "metrics": {},
        "train_seconds": None, "total_seconds": round(total_seconds, 3), "problems": problems,
    }


def read_metrics(evaluation_uri: str) -> dict:
    """AUC and NDCG@10 of the candidate and, when there is one, the baseline, as blessing judged them.

    `auc`, `ndcg@10`, `baseline_auc`, `baseline_ndcg@10`: the newest span's test split,
    IPS-weighted unless the run blessed with `--bless-weighting none` (`weighting` says which);
    `unweighted_auc` (and `baseline_unweighted_auc`) beside a weighted AUC; with a serving
    model, what blessing decided on: `purchase_lift_per_100` (the candidate's estimated purchases
    per 100 searches minus the serving model's), `purchase_lift_z` (that in standard errors) and
    `purchase_lift_pages` (tfx_pipeline/purchase_lift_metric.py).
    """
    # Imported here: light commands (rollback) append records without loading TFMA.
    import tensorflow_model_analysis as tfma

    from tfx_pipeline.evaluation import IPS, NDCG_K, UNWEIGHTED
    from tfx_pipeline.purchase_lift_metric import NAME, PAGES, PER_100

    found: dict[tuple[str, str, bool], float | None] = {}
    lift: dict[str, float] = {}
    for slice_metrics in tfma.load_metrics(evaluation_uri):
        if slice_metrics.slice_key.single_slice_keys:
            continue
        for kv in slice_metrics.metric_keys_and_values:
            key = kv.key
            if key.is_diff:
                if key.name in (NAME, PER_100, PAGES):
                    lift[key.name] = round(kv.value.double_value.value, 4)
                continue
            name = key.name.lower()
            if name == "ndcg" and key.sub_key.top_k.value == NDCG_K:
                label = f"ndcg@{NDCG_K}"
            elif name == "auc":
                label = "auc"
            else:
                continue
            model = "baseline_" if key.model_name == "baseline" else ""
            value = kv.value.double_value.value
            weighted = key.example_weighted.value if key.HasField("example_weighted") else False
            found[(model, label, weighted)] = None if math.isnan(value) else round(value, 6)
    weighted_auc = any(label == "auc" and weighted for (_, label, weighted) in found)
    metrics: dict = {}
    for (model, label, weighted), value in sorted(found.items()):
        if label == "auc" and weighted_auc and not weighted:
            label = "unweighted_auc"
        metrics[model + label] = value
    if found:
        metrics["weighting"] = IPS if weighted_auc else UNWEIGHTED
    return {**metrics, **lift}


def append(runs_log: str, record: dict[str, Any]) -> None:
    os.makedirs(os.path.dirname(runs_log), exist_ok=True)
    with open(runs_log, "a", encoding="utf-8") as f:
        f.write(json.dumps(record, sort_keys=True, ensure_ascii=False) + "\n")
        f.flush()
        os.fsync(f.fileno())


def _first(nodes: dict[str, NodeRecord], node: str, side: str, key: str):
    record = nodes.get(node)
    if record is None:
        return None
    found = (record.inputs if side == "inputs" else record.outputs).get(key) or []
    return found[0] if found else None
