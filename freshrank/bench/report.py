"""bench.json, bench.md and bench.png from the bench's results."""
from __future__ import annotations

import json
import math
import os

from freshrank.bench.strategies import STRATEGIES

COLUMNS = ("mean_expected_purchases_per_100", "mean_legacy_purchases_per_100", "mean_oracle_purchases_per_100",
           "mean_gap_share", "updates_above_legacy", "mean_ndcg@10", "last_ndcg@10", "mean_auc", "forgetting",
           "train_seconds", "train_examples", "blessed_updates")


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
        return "nan" if math.isnan(value) else f"{value:.4f}" if abs(value) < 100 else f"{value:.0f}"
    return str(value)


def table(results: dict) -> str:
    lines = ["| strategy | " + " | ".join(COLUMNS) + " |", "| --- |" + " ---: |" * len(COLUMNS)]
    for name in STRATEGIES:
        row = results["strategies"][name]
        lines.append(f"| {name} | " + " | ".join(_cell(row[c]) for c in COLUMNS) + " |")
    return "\n".join(lines)


def markdown(results: dict) -> str:
    s = results["settings"]
    first = results["first_model"]
    lines = [
        "# freshrank bench: does incremental updating pay?",
        "",
        f"Stream: {s['days']} spans, drift `{s['drift']}`, seed {s['seed']}, {s['requests_per_day']} searches/day; "
        f"window {s['window']} spans; from-scratch training {s['epochs']} epochs, warm-start updates "
        f"{s['warm_epochs']} epoch(s); replay fraction {s['replay_fraction']}, distillation weight "
        f"{s['distill_weight']}. Every strategy starts from the same first model (span 1; next-span NDCG@10 "
        f"{first['next_span_ndcg@10']:.4f}, AUC {first['next_span_auc']:.4f}).",
        "",
        "Progressive validation: the model trained through span t is scored on all of span t+1 before it sees "
        f"it; means are over the {len(results['scored_spans'])} updates (scored on {', '.join(results['scored_spans'])}). "
        "The headline is counterfactual and exact: *expected purchases per 100* searches of span t+1 with their "
        "pages in the model's order (the market's own probabilities, position bias included), next to the same "
        "pages in the legacy order and in the best possible order; *gap share* = (model - legacy) / (best - "
        "legacy); *updates above legacy*: updates whose paired bootstrap 95% interval of model - legacy excludes "
        "zero. Logged NDCG@10 (gain = purchased, per request_id) and AUC use the Evaluator's definitions on the "
        "logged pages, which the legacy ranking ordered, so they partly reward imitating it. "
        "Forgetting: NDCG@10 on span 1's test split of the first model minus the final model's (positive = "
        "forgot). Compute: `train_examples` = examples processed by the updates (epochs x steps x batch; the "
        "shared first model is not counted); FLOPs per example are the same for every strategy but partial "
        "mode, whose backward pass skips the frozen layers. `blessed_updates`: updates that pass the pipeline's "
        "blessing rule against the strategy's previous model, out of "
        f"{results['strategies']['full_retrain']['updates']}.",
        "",
        table(results),
        "",
        "## Goals",
        "",
    ]
    for goal, verdict in results["goals"].items():
        detail = ", ".join(f"{k}: {'yes' if v else 'no'}" for k, v in verdict["by"].items())
        note = f" ({verdict['note']})" if verdict.get("note") else ""
        lines.append(f"- **{goal}**: {'met' if verdict['met'] else 'missed'}{note} ({detail})")
    lines += ["", f"Wall time {results.get('wall_seconds', 0) / 60:.1f} minutes.", ""]
    return "\n".join(lines)


def plot(results: dict, path: str) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, axes = plt.subplots(1, 4, figsize=(20, 4.5))
    spans = [d[5:] for d in results["scored_spans"]]
    for name in STRATEGIES:
        series = results["series"][name]
        axes[3].plot(spans, [e["model_per_100"] for e in series["expected"]], "o-", label=name)
        axes[0].plot(spans, series["ndcg@10"], "o-", label=name)
        axes[1].plot(range(len(series["holdout_ndcg@10"])), series["holdout_ndcg@10"], "o-", label=name)
    reference = results["series"]["static"]["expected"]
    axes[3].plot(spans, [e["legacy_per_100"] for e in reference], "k--", label="legacy order")
    axes[3].plot(spans, [e["oracle_per_100"] for e in reference], "k:", label="best possible order")
    axes[3].set_title("next span: expected purchases per 100 searches (exact)")
    axes[3].legend(fontsize=7)
    axes[0].set_title("logged next-span NDCG@10 (progressive)")
    axes[0].set_xlabel("scored span")
    axes[1].set_title("NDCG@10 on span 1's holdout (forgetting)")
    axes[1].set_xlabel("update")
    names = list(STRATEGIES[1:])
    axes[2].bar(names, [results["strategies"][n]["train_examples"] for n in names])
    axes[2].set_title("examples processed by the updates")
    axes[2].tick_params(axis="x", rotation=30)
    axes[0].legend(fontsize=7)
    fig.tight_layout()
    fig.savefig(path, dpi=100)
    plt.close(fig)
