"""The shop's search backend: candidate retrieval and the legacy ranking.

Retrieval is deliberately imperfect (some off-category noise, popularity-biased
sampling) so that the page contains both good and bad results and the order
in which they are shown matters.  The legacy ranking is a fixed, hand-tuned
formula on *long-run* popularity: it never sees today's trends, which is the
gap a freshly trained ranker can close.
"""

from __future__ import annotations

import numpy as np

from .catalog import N_CATEGORIES, DayView
from .rand import Purpose, hashed_uniform
from .shoppers import COLOUR_CODE_OFFSET, Intents

#: Expected fraction of a page retrieved from outside the intent's category.
OFF_CATEGORY_RATE = 0.12
_MAX_OFF = 3


def retrieve(view: DayView, intents: Intents, page_size: int, rng: np.random.Generator) -> np.ndarray:
    """Candidate product indices, shape (requests, page_size), in shuffled (unranked) order."""
    r = len(intents.category)
    k = page_size
    n_off = np.minimum(rng.binomial(k, OFF_CATEGORY_RATE, r), min(_MAX_OFF, k - 1))
    cand = np.full((r, k), -1, dtype=np.int64)
    base = 0.6 * view.popularity + 0.6 * view.log_trend
    for c in range(N_CATEGORIES):
        rows = np.flatnonzero(intents.category == c)
        if len(rows) == 0:
            continue
        prods = view.active_by_category[c]
        n_c = len(prods)
        keys = np.broadcast_to(base[prods], (len(rows), n_c)) + rng.gumbel(size=(len(rows), n_c))
        ib = intents.brand[rows][:, None]
        keys = keys + 2.5 * ((view.brand[prods][None, :] == ib) & (ib >= 0))
        ia = intents.attribute[rows][:, None]
        attr_hit = (view.feature[prods][None, :] == ia) | (
            (view.colour[prods][None, :].astype(np.int64) + COLOUR_CODE_OFFSET) == ia)
        keys = keys + 1.0 * (attr_hit & (ia >= 0))
        kk = min(k, n_c)
        if kk == 0:
            continue
        top = np.argpartition(-keys, kk - 1, axis=1)[:, :kk]
        top_keys = np.take_along_axis(keys, top, axis=1)
        top = np.take_along_axis(top, np.argsort(-top_keys, axis=1, kind="stable"), axis=1)
        k_in = np.minimum(k - n_off[rows], n_c)
        picked = prods[top]
        keep = np.arange(kk)[None, :] < k_in[:, None]
        sub = cand[rows, :kk]
        sub[keep] = picked[keep]
        cand[rows, :kk] = sub

    _fill_off_category(view, intents, cand, rng)
    perm = np.argsort(rng.random((r, k)), axis=1)
    return np.take_along_axis(cand, perm, axis=1)


def _fill_off_category(view: DayView, intents: Intents, cand: np.ndarray, rng: np.random.Generator) -> None:
    """Fill -1 slots with popularity-weighted products from other categories (no duplicates)."""
    pool = np.flatnonzero(view.active)
    w = np.exp(0.6 * view.popularity[pool])
    cw = np.cumsum(w)
    holes = cand < 0
    for _ in range(100):
        rr, ss = np.nonzero(holes)
        if len(rr) == 0:
            return
        pick = pool[np.minimum(np.searchsorted(cw, rng.random(len(rr)) * cw[-1], side="right"), len(pool) - 1)]
        pick[view.category[pick] == intents.category[rr]] = -1
        cand[rr, ss] = pick
        # duplicates within a row: keep the first occurrence, redraw the rest
        srt = np.sort(cand, axis=1)
        for row in np.flatnonzero(((srt[:, 1:] == srt[:, :-1]) & (srt[:, 1:] >= 0)).any(axis=1)):
            _, first = np.unique(cand[row], return_index=True)
            later = np.ones(cand.shape[1], dtype=bool)
            later[first] = False
            cand[row, later] = -1
        holes = cand < 0
    raise RuntimeError("could not fill off-category candidates; catalogue too small")


def legacy_scores(seed: int, view: DayView, request_index: np.ndarray, intents_cat: np.ndarray,
                  intents_brand: np.ndarray, intents_attr: np.ndarray, cand: np.ndarray) -> np.ndarray:
    """Legacy ranking score per (request, candidate slot): text match + long-run popularity + noise."""
    cat_match = view.category[cand] == intents_cat[:, None]
    ib = intents_brand[:, None]
    brand_match = (view.brand[cand] == ib) & (ib >= 0)
    ia = intents_attr[:, None]
    attr_match = ((view.feature[cand] == ia) | ((view.colour[cand].astype(np.int64) + COLOUR_CODE_OFFSET) == ia)) \
        & (ia >= 0)
    slots = np.arange(cand.shape[1])[None, :]
    u = hashed_uniform(seed, view.day_index, Purpose.RANK, np.asarray(request_index)[:, None], slots)
    u = np.clip(u, 1e-12, 1 - 1e-12)
    noise = 0.6 * np.log(u / (1.0 - u))
    return 1.5 * cat_match + 1.0 * brand_match + 0.5 * attr_match + 0.5 * view.popularity[cand] + noise
