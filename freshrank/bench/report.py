"""bench.json, bench.md and bench.png from the bench's results."""
from __future__ import annotations

import json
import math
import os

COLUMNS = ("mean_expected_purchases_per_100", "mean_gap_share", "expected_vs_full_retrain", "updates_above_legacy",
           "mean_ndcg@10", "mean_auc", "forgetting", "train_examples", "train_flops", "flops_vs_full_retrain",
           "train_seconds", "blessed_updates")


def write_all(out: str, results: dict) -> list[str]:
    """Writes the three files into `out`; returns their paths."""
    os.makedirs(out, exist_ok=True)
    paths = [os.path.join(out, name) for name in ("bench.json", "bench.md", "bench.png")]
    with open(paths[0], "w", encoding="utf-8") as f:
        json.dump(results, f, indent=1, sort_keys=True, allow_nan=True)
    with open(paths[1], "w", encoding="utf-8") as f:
        f.write(markdown(results))
    plot(results, paths[2])
    return paths


def _cell(value) -> str:
    if isinstance(value, float):
        if math.isnan(value):
            return "nan"
        return f"{value:.4f}" if abs(value) < 100 else f"{value:.3g}"
    if isinstance(value, int) and abs(value) >= 10**7:
        return f"{value:.3g}"
    return str(value)


def _minus_full(row: dict) -> str:
    d = row.get("minus_full_retrain")
    if not d:
        return "nan"
    lo, hi = d["diff_ci"]
    return f"{d['diff_per_100']:+.2f} [{lo:+.2f}, {hi:+.2f}]"


def table(results: dict) -> str:
    """One row per strategy; `minus_full_retrain` is per 100 searches, paired, with its 95% interval."""
    lines = ["| strategy | " + " | ".join(COLUMNS[:3]) + " | minus_full_retrain [95% CI] | " + " | ".join(COLUMNS[3:])
             + " |", "| --- |" + " ---: |" * (len(COLUMNS) + 1)]
    for name, row in results["strategies"].items():
        cells = [_cell(row.get(c, math.nan)) for c in COLUMNS]
        lines.append(f"| {name} | " + " | ".join(cells[:3]) + f" | {_minus_full(row)} | " + " | ".join(cells[3:])
                     + " |")
    return "\n".join(lines)


def agreement_table(results: dict) -> str:
    rows = results.get("blessing_agreement") or {}
    lines = ["| rule | agrees with the truth | blessed better | blessed worse | rejected better | rejected worse |",
             "| --- | ---: | ---: | ---: | ---: | ---: |"]
    for rule, r in rows.items():
        mark = " (the pipeline's)" if rule == results.get("blessing_rule") else ""
        lines.append(f"| {rule}{mark} | {100 * r['agreement']:.0f}% of {r['updates']} | {r['blessed_better']} | "
                     f"{r['blessed_worse']} | {r['rejected_better']} | {r['rejected_worse']} |")
    return "\n".join(lines)


def markdown(results: dict) -> str:
    s = results["settings"]
    first = results["first_model"]
    lines = [
        "# freshrank bench: does incremental updating pay?",
        "",
        f"Stream: {s['days']} spans from {s['start']}, drift `{s['drift']}`, seed {s['seed']}, "
        f"{s['requests_per_day']} searches/day; window {s['window']} spans; from-scratch training "
        f"{s['epochs']} epochs, the named warm-start updates {s['warm_epochs']} epoch(s); replay fraction "
        f"{s['replay_fraction']}, distillation weight {s['distill_weight']}. `pipeline_default` is the "
        f"trainer config as given ({json.dumps({k: v for k, v in s['train'].items() if k != 'bert'})}) with "
        "the pipeline's window, and serves only blessed candidates. Every strategy starts from the same first "
        f"model (span 1; next span {100 * first['next_span_expected']['gap_share']:.1f}% of the gap).",
        "",
        "Progressive validation: the model served after the update through span t orders span t+1's searches "
        f"before it sees them; means are over the {len(results['scored_spans'])} updates (scored on "
        f"{', '.join(results['scored_spans'])}). *Expected purchases per 100* searches are exact (the market's "
        "own probabilities, position bias included); *gap share* = (model - legacy) / (best order - legacy); "
        "*updates above legacy*: updates whose paired bootstrap 95% interval of model - legacy excludes zero. "
        "Logged NDCG@10 and AUC (the Evaluator's definitions, unweighted) are measured on pages the legacy "
        "ranking ordered. *Forgetting*: the gap share on searches of span 1's day that no span logs, of the "
        "first model minus the final model's (positive = forgot). *train_flops*: examples processed x FLOPs of one training "
        "example in that mode (a frozen lower encoder skips its backward pass; trainer/flops.py); the shared "
        "first model is not counted. *blessed_updates*: candidates the pipeline's rule "
        f"(`{results.get('blessing_rule')}`) blesses, out of the updates.",
        "",
        table(results),
        "",
        "## Blessing against the truth",
        "",
        "Every update of every strategy, decided by each rule from the logs alone, against whether the "
        "candidate orders the next span better than the model it would replace (counterfactual purchases).",
        "",
        agreement_table(results),
        "",
        "## Goals",
        "",
    ]
    for goal, verdict in results["goals"].items():
        detail = ", ".join(f"{k}: {v}" for k, v in verdict.items() if k != "met" and v != "")
        lines.append(f"- **{goal}**: {'met' if verdict['met'] else 'missed'} ({detail})")
    lines += ["", f"Wall time {results.get('wall_seconds', 0) / 60:.1f} minutes{phase_breakdown(results)}.", ""]
    return "\n".join(lines)


def plot(results: dict, path: str) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, axes = plt.subplots(1, 4, figsize=(22, 4.8))
    spans = [d[5:] for d in results["scored_spans"]]
    for name, series in results["series"].items():
        axes[0].plot(spans, [e["model_per_100"] for e in series["expected"]], "o-", label=name)
        axes[1].plot(spans, series["ndcg@10"], "o-", label=name)
        axes[2].plot(range(len(series["early_span"])), [100 * e["gap_share"] for e in series["early_span"]], "o-",
                     label=name)
    reference = results["series"]["static"]["expected"]
    axes[0].plot(spans, [e["legacy_per_100"] for e in reference], "k--", label="legacy order")
    axes[0].plot(spans, [e["oracle_per_100"] for e in reference], "k:", label="best possible order")
    axes[0].set_title("next span: expected purchases per 100 searches (exact)")
    axes[0].legend(fontsize=7)
    axes[1].set_title("logged next-span NDCG@10 (legacy-ordered pages)")
    axes[2].set_title("span 1's held-out searches: gap share % (forgetting)")
    axes[2].set_xlabel("update")
    names = [n for n, row in results["strategies"].items() if row["updates"]]
    axes[3].bar(names, [results["strategies"][n]["train_flops"] / 1e12 for n in names])
    axes[3].set_title("training TFLOP of the updates")
    axes[3].tick_params(axis="x", rotation=35, labelsize=7)
    fig.tight_layout()
    fig.savefig(path, dpi=100)
    plt.close(fig)


PHASE_NAMES = {"stream": "stream written", "first_model": "first model", "first_model_scoring": "its scoring",
               "updates": "updates"}


def phase_breakdown(results: dict) -> str:
    """" (stream written 12 s, first model 40 s, ...)": where a bench run's wall time went."""
    phases = results.get("phase_seconds") or {}
    parts = [f"{PHASE_NAMES.get(name, name)} {seconds:.0f} s" for name, seconds in phases.items()]
    return f" ({', '.join(parts)})" if parts else ""
