"""The demo report from per-day records: the table, the computed findings, the figure."""
from __future__ import annotations

import json

from freshrank.report import findings, read_days, write_report


def _expected(model, legacy, best, ci):
    return {"model_per_100": model, "legacy_per_100": legacy, "oracle_per_100": best,
            "gap_share": (model - legacy) / (best - legacy), "diff_per_100": model - legacy, "diff_ci": ci}


def _records() -> list[dict]:
    def day(span, auc, blessed, pushed, ranked_by, serving, buys, legacy, minutes, warm, expected):
        return {"span": span, "status": "pushed" if pushed else "not_blessed", "train_examples": 2800,
                "warm_started_from": warm, "auc": auc, "ndcg@10": 0.5, "baseline_auc": None,
                "blessed": blessed, "pushed_version": pushed, "ranked_by": ranked_by, "serving_now": serving,
                "searches": 400, "purchases_per_100": buys, "legacy_purchases_per_100": legacy,
                "run_minutes": 1.5, "minutes_to_available": minutes, "expected": expected}

    return [day("2026-11-01", 0.59, True, 100, None, 100, 26.0, 26.0, 2.0, None, None),
            day("2026-11-02", 0.61, False, None, 100, 100, 22.0, 27.0, None, 100,
                _expected(28.0, 26.0, 36.0, [0.5, 3.5])),
            day("2026-11-03", 0.69, True, 300, 100, 300, 24.0, 22.0, 3.0, 100,
                _expected(30.0, 27.0, 37.0, [-0.5, 6.5]))]


def test_report_files_from_records(tmp_path):
    records = _records()
    (tmp_path / "demo_days.jsonl").write_text("".join(json.dumps(r) + "\n" for r in records))
    md, png = write_report(str(tmp_path), read_days(str(tmp_path / "demo_days.jsonl")))
    text = open(md, encoding="utf-8").read()
    assert text.count("\n| 2026-11-") == 3
    assert ("| 2026-11-02 | 2800 | 100 | 0.610 | 0.500 | no | 100 | 100 | 28.0 | 26.0 | 36.0 | 20% | "
            "[+0.50, +3.50] | 22.0 | - |") in text
    with open(png, "rb") as f:
        assert f.read(8) == b"\x89PNG\r\n\x1a\n"


def test_findings_are_computed_from_the_days():
    lines = findings(_records())
    assert lines[0].startswith("2 of 3 updates were blessed and pushed; the served version changed 1 time(s)")
    assert "100 -> 100 -> 300" in lines[0]
    assert any("its order brings 29.0 expected purchases per 100 searches against 26.5 under the legacy ranking "
               "and 36.5 in the best possible order (more purchases): 25% of the gap on average; above legacy "
               "with the 95% interval excluding zero on 1 of 2 day(s)." in line for line in lines)
    assert any("Realised (sampled) purchases on those days: 23.0 per 100 searches against 24.5" in line
               for line in lines)
    assert any("2.0-3.0 minutes" in line for line in lines)


def test_freshness_plot_marks_the_not_blessed_day(tmp_path, monkeypatch):
    """Day 2 was not blessed: nothing became AVAILABLE, so its bar has no height; a red mark says why."""
    import matplotlib.colors
    from matplotlib.figure import Figure

    from freshrank.report import plot

    drawn = []
    savefig = Figure.savefig
    monkeypatch.setattr(Figure, "savefig", lambda fig, *a, **k: (drawn.append(fig), savefig(fig, *a, **k))[1])
    plot(_records(), str(tmp_path / "report.png"))
    ax = next(a for a in drawn[0].axes if a.get_title().startswith("minutes from span landing to AVAILABLE"))
    red = matplotlib.colors.to_rgba("tab:red")

    bars = ax.patches
    assert [b.get_height() for b in bars] == [2.0, 0.0, 3.0]  # blessed days keep their minutes
    assert [b.get_facecolor() for b in bars][::2] == [matplotlib.colors.to_rgba("tab:green")] * 2
    marks = [line for line in ax.get_lines() if matplotlib.colors.to_rgba(line.get_color()) == red]
    assert [list(line.get_xdata()) for line in marks] == [[1]]  # the not-blessed day, and only it
    assert marks[0].get_ydata()[0] > 0  # above the axis, not hidden under a bar of height 0
    labels = [t for t in ax.texts if t.get_text() == "not blessed"]
    assert len(labels) == 1 and labels[0].xy[0] == 1
    assert matplotlib.colors.to_rgba(labels[0].get_color()) == red


def test_an_hourly_demo_is_summarised_in_hours():
    from freshrank.report import summary_line

    hourly = [dict(r, span=f"2026-11-01T1{i}") for i, r in enumerate(_records()) if r["expected"]]
    assert summary_line(hourly).startswith("On the 2 hour(s) the served model ranked")
    assert summary_line(hourly).endswith("on 1 of 2 hour(s).")
