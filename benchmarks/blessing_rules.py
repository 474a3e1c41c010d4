"""Which blessing rule agrees with the truth? Every rule and threshold, on the decisions bench runs recorded.

A bench run (`freshrank bench`, `benchmarks/update_sweep.py`) records, for every update of every
strategy, what the logs said (AUC and NDCG@10 of candidate and serving model on the new span's test
split, weighted and unweighted; the paired purchase-lift estimate with its standard error) and the
truth the market knows (does the candidate order the next span better, and by how much). This
replays the decision rules over those records at several thresholds, without training anything:

- `auc_ndcg` (the rule before the purchase lift): AUC and NDCG@10 each no more than `tol` below
  the serving model's;
- `lift`: the estimated purchase difference no more than `z` standard errors below zero;
- `lift ... held out`: the same on the new span's eval and test pages together (recorded since
  2026-12-08; with older files only the decisions that have it are replayed);
- `always`: bless every candidate that clears the AUC floor.

    .venv/bin/python benchmarks/blessing_rules.py /tmp/sweep/*/bench.json [--strategy NAME] [--out table.md]
"""
from __future__ import annotations

import argparse
import json
import math

AUC_TOLERANCES = (0.0, 0.01, 0.02, 0.05)
LIFT_Z = (0.0, 0.5, 1.0, 1.5, 1.645, 2.0)
HELD_OUT = "_held_out"  # the estimate's key suffix for the eval and test pages together
MIN_AUC = 0.52


def decisions(paths: list[str], strategies: list[str] | None = None) -> list[dict]:
    """Every recorded decision in `paths`, or only those of the named strategies."""
    found = []
    for path in paths:
        with open(path) as f:
            bench = json.load(f)
        for name, series in bench["series"].items():
            if not strategies or name in strategies:
                found.extend(d for d in series["decisions"] if "ips_lift_estimate" in d)
    return found


def _auc_ndcg(d: dict, weighting: str, tol: float) -> bool:
    new = d[f"{weighting}_metrics"]["new"]
    c, s = new["candidate"], new["serving"]
    return c["auc"] >= MIN_AUC and c["auc"] >= s["auc"] - tol and c["ndcg@10"] >= s["ndcg@10"] - tol


def _lift(d: dict, weighting: str, z: float, pages: str = "") -> bool:
    estimate = d[f"{weighting}_lift_estimate{pages}"]
    se = estimate["standard_error"]
    score = estimate["per_100"] / se if se > 0 else (0.0 if estimate["per_100"] == 0 else math.copysign(
        math.inf, estimate["per_100"]))
    floor = d[f"{weighting}_metrics"]["new"]["candidate"]["auc"] >= MIN_AUC
    return floor and score >= -z


def rules() -> dict[str, callable]:
    table = {}
    for weighting, label in (("ips", "ips"), ("unweighted", "unweighted")):
        for tol in AUC_TOLERANCES:
            table[f"auc_ndcg {label} tol {tol}"] = lambda d, w=weighting, t=tol: _auc_ndcg(d, w, t)
        for z in LIFT_Z:
            table[f"lift {label} z {z}"] = lambda d, w=weighting, z=z: _lift(d, w, z)
            table[f"lift {label} z {z} held out"] = lambda d, w=weighting, z=z: _lift(d, w, z, HELD_OUT)
    table["always (AUC floor only)"] = lambda d: d["ips_metrics"]["new"]["candidate"]["auc"] >= MIN_AUC
    return table


def score(found: list[dict]) -> list[dict]:
    rows = []
    held_out = all(f"ips_lift_estimate{HELD_OUT}" in d for d in found)
    for name, rule in rules().items():
        if name.endswith("held out") and not held_out:
            continue
        picks = [(rule(d), d) for d in found]
        right = sum(p == d["truth"] for p, d in picks)
        margins = [d.get("truth_margin_per_100") for _, d in picks]
        # Purchases per 100 searches the decisions gave up against a rule that knew the truth.
        lost = (sum(abs(m) for (p, d), m in zip(picks, margins, strict=True) if p != d["truth"])
                if all(m is not None for m in margins) else math.nan)
        rows.append({"rule": name, "agreement": right / len(found) if found else math.nan,
                     "blessed": sum(p for p, _ in picks),
                     "rejected_better": sum(not p and d["truth"] for p, d in picks),
                     "blessed_worse": sum(p and not d["truth"] for p, d in picks),
                     "lost_per_100_per_update": lost / len(found) if found else math.nan})
    return rows


def markdown(rows: list[dict], updates: int, truth_better: int) -> str:
    lines = [f"{updates} updates; the candidate was truly better in {truth_better}.", "",
             "| rule | agrees with the truth | blessed | rejected better | blessed worse "
             "| purchases/100 lost per update |", "|---|---:|---:|---:|---:|---:|"]
    for r in rows:
        lines.append(f"| {r['rule']} | {100 * r['agreement']:.0f}% | {r['blessed']} | {r['rejected_better']} "
                     f"| {r['blessed_worse']} | {r['lost_per_100_per_update']:.3f} |")
    return "\n".join(lines)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("bench_json", nargs="+")
    parser.add_argument("--out")
    parser.add_argument("--strategy", action="append",
                        help="only this strategy's decisions (repeatable; default: all); a sweep's two "
                             "variants that differ only in their blessing decide the same updates twice")
    args = parser.parse_args()
    found = decisions(args.bench_json, args.strategy)
    with_held_out = [d for d in found if f"ips_lift_estimate{HELD_OUT}" in d]
    if with_held_out and len(with_held_out) < len(found):
        print(f"{len(found) - len(with_held_out)} decisions predate the held-out estimate: replaying the "
              f"{len(with_held_out)} that have it")
        found = with_held_out
    if not found:
        raise SystemExit("no decisions with a purchase-lift estimate in these files (run the bench again)")
    text = markdown(score(found), len(found), sum(d["truth"] for d in found))
    if args.out:
        with open(args.out, "w") as f:
            f.write(text + "\n")
    print(text)


if __name__ == "__main__":
    main()
