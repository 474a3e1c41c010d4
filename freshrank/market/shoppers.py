"""Shoppers: who searches, what they mean, what they type, and what they click and buy.

The behaviour model is the ground truth the ranker has to learn, so it lives in
one place (``outcome_probabilities`` / ``draw_outcomes``) that both
``Market.respond`` and the vectorized day simulation call.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from .catalog import CATEGORY_REFERENCE_PRICE, N_CATEGORIES, DayView
from .rand import Purpose, day_rng, hashed_uniform
from .vocab import CATEGORIES, COLOURS, EN_MODIFIERS, MAX_BRANDS, ZH_MODIFIERS

#: Examination probability at position p is p ** -POSITION_BIAS_POWER.
POSITION_BIAS_POWER = 0.8
#: Attribute codes >= this are colours (code - COLOUR_CODE_OFFSET); below are category features.
COLOUR_CODE_OFFSET = 100
NO_INTENT = -1

LANG_ZH, LANG_EN, LANG_MIXED = 0, 1, 2

# Logit offsets tuned so a default-ranked day has ~10-12% CTR and ~2-3% purchases per impression.
_CLICK_BIAS = -3.7
_BUY_BIAS = -4.7


@dataclass(frozen=True)
class Users:
    """Fixed shopper population with hidden tastes."""

    activity: np.ndarray  # probability that a search comes from each user
    category_pref: np.ndarray  # (users, categories), rows sum to 1
    brand_affinity: np.ndarray  # (users, MAX_BRANDS); >0 fan, <0 avoids
    price_sensitivity: np.ndarray  # (users,)
    language: np.ndarray  # (users, 3) probabilities of zh / en / mixed queries

    @property
    def n(self) -> int:
        return len(self.activity)

    @staticmethod
    def generate(seed: int, n_users: int) -> Users:
        rng = day_rng(seed, 0, Purpose.USERS)
        activity = rng.lognormal(0.0, 1.0, n_users)
        pref = rng.dirichlet(np.full(N_CATEGORIES, 0.3), n_users)
        pref = 0.7 * pref + 0.3 / N_CATEGORIES
        aff = np.zeros((n_users, MAX_BRANDS))
        fans = rng.integers(0, MAX_BRANDS, (n_users, 10))
        fan_w = rng.uniform(0.5, 1.5, (n_users, 10))
        aff[np.arange(n_users)[:, None], fans] = fan_w
        haters = rng.integers(0, MAX_BRANDS, (n_users, 3))
        aff[np.arange(n_users)[:, None], haters] = -1.0
        sens = rng.lognormal(0.0, 0.5, n_users)
        lang = rng.dirichlet(np.array([0.44, 0.48, 0.08]) * 6.0, n_users)
        return Users(activity / activity.sum(), pref, aff, sens, lang)


def user_id(index: int) -> str:
    """Public id of a user index; prefixed so it never parses as a number."""
    return f"u{index + 1:06d}"


def _sample_rows(weights: np.ndarray, u: np.ndarray) -> np.ndarray:
    """Inverse-CDF sampling of one column per row of a non-negative weight matrix."""
    cw = np.cumsum(weights, axis=1)
    idx = (cw < (u * cw[:, -1])[:, None]).sum(axis=1)
    return np.minimum(idx, weights.shape[1] - 1)


def expected_category_share(view: DayView, users: Users) -> np.ndarray:
    """Population-level share of searches per category on this day (no sampling noise)."""
    w = users.category_pref * np.exp(view.category_log_demand)[None, :]
    w /= w.sum(axis=1, keepdims=True)
    return users.activity @ w


@dataclass(frozen=True)
class Intents:
    """What each request is after; codes use NO_INTENT (-1) for 'unspecified'."""

    category: np.ndarray
    brand: np.ndarray
    attribute: np.ndarray
    language: np.ndarray


def sample_intents(view: DayView, users: Users, user_idx: np.ndarray, rng: np.random.Generator) -> Intents:
    """Draw (category, optional brand, optional attribute, language) per request.

    Category follows the user's taste times today's category demand (season,
    fads); a named brand follows in-category brand popularity (incl. trends)
    tilted by the user's brand affinity.
    """
    r = len(user_idx)
    u = rng.random((r, 6))
    w = users.category_pref[user_idx] * np.exp(view.category_log_demand)[None, :]
    cat = _sample_rows(w, u[:, 0])

    brand = np.full(r, NO_INTENT, dtype=np.int64)
    wants_brand = u[:, 1] < 0.3
    strength = np.exp(view.popularity + view.log_trend)
    for c in range(N_CATEGORIES):
        rows = np.flatnonzero(wants_brand & (cat == c))
        if len(rows) == 0:
            continue
        act = view.active_by_category[c]
        bw = np.bincount(view.brand[act].astype(np.int64), weights=strength[act], minlength=MAX_BRANDS)
        ids = np.flatnonzero(bw > 0)
        if len(ids) == 0:
            continue
        ww = bw[ids][None, :] * np.exp(users.brand_affinity[user_idx[rows]][:, ids])
        brand[rows] = ids[_sample_rows(ww, u[rows, 2])]

    attr = np.full(r, NO_INTENT, dtype=np.int64)
    wants_attr = u[:, 3] < 0.35
    n_feat = np.array([len(s.features) for s in CATEGORIES])[cat]
    has_col = np.array([s.has_colour for s in CATEGORIES])[cat]
    use_colour = has_col & (u[:, 4] < 0.3)
    feat = np.minimum((u[:, 5] * n_feat).astype(np.int64), n_feat - 1)
    col = np.minimum((u[:, 5] * len(COLOURS)).astype(np.int64), len(COLOURS) - 1)
    attr[wants_attr] = np.where(use_colour, COLOUR_CODE_OFFSET + col, feat)[wants_attr]

    lang = _sample_rows(users.language[user_idx], rng.random(r))
    return Intents(cat, brand, attr, lang)


def attribute_text(category: int, code: int) -> tuple[str, str] | None:
    """(english, chinese) text of an attribute code, None for no attribute."""
    if code < 0:
        return None
    if code >= COLOUR_CODE_OFFSET:
        return COLOURS[code - COLOUR_CODE_OFFSET]
    return CATEGORIES[category].features[code]


def query_texts(view: DayView, intents: Intents, rng: np.random.Generator) -> list[str]:
    """Render each intent as text a shopper would type, in Chinese, English or a mix."""
    r = len(intents.category)
    u = rng.random((r, 6))
    out: list[str] = []
    for i in range(r):
        c = int(intents.category[i])
        spec = CATEGORIES[c]
        n_en, n_zh = spec.nouns[min(int(u[i, 0] * len(spec.nouns)), len(spec.nouns) - 1)]
        b = int(intents.brand[i])
        b_en = view.brand_en[b] if b >= 0 else ""
        b_zh = (view.brand_zh[b] or b_en) if b >= 0 else ""
        a = attribute_text(c, int(intents.attribute[i]))
        lang = int(intents.language[i])
        attr_first = u[i, 1] < 0.45
        mod = u[i, 2] < 0.15
        mod_pick = u[i, 3]
        if lang == LANG_EN:
            brand_txt = b_en.lower() if u[i, 4] < 0.5 else b_en
            core = [n_en] if a is None else ([a[0], n_en] if attr_first else [n_en, a[0]])
            parts = ([brand_txt] if b >= 0 else []) + core
            if mod:
                parts.append(EN_MODIFIERS[int(mod_pick * len(EN_MODIFIERS))])
            text = " ".join(parts)
        elif lang == LANG_ZH:
            brand_txt = b_zh
            core = [n_zh] if a is None else ([a[1], n_zh] if attr_first else [n_zh, a[1]])
            parts = ([brand_txt] if b >= 0 else []) + core
            if mod:
                parts.append(ZH_MODIFIERS[int(mod_pick * len(ZH_MODIFIERS))])
            text = " ".join(parts) if u[i, 5] < 0.7 else "".join(parts)
        else:  # mixed: the other script sneaks in through the brand, noun or attribute
            if b >= 0:
                parts = [b_en.lower(), n_zh] + ([a[int(u[i, 4] < 0.5)]] if a else [])
            elif a is not None:
                parts = [n_zh, a[0]] if u[i, 4] < 0.5 else [a[1], n_en]
            else:
                parts = ([n_en, ZH_MODIFIERS[int(mod_pick * len(ZH_MODIFIERS))]] if u[i, 4] < 0.5
                         else [n_zh, EN_MODIFIERS[int(mod_pick * len(EN_MODIFIERS))]])
            text = " ".join(parts)
        out.append(text)
    return out


def _matches(view: DayView, intents_cat: np.ndarray, intents_brand: np.ndarray,
             intents_attr: np.ndarray, cand: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Per (request, candidate): category match, brand match term, attribute match term."""
    cat_match = view.category[cand] == intents_cat[:, None]
    has_b = (intents_brand >= 0)[:, None]
    brand_match = view.brand[cand] == intents_brand[:, None]
    brand_term = np.where(has_b, np.where(brand_match, 1.0, -0.7), 0.0)
    ia = intents_attr[:, None]
    has_a = ia >= 0
    attr_match = (view.feature[cand] == ia) | ((view.colour[cand].astype(np.int64) + COLOUR_CODE_OFFSET) == ia)
    attr_term = np.where(has_a, np.where(attr_match, 0.8, -0.4), 0.0)
    return cat_match, brand_term, attr_term


