"""Counterfactual ranking quality in the generated market: the product's headline figure.

The market knows every impression's purchase probability, so the expected purchases of any
ordering of a search's page are exact (`Market.expected_outcomes`). A model is judged on pages
it has not trained on (the next span's searches), next to the shop's legacy ranking and the best
possible order of the same pages:

- expected purchases per 100 searches under the model, legacy, the oracle and a random order;
- the gap share (model - legacy) / (oracle - legacy): how much of what the legacy ranking leaves
  on the table the model recovers;
- a paired bootstrap 95% interval over searches for model - legacy (and for the gap share), so
  a difference that one day's sample of searches could produce by chance is not called a win.

Logged NDCG/AUC are measured on pages another ranker ordered and partly reward imitating it;
the realised purchases of a day carry several purchases per 100 of sampling noise. Neither can
replace this. It is evaluation only: training and blessing never see the market's probabilities.
"""
from __future__ import annotations

import dataclasses
import math
from collections.abc import Callable, Sequence

import numpy as np

from freshrank.market import Market, Search
from freshrank.market.market import PageOutcomes

BOOTSTRAP_SAMPLES = 2000
CONFIDENCE = 0.95


@dataclasses.dataclass(frozen=True)
class Comparison:
    """One model's ordering of a set of searches against legacy, oracle and random orders."""

    searches: int
    model_per_100: float
    legacy_per_100: float
    oracle_per_100: float
    random_per_100: float
    gap_share: float
    diff_ci: tuple[float, float]  # model - legacy, per 100 searches, paired bootstrap
    gap_share_ci: tuple[float, float]
    model_clicks_per_100: float
    legacy_clicks_per_100: float

    @property
    def diff_per_100(self) -> float:
        return self.model_per_100 - self.legacy_per_100

    @property
    def beats_legacy(self) -> bool:
        """Above legacy with the interval excluding zero."""
        return self.diff_ci[0] > 0

    def to_json(self) -> dict:
        out = {k: (round(v, 4) if isinstance(v, float) else v) for k, v in dataclasses.asdict(self).items()}
        out["diff_ci"] = [round(x, 4) for x in self.diff_ci]
        out["gap_share_ci"] = [round(x, 4) for x in self.gap_share_ci]
        out["diff_per_100"] = round(self.diff_per_100, 4)
        out["beats_legacy"] = self.beats_legacy
        return out

    def line(self) -> str:
        """One human line: model vs legacy vs oracle, gap share and the interval."""
        lo, hi = self.diff_ci
        return (f"{self.model_per_100:.1f} expected purchases per 100 searches against {self.legacy_per_100:.1f} "
                f"under legacy and {self.oracle_per_100:.1f} best possible: {100 * self.gap_share:.0f}% of the gap "
                f"(model - legacy {self.diff_per_100:+.2f}, 95% CI [{lo:+.2f}, {hi:+.2f}])")


@dataclasses.dataclass(frozen=True)
class Reference:
    """The orders every model is compared with on one set of searches: legacy, best, random."""

    legacy: PageOutcomes
    oracle: PageOutcomes
    random: PageOutcomes


def reference(market: Market, searches: Sequence[Search]) -> Reference:
    """Computed once per set of searches: it does not depend on the model being compared."""
    if not searches:
        raise ValueError("no searches to compare on")
    return Reference(legacy=market.expected_outcomes(searches, market.legacy_rankings(searches)),
                     oracle=market.expected_outcomes(searches, market.oracle_rankings(searches)),
                     random=market.random_order_outcomes(searches))


def compare(market: Market, searches: Sequence[Search], model_rankings: Sequence[Sequence[str]],
            bootstrap_samples: int = BOOTSTRAP_SAMPLES, seed: int = 0) -> Comparison:
    """Scores `model_rankings` of `searches` exactly, with a paired bootstrap over searches."""
    base = reference(market, searches)
    return compare_outcomes(market.expected_outcomes(searches, model_rankings), base, bootstrap_samples, seed)


def compare_outcomes(model: PageOutcomes, base: Reference, bootstrap_samples: int = BOOTSTRAP_SAMPLES,
                     seed: int = 0) -> Comparison:
    """`compare` for a model's outcomes already computed, against a reference computed once."""
    m, lg, o = model.purchases, base.legacy.purchases, base.oracle.purchases
    idx = np.random.default_rng(seed).integers(0, len(m), (bootstrap_samples, len(m)))
    diff = (m - lg)[idx].mean(axis=1)
    gap = (o - lg)[idx].mean(axis=1)
    shares = np.divide(diff, gap, out=np.full_like(diff, np.nan), where=gap > 0)
    tail = (1.0 - CONFIDENCE) / 2.0
    return Comparison(
        searches=len(m),
        model_per_100=100.0 * float(m.mean()), legacy_per_100=100.0 * float(lg.mean()),
        oracle_per_100=100.0 * float(o.mean()), random_per_100=100.0 * float(base.random.purchases.mean()),
        gap_share=gap_share(float(m.mean()), float(lg.mean()), float(o.mean())),
        diff_ci=(100.0 * float(np.quantile(diff, tail)), 100.0 * float(np.quantile(diff, 1 - tail))),
        gap_share_ci=(float(np.nanquantile(shares, tail)), float(np.nanquantile(shares, 1 - tail))),
        model_clicks_per_100=100.0 * float(model.clicks.mean()),
        legacy_clicks_per_100=100.0 * float(base.legacy.clicks.mean()),
    )


