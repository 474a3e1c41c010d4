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
        "(legacy: the shop's old ranking, before any model). The headline is counterfactual and exact: the "
        "market knows every impression's purchase probability with its position bias, so *expected/100* is "
        "the expected purchases per 100 of the day's searches with their pages in the served model's order, "
        "*legacy* and *best* the same pages in the legacy order and in the best possible order; *gap share* "
        "is (model - legacy) / (best - legacy) and the interval is a paired bootstrap 95% interval over "
        "searches for model - legacy. *realised* are the purchases the shoppers actually made (they move by "
        "about +-2.5 per 100 from sampling alone). Logged AUC and NDCG@10 are the Evaluator's, on the day's "
        "test split, whose pages the serving model ordered: they partly reward imitating it. *minutes* run "
        "from the span landing (`_SUCCESS`) to the server reporting the pushed version AVAILABLE.",
        "",
        "| span | train examples | warm start from | logged AUC | logged NDCG@10 | blessed | ranked by | "
        "serving after | expected/100 | legacy | best | gap share | 95% CI model - legacy | realised/100 | "
        "minutes to AVAILABLE |",
        "| --- | ---: | --- | ---: | ---: | --- | --- | --- | ---: | ---: | ---: | ---: | --- | ---: | ---: |",
    ]
    for r in records:
        e = r.get("expected") or {}
        ci = e.get("diff_ci")
        lines.append(
            f"| {r['span']} | {r['train_examples']} | {_fmt(r['warm_started_from'])} | {_fmt(r['auc'])} | "
            f"{_fmt(r['ndcg@10'])} | {'yes' if r['blessed'] else 'no'} | {r['ranked_by'] or 'legacy'} | "
            f"{_fmt(r['serving_now'])} | {_fmt(e.get('model_per_100'), 1)} | {_fmt(e.get('legacy_per_100'), 1)} | "
            f"{_fmt(e.get('oracle_per_100'), 1)} | {_pct(e.get('gap_share'))} | "
            f"{f'[{ci[0]:+.2f}, {ci[1]:+.2f}]' if ci else '-'} | {_fmt(r['purchases_per_100'], 1)} | "
            f"{_fmt(r['minutes_to_available'], 2)} |")
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
    model_days = [r for r in records if r["ranked_by"] and r.get("expected")]
    if model_days:
        out.append(summary_line(model_days))
        ours = statistics.mean(r["purchases_per_100"] for r in model_days)
        legacy = statistics.mean(r["legacy_purchases_per_100"] for r in model_days)
        out.append(f"Realised (sampled) purchases on those days: {ours:.1f} per 100 searches against {legacy:.1f} "
                   "for the same searches under the legacy ranking; a day's sampling noise is about +-2.5.")
    minutes = [r["minutes_to_available"] for r in records if r["minutes_to_available"] is not None]
    if minutes:
        out.append(f"From a span landing to its model serving took {min(minutes):.1f}-{max(minutes):.1f} "
                   f"minutes (mean {statistics.mean(minutes):.1f}).")
    aucs = [r["auc"] for r in records if r["auc"] is not None]
    if aucs:
        out.append(f"Candidate AUC on each day's test split ranged {min(aucs):.3f}-{max(aucs):.3f}; "
                   "small days leave few purchases in a test split, so single-day figures are noisy.")
    return out


def summary_line(model_days: list[dict]) -> str:
    """The demo's verdict on the days a served model ranked, from the exact expectations."""
    e = [r["expected"] for r in model_days]
    ours = statistics.mean(x["model_per_100"] for x in e)
    legacy = statistics.mean(x["legacy_per_100"] for x in e)
    best = statistics.mean(x["oracle_per_100"] for x in e)
    share = statistics.mean(x["gap_share"] for x in e)
    above = sum(1 for x in e if x["diff_ci"][0] > 0)
    verdict = "more" if ours > legacy else "fewer" if ours < legacy else "as many"
    unit = "hour(s)" if "T" in str(model_days[0].get("span", "")) else "day(s)"  # 2026-11-01T13: an hourly demo
    return (f"On the {len(e)} {unit} the served model ranked, its order brings {ours:.1f} expected purchases per "
            f"100 searches against {legacy:.1f} under the legacy ranking and {best:.1f} in the best possible "
            f"order ({verdict} purchases): {100 * share:.0f}% of the gap on average; above legacy with the 95% "
            f"interval excluding zero on {above} of {len(e)} {unit}.")


def _pct(value) -> str:
    return "-" if value is None else f"{100 * value:.0f}%"


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
    ax.set_title("logged metrics (day's test split, pages the serving model ordered)", fontsize=9)
    ax.legend()
    ax = axes[0][1]
    expected = [r.get("expected") or {} for r in records]
    ax.plot(x, [_nan(e.get("oracle_per_100")) for e in expected], "^:", color="tab:gray", label="best possible order")
    ax.plot(x, [_nan(e.get("model_per_100")) for e in expected], "o-", color="tab:blue", label="served model")
    ax.plot(x, [_nan(e.get("legacy_per_100")) for e in expected], "s--", color="tab:orange", label="legacy ranking")
    ax.errorbar(x, [_nan(e.get("model_per_100")) for e in expected],
                yerr=[[_nan(e.get("diff_per_100")) - _nan((e.get("diff_ci") or [None])[0]) for e in expected],
                      [_nan((e.get("diff_ci") or [None, None])[1]) - _nan(e.get("diff_per_100")) for e in expected]],
                fmt="none", ecolor="tab:blue", capsize=3)
    ax.set_title("expected purchases per 100 searches (exact; bars: 95% CI of model - legacy)", fontsize=9)
    ax.legend(fontsize=8)
    ax = axes[1][0]
    minutes = [r["minutes_to_available"] for r in records]
    tallest = max([m for m in minutes if m is not None] or [1.0])
    ax.bar(x, [m if m is not None else 0.0 for m in minutes],
           color=["tab:green" if r["blessed"] else "tab:red" for r in records])
    for i, r in enumerate(records):
        if not r["blessed"]:  # nothing became AVAILABLE: mark the day, or the red bar has no height
            ax.plot(i, 0.05 * tallest, "x", color="tab:red", markersize=12, markeredgewidth=3)
            ax.annotate("not blessed", (i, 0.1 * tallest), ha="center", color="tab:red", fontsize=8)
    ax.set_title("minutes from span landing to AVAILABLE (red x: not blessed)")
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