def outcome_probabilities(view: DayView, users: Users, user_idx: np.ndarray, intents_cat: np.ndarray,
                          intents_brand: np.ndarray, intents_attr: np.ndarray, cand: np.ndarray,
                          positions: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """P(click) and P(purchase | click) per (request, candidate slot) for the page as shown.

    Click = examined (position bias) x attractive (visible match, trend, price);
    purchase given click weighs hidden quality, price against the user's
    sensitivity, brand affinity and the current trend more heavily.
    """
    cat_match, brand_term, attr_term = _matches(view, intents_cat, intents_brand, intents_attr, cand)
    match = 2.5 * cat_match + brand_term + attr_term
    aff = users.brand_affinity[user_idx[:, None], view.brand[cand].astype(np.int64)]
    cat = view.category[cand].astype(np.int64)
    price_z = np.log(view.price[cand] / CATEGORY_REFERENCE_PRICE[cat])
    sens = users.price_sensitivity[user_idx][:, None] - 0.3
    trend = view.log_trend[cand]
    quality = view.quality[cand]
    pop = view.popularity[cand]
    disc = view.discount[cand]
    attract = _CLICK_BIAS + match + 0.4 * aff + 0.5 * trend + 0.25 * pop + 0.3 * quality \
        - 0.3 * sens * price_z + 1.0 * disc
    buy = _BUY_BIAS + 0.8 * match + 0.6 * aff + 0.7 * trend + 0.2 * pop + 0.8 * quality \
        - 0.9 * sens * price_z + 2.0 * disc
    examine = positions.astype(np.float64) ** -POSITION_BIAS_POWER
    p_click = examine / (1.0 + np.exp(-attract))
    p_buy = 1.0 / (1.0 + np.exp(-buy))
    return p_click, p_buy


def draw_outcomes(seed: int, view: DayView, users: Users, request_index: np.ndarray, user_idx: np.ndarray,
                  intents_cat: np.ndarray, intents_brand: np.ndarray, intents_attr: np.ndarray,
                  cand: np.ndarray, positions: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Clicked / purchased (0/1, int8) per (request, candidate slot).

    Randomness is keyed by (seed, day, request, candidate slot), not by
    position, so re-ranking a page changes outcomes only through position bias.
    """
    p_click, p_buy = outcome_probabilities(view, users, user_idx, intents_cat, intents_brand,
                                           intents_attr, cand, positions)
    slots = np.arange(cand.shape[1])[None, :]
    req = np.asarray(request_index)[:, None]
    u_click = hashed_uniform(seed, view.day_index, Purpose.RESPOND, req, 2 * slots)
    u_buy = hashed_uniform(seed, view.day_index, Purpose.RESPOND, req, 2 * slots + 1)
    clicked = u_click < p_click
    purchased = clicked & (u_buy < p_buy)
    return clicked.astype(np.int8), purchased.astype(np.int8)
