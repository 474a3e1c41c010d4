"""The bench's blessing rules, computed on what the logs hold, and how often each is right.

The pipeline's Evaluator (tfx_pipeline/evaluation.py) blesses a candidate when, on the new span's
test pages (with `--bless-pages held-out` its eval and test pages), its AUC reaches `min_auc` and
its estimated purchases (the paired inverse-propensity estimate of tfx_pipeline/purchase_lift.py)
fall no more than `bless_tolerance` standard errors below the serving model's. With `ips`
weighting (the default) the estimate and the AUC are weighted by
inverse examination propensity estimated from the window's logs (trainer/propensity.py).

The bench computes six rules side by side on every update - the purchase lift on the new span's
test pages (`lift_*`) and on its eval and test pages together (`lift_*_held_out`, `--bless-pages
held-out`), and the rule it replaced (`auc_ndcg_*`: AUC and NDCG@10 no lower than the serving
model's), each unweighted and IPS-weighted - and compares each decision with the truth the market
knows: is the candidate's order of the next span's searches better, in expected purchases, than
the serving model's? `agreement` is the share of updates where a rule's decision matches that
truth; benchmarks/blessing_rules.py replays the recorded figures at other thresholds.
"""
from __future__ import annotations

import numpy as np

from freshrank.bench import metrics
from freshrank.bench.scoring import read_split
from tfx_pipeline import purchase_lift
from tfx_pipeline.config import HELD_OUT_PAGES, TEST_PAGES
from trainer import propensity

WEIGHTINGS = ("ips", "none")
RULES = ("lift_ips", "lift_unweighted", "auc_ndcg_ips", "auc_ndcg_unweighted",
         "lift_ips_held_out", "lift_unweighted_held_out")


def product_rule(settings, bless_pages: str | None = None) -> str:
    """The rule the pipeline applies with these settings (on `bless_pages` when given)."""
    rule = "lift_ips" if settings.bless_weighting == "ips" else "lift_unweighted"
    return rule + pages_suffix(bless_pages or settings.bless_pages)


def pages_suffix(bless_pages: str) -> str:
    """The rule names' suffix for the pages a rule reads (none: the test pages)."""
    return "_held_out" if bless_pages == HELD_OUT_PAGES else ""


def estimate_curve(patterns_per_span: list[list[str]]) -> np.ndarray:
    """P(examined | position) from the clicks of the given train splits (no oracle)."""
    splits = [read_split(tuple(p)) for p in patterns_per_span]
    return propensity.examination_curve(np.concatenate([s.positions for s in splits]),
                                        np.concatenate([s.clicks for s in splits]),
                                        np.concatenate([s.items for s in splits]))


def _metrics(scored, curve: np.ndarray | None) -> dict[str, float]:
    weights = None if curve is None else propensity.ips_weights(scored.positions, curve)
    return metrics.evaluate(scored.groups, scored.labels, scored.scores, weights)


def _no_worse(candidate: dict, baseline: dict) -> bool:
    return bool(candidate["auc"] >= baseline["auc"] and candidate["ndcg@10"] >= baseline["ndcg@10"])


def decide(candidate, serving, t: int, curve: np.ndarray, settings) -> dict:
    """Every rule's decision on the update through span t, and the figures behind them.

    `candidate` and `serving` are the bench's model views (their `test(t)` scores span t's test
    split, `held_out(t)` its eval and test splits). The `*_held_out` lift rules read both splits:
    twice the pages, so a standard error about 0.7 of the test split's.
    """
    out: dict = {"span": t}
    pages = {pages_suffix(TEST_PAGES): (candidate.test(t), serving.test(t)),
             pages_suffix(HELD_OUT_PAGES): (candidate.held_out(t), serving.held_out(t))}
    for weighting, weights in (("unweighted", None), ("ips", curve)):
        for suffix, (scored_c, scored_s) in pages.items():
            metrics_c = _metrics(scored_c, weights)
            floor = bool(metrics_c["auc"] >= settings.min_auc)
            gain = purchase_lift.lift(scored_c.groups, scored_c.positions, scored_c.labels, scored_c.scores,
                                      scored_s.scores, curve, weighted=weighting == "ips")
            out[f"lift_{weighting}{suffix}"] = floor and gain.blesses(settings.bless_tolerance)
            out[f"{weighting}_lift_estimate{suffix}"] = gain.to_json()
            if suffix == pages_suffix(TEST_PAGES):  # the AUC/NDCG rule and its figures: the test pages
                metrics_s = _metrics(scored_s, weights)
                out[f"auc_ndcg_{weighting}"] = floor and _no_worse(metrics_c, metrics_s)
                out[f"{weighting}_metrics"] = {"new": {"candidate": _rounded(metrics_c),
                                                       "serving": _rounded(metrics_s)}}
    return out


def _rounded(m: dict) -> dict:
    return {"auc": round(m["auc"], 5), "ndcg@10": round(m["ndcg@10"], 5)}


def agreement(decisions: list[dict]) -> dict[str, dict]:
    """Per rule: the share of updates whose decision matched the truth, and its confusion counts."""
    if not decisions:
        return {}
    out = {}
    for rule in RULES:
        right = sum(d[rule] == d["truth"] for d in decisions)
        out[rule] = {
            "agreement": round(right / len(decisions), 4),
            "blessed_better": sum(d[rule] and d["truth"] for d in decisions),
            "blessed_worse": sum(d[rule] and not d["truth"] for d in decisions),
            "rejected_better": sum(not d[rule] and d["truth"] for d in decisions),
            "rejected_worse": sum(not d[rule] and not d["truth"] for d in decisions),
            "updates": len(decisions),
        }
    return out
