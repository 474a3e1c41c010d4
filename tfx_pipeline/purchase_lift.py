"""How many more purchases a candidate's order would have made than the serving model's, from logs.

Blessing has to answer "would this model sell more than the one serving?" with only the logs: pages
that a third ranker (legacy, or the serving model) ordered, with the position of every impression
and whether it was bought. Under the position-based model a purchase needs the item to be looked at
(P(examined | position), the curve fitted to the clicks by trainer/propensity.py) and then bought
(the item's own rate at that search), so an impression bought at logged position p is evidence of
1 / e(p) purchases per look, and a new order that puts the item at rank r would expect
e(r) / e(p) of them. Summed over a page's purchases, that is the inverse-propensity estimate of the
page's purchases under the new order (Joachims et al., WSDM 2017; Li et al., "Counterfactual
estimation and optimization of click metrics in search engines", 2015). It is the logged version of
the figure the product is judged by (expected purchases per 100 searches), where AUC and NDCG@10
with a log2 discount measure something nearby.

Two models are compared page by page on the same logs (a paired difference), so their shared
noise cancels: only purchased items the two place differently count. The standard error over pages
says how much of a difference the split can tell from noise.

`weighted=False` drops the 1 / e(p) factor (an order is credited e(r) per purchase wherever the
logging ranker showed it): the unweighted analogue, which favours imitating the logged order.
"""
from __future__ import annotations

import dataclasses
import math

import numpy as np

from trainer import propensity


def page_purchases(groups: np.ndarray, positions: np.ndarray, purchased: np.ndarray, scores: np.ndarray,
                   curve: np.ndarray, weighted: bool = True) -> tuple[np.ndarray, np.ndarray]:
    """(page keys sorted, each page's estimated purchases when ordered by `scores`, best first).

    Pages are the distinct `groups`; examples may come in any order. Ties in score keep the
    examples' input order.
    """
    groups = np.asarray(groups)
    scores = np.asarray(scores, dtype=np.float64)
    order = np.lexsort((np.arange(len(scores)), -scores, groups))  # by page, best score first
    sorted_groups = groups[order]
    starts = np.flatnonzero(np.r_[True, sorted_groups[1:] != sorted_groups[:-1]])
    page_of = np.cumsum(np.r_[True, sorted_groups[1:] != sorted_groups[:-1]]) - 1
    ranks = np.arange(len(order)) - starts[page_of] + 1
    look = curve[np.minimum(ranks, len(curve) - 1)]
    bought = np.asarray(purchased, dtype=np.float64)[order] > 0
    credit = propensity.ips_weights(np.asarray(positions)[order], curve) if weighted else np.ones(len(order))
    per_page = np.bincount(page_of, bought * look * credit, minlength=len(starts))
    return sorted_groups[starts], per_page


@dataclasses.dataclass(frozen=True)
class Lift:
    """Candidate minus serving model, estimated purchases per 100 searches, over `pages` pages."""

    per_100: float
    standard_error: float
    pages: int

    def z(self) -> float:
        """The difference in standard errors (0 when the split cannot tell the two apart at all)."""
        if self.standard_error > 0:
            return self.per_100 / self.standard_error
        return 0.0 if self.per_100 == 0 else math.copysign(math.inf, self.per_100)

    def blesses(self, max_z_below: float) -> bool:
        """True unless the candidate is worse by more than `max_z_below` standard errors."""
        return self.z() >= -max_z_below

    def to_json(self) -> dict:
        return {"per_100": round(self.per_100, 4), "standard_error": round(self.standard_error, 4),
                "pages": self.pages}


def lift(groups: np.ndarray, positions: np.ndarray, purchased: np.ndarray, candidate_scores: np.ndarray,
         serving_scores: np.ndarray, curve: np.ndarray, weighted: bool = True) -> Lift:
    """The candidate's estimated purchases minus the serving model's, page by page on the same logs."""
    _, candidate = page_purchases(groups, positions, purchased, candidate_scores, curve, weighted)
    _, serving = page_purchases(groups, positions, purchased, serving_scores, curve, weighted)
    return paired(candidate - serving)


def paired(differences: np.ndarray) -> Lift:
    """Mean and standard error of per-page differences, per 100 searches."""
    n = len(differences)
    if n == 0:
        return Lift(0.0, 0.0, 0)
    se = float(np.std(differences, ddof=1) / math.sqrt(n)) if n > 1 else 0.0
    return Lift(100.0 * float(np.mean(differences)), 100.0 * se, n)