def paired_difference(a: np.ndarray, b: np.ndarray, bootstrap_samples: int = BOOTSTRAP_SAMPLES,
                      seed: int = 0) -> dict:
    """Mean of a - b per 100 searches with a paired bootstrap interval over searches.

    `a` and `b` are two orderings' expected purchases on the same searches, in the same order: the
    pairing removes the searches' own spread, which dwarfs the difference between two good models.
    """
    a, b = np.asarray(a, dtype=np.float64), np.asarray(b, dtype=np.float64)
    if a.shape != b.shape or a.size == 0:
        raise ValueError(f"paired_difference needs two equal, non-empty arrays, got {a.shape} and {b.shape}")
    d = a - b
    idx = np.random.default_rng(seed).integers(0, len(d), (bootstrap_samples, len(d)))
    means = d[idx].mean(axis=1)
    tail = (1.0 - CONFIDENCE) / 2.0
    return {"diff_per_100": round(100.0 * float(d.mean()), 4),
            "diff_ci": [round(100.0 * float(np.quantile(means, tail)), 4),
                        round(100.0 * float(np.quantile(means, 1 - tail)), 4)],
            "searches": int(len(d))}


def gap_share(model: float, legacy: float, oracle: float) -> float:
    """(model - legacy) / (oracle - legacy); nan when legacy is already the best order."""
    gap = oracle - legacy
    return (model - legacy) / gap if gap > 0 else math.nan


def rank_by_scores(searches: Sequence[Search], scores: Sequence[Sequence[float]]) -> list[list[str]]:
    """Product ids best first by score; ties keep the retrieval order, as `serving.client.rank` does."""
    out = []
    for search, page in zip(searches, scores, strict=True):
        order = np.argsort(-np.asarray(page, dtype=np.float64), kind="stable")
        out.append([search.candidates[j]["product_id"] for j in order])
    return out


def score_searches(searches: Sequence[Search], score_rows: Callable[[dict[str, list]], np.ndarray]
                   ) -> list[np.ndarray]:
    """Scores every candidate of every search in one call of `score_rows` (columns -> scores)."""
    columns: dict[str, list] = {"query": [], "title": [], "brand": [], "category": [], "product_id": [],
                                "price": [], "user_id": []}
    for s in searches:
        for c in s.candidates:
            columns["query"].append(s.query)
            columns["user_id"].append(s.user_id)
            for key in ("title", "brand", "category", "product_id", "price"):
                columns[key].append(c[key])
    flat = np.asarray(score_rows(columns), dtype=np.float64)
    out, start = [], 0
    for s in searches:
        out.append(flat[start:start + len(s.candidates)])
        start += len(s.candidates)
    return out


def mean_comparison(days: Sequence[Comparison]) -> dict:
    """Means over several days (each day one model scored on its next day's searches)."""
    if not days:
        return {}
    return {
        "days": len(days),
        "mean_model_per_100": round(float(np.mean([d.model_per_100 for d in days])), 4),
        "mean_legacy_per_100": round(float(np.mean([d.legacy_per_100 for d in days])), 4),
        "mean_oracle_per_100": round(float(np.mean([d.oracle_per_100 for d in days])), 4),
        "mean_gap_share": round(float(np.nanmean([d.gap_share for d in days])), 4),
        "days_above_legacy": sum(d.beats_legacy for d in days),
    }


def saved_model_scorer(export_dir: str) -> Callable[[dict[str, list]], np.ndarray]:
    """`score_rows` for an exported ranker: its `serving_default`, fed the inputs it declares."""
    import tensorflow as tf
    import tensorflow_text  # noqa: F401  (the tokenizer's ops)

    loaded = tf.saved_model.load(export_dir)
    serve = loaded.signatures["serving_default"]
    names = set(serve.structured_input_signature[1])

    def score_rows(columns: dict[str, list]) -> np.ndarray:
        feeds = {k: tf.constant(v, dtype=tf.float32 if k == "price" else tf.string)
                 for k, v in columns.items() if k in names}
        return serve(**feeds)["score"].numpy()

    score_rows.loaded = loaded  # keeps the variables alive as long as the function
    return score_rows
