"""The bench's blessing rules, computed on what the logs hold, and how often each is right.

The pipeline's Evaluator (tfx_pipeline/evaluation.py) blesses a candidate when, on the new span's
test split, its AUC reaches `min_auc` and neither its AUC nor its NDCG@10 falls more than
`bless_tolerance` below the serving model's. With `ips` weighting (the default) both metrics are
weighted by inverse examination propensity estimated from the window's logs
(trainer/propensity.py): AUC by example weight, NDCG@10 through gain = purchased x weight.

The bench computes four rules side by side on every update - unweighted or IPS-weighted, and
each also with the previous span's test split as trusted data that must not get worse by more
than `trusted_tolerance` (a guard against labels broken in a way the data gate cannot see; the
pipeline does not apply it: measured, it refused good updates as often as bad ones) - and
compares each decision with the truth the market knows: is the candidate's order of the next
span's searches better, in expected purchases, than the serving model's? `agreement` is the
share of updates where a rule's decision matches that truth.
"""
from __future__ import annotations

import numpy as np

from freshrank.bench import metrics
from freshrank.bench.scoring import read_split
from trainer import propensity

WEIGHTINGS = ("ips", "none")
RULES = ("unweighted", "ips", "unweighted_trusted", "ips_trusted")
DEFAULT_TRUSTED_TOLERANCE = 0.01


def product_rule(settings) -> str:
    """The rule the pipeline applies with these settings."""
    return "ips" if settings.bless_weighting == "ips" else "unweighted"


def estimate_curve(patterns_per_span: list[list[str]]) -> np.ndarray:
    """P(examined | position) from the clicks of the given train splits (no oracle)."""
    splits = [read_split(tuple(p)) for p in patterns_per_span]
    return propensity.examination_curve(np.concatenate([s.positions for s in splits]),
                                        np.concatenate([s.clicks for s in splits]),
                                        np.concatenate([s.items for s in splits]))


def _metrics(scored, curve: np.ndarray | None) -> dict[str, float]:
    weights = None if curve is None else propensity.ips_weights(scored.positions, curve)
    return metrics.evaluate(scored.groups, scored.labels, scored.scores, weights)


def _no_worse(candidate: dict, baseline: dict, tolerance: float) -> bool:
    return bool(candidate["auc"] >= baseline["auc"] - tolerance
                and candidate["ndcg@10"] >= baseline["ndcg@10"] - tolerance)


def decide(candidate, serving, t: int, curve: np.ndarray, settings) -> dict:
    """Every rule's decision on the update through span t, and the metrics behind them.

    `candidate` and `serving` are the bench's model views (their `test(t)` scores span t's test split).
    """
    out: dict = {"span": t}
    for weighting, weights in (("unweighted", None), ("ips", curve)):
        new_c, new_s = _metrics(candidate.test(t), weights), _metrics(serving.test(t), weights)
        old_c, old_s = _metrics(candidate.test(t - 1), weights), _metrics(serving.test(t - 1), weights)
        passes_new = bool(new_c["auc"] >= settings.min_auc) and _no_worse(new_c, new_s, settings.bless_tolerance)
        out[weighting] = passes_new
        out[f"{weighting}_trusted"] = passes_new and _no_worse(old_c, old_s, settings.trusted_tolerance)
        out[f"{weighting}_metrics"] = {"new": {"candidate": _rounded(new_c), "serving": _rounded(new_s)},
                                       "trusted": {"candidate": _rounded(old_c), "serving": _rounded(old_s)}}
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
