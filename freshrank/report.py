"""The demo's report: `report.md` (a table per day and what it shows) and `report.png` (series).

Written from the per-day records alone (HOME/demo_days.jsonl), so a report can be redrawn
without rerunning anything.
"""
from __future__ import annotations

import json
import os
import statistics

MD_NAME, PNG_NAME = "report.md", "report.png"


def read_days(path: str) -> list[dict]:
    with open(path, encoding="utf-8") as f:
        return [json.loads(line) for line in f if line.strip()]


def write_report(home: str, records: list[dict]) -> tuple[str, str]:
    """Writes both files into `home`; returns their paths."""
    if not records:
        raise ValueError("no demo days to report; run `freshrank demo` first")
    md = os.path.join(home, MD_NAME)
    png = os.path.join(home, PNG_NAME)
    with open(md, "w", encoding="utf-8") as f:
        f.write(markdown(records))
    plot(records, png)
    return md, png


def _fmt(value, digits: int = 3) -> str:
    if value is None:
        return "-"
    return f"{value:.{digits}f}" if isinstance(value, float) else str(value)


def markdown(records: list[dict]) -> str:
    lines = [
        "# freshrank demo report",
        "",
        "One row per simulated day. *ranked by* is the served version that ordered that day's searches "
        "(legacy: the shop's old ranking, before any model); *buys/100* are the purchases per 100 of those "
        "searches, *legacy buys/100* the purchases the same searches bring under the legacy ranking (the "
        "simulated shoppers are deterministic, so this is exact). AUC and NDCG@10 are the Evaluator's, on "
        "the day's test split; *minutes* run from the span landing (`_SUCCESS`) to the server reporting the "
        "pushed version AVAILABLE.",
        "",
        "| span | train examples | warm start from | AUC | NDCG@10 | blessed | ranked by | serving after | "
        "buys/100 | legacy buys/100 | minutes to AVAILABLE |",
        "| --- | ---: | --- | ---: | ---: | --- | --- | --- | ---: | ---: | ---: |",
    ]
    for r in records:
        lines.append(
            f"| {r['span']} | {r['train_examples']} | {_fmt(r['warm_started_from'])} | {_fmt(r['auc'])} | "
            f"{_fmt(r['ndcg@10'])} | {'yes' if r['blessed'] else 'no'} | {r['ranked_by'] or 'legacy'} | "
            f"{_fmt(r['serving_now'])} | {_fmt(r['purchases_per_100'], 1)} | "
            f"{_fmt(r['legacy_purchases_per_100'], 1)} | {_fmt(r['minutes_to_available'], 2)} |")
    lines += ["", "## What it shows", ""] + [f"- {line}" for line in findings(records)] + [""]
    return "\n".join(lines)


def findings(records: list[dict]) -> list[str]:
    """Plain statements computed from the records (nothing here is hand-written per run)."""
    out = []
    served = [r["serving_now"] for r in records]
    changes = sum(1 for a, b in zip(served, served[1:], strict=False) if a != b)
    pushed = sum(1 for r in records if r["pushed_version"])
    out.append(f"{pushed} of {len(records)} updates were blessed and pushed; the served version changed "
               f"{changes} time(s) after day 1 ({' -> '.join(_fmt(v) for v in served)}).")
    chain = [r for r in records[1:] if r["warm_started_from"]]
    if chain:
        out.append(f"{len(chain)} of {len(records) - 1} later updates warm-started from the previously "
                   "pushed model instead of training from scratch.")
    model_days = [r for r in records if r["ranked_by"]]
    if model_days:
        ours = statistics.mean(r["purchases_per_100"] for r in model_days)
        legacy = statistics.mean(r["legacy_purchases_per_100"] for r in model_days)
        verdict = "more" if ours > legacy else "fewer" if ours < legacy else "as many"
        out.append(f"On the {len(model_days)} day(s) the served model ranked, shoppers bought {ours:.1f} times "
                   f"per 100 searches against {legacy:.1f} under the legacy ranking: {verdict} purchases.")
    minutes = [r["minutes_to_available"] for r in records if r["minutes_to_available"] is not None]
    if minutes:
        out.append(f"From a span landing to its model serving took {min(minutes):.1f}-{max(minutes):.1f} "
                   f"minutes (mean {statistics.mean(minutes):.1f}).")
    aucs = [r["auc"] for r in records if r["auc"] is not None]
    if aucs:
        out.append(f"Candidate AUC on each day's test split ranged {min(aucs):.3f}-{max(aucs):.3f}; "
                   "small days leave few purchases in a test split, so single-day figures are noisy.")
    return out


def plot(records: list[dict], path: str) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    days = [r["span"][5:] for r in records]
    x = list(range(len(records)))
    fig, axes = plt.subplots(2, 2, figsize=(11, 7))
    ax = axes[0][0]
    ax.plot(x, [_nan(r["auc"]) for r in records], "o-", label="AUC")
    ax.plot(x, [_nan(r["ndcg@10"]) for r in records], "s-", label="NDCG@10")
    ax.set_title("candidate quality (day's test split)")
    ax.legend()
    ax = axes[0][1]
    ax.plot(x, [r["purchases_per_100"] for r in records], "o-", label="as ranked (served model)")
    ax.plot(x, [r["legacy_purchases_per_100"] for r in records], "s--", label="legacy ranking")
    ax.set_title("purchases per 100 searches")
    ax.legend()
    ax = axes[1][0]
    ax.bar(x, [r["minutes_to_available"] or 0.0 for r in records],
           color=["tab:green" if r["blessed"] else "tab:red" for r in records])
    ax.set_title("minutes from span landing to AVAILABLE (red: not blessed)")
    ax = axes[1][1]
    ax.bar(x, [r["train_examples"] for r in records])
    ax.set_title("training examples (window)")
    for row in axes:
        for ax in row:
            ax.set_xticks(x)
            ax.set_xticklabels(days)
    fig.suptitle("freshrank demo: served version " + " -> ".join(_fmt(r["serving_now"]) for r in records),
                 fontsize=9)
    fig.tight_layout()
    fig.savefig(path, dpi=100)
    plt.close(fig)


def _nan(value):
    return float("nan") if value is None else value
