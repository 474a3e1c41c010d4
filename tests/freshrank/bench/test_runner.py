"""The bench end to end on a tiny stream with a tiny model: seven strategies, sane figures, three files."""
from __future__ import annotations

import json
import math

import pytest

from freshrank.bench.report import write_all
from freshrank.bench.runner import BenchSettings, probe_searches, run_bench
from freshrank.bench.strategies import STRATEGIES
from trainer.config import BertConfig, TrainConfig

pytestmark = pytest.mark.e2e
TINY = TrainConfig(bert=BertConfig(hidden_size=16, num_layers=2, num_heads=2, intermediate_size=32,
                                   max_seq_length=24),
                   id_embedding_dim=4, head_hidden_size=8, vocab_size=600, batch_size=32)


def test_tiny_bench_writes_all_seven_strategies(tmp_path):
    # Two processes, as `freshrank bench` runs by default: each rebuilds the first model from its
    # weights and sends its progress lines back.
    settings = BenchSettings(days=3, requests_per_day=80, epochs=1, warm_epochs=1, train=TINY, jobs=2)
    lines: list[str] = []
    results = run_bench(str(tmp_path), settings, say=lines.append, pair_with="warm_start")
    assert {line.split()[0] for line in lines if " through " in line} == set(STRATEGIES[1:])
    paths = write_all(str(tmp_path), results)
    loaded = json.loads(open(paths[0], encoding="utf-8").read())
    table = loaded["strategies"]
    assert sorted(table) == sorted(STRATEGIES)
    for name, row in table.items():
        assert set(row) >= {"mean_expected_purchases_per_100", "mean_gap_share", "mean_ndcg@10", "mean_auc",
                            "forgetting", "train_seconds", "train_examples", "train_flops", "blessed_updates"}, name
        assert 0.0 <= row["mean_ndcg@10"] <= 1.0 and 0.0 <= row["mean_auc"] <= 1.0, (name, row)
        assert 0 <= row["blessed_updates"] <= row["updates"]
        # The counterfactual headline: every strategy's order of the same next-span searches, exactly.
        assert row["mean_legacy_purchases_per_100"] < row["mean_oracle_purchases_per_100"], (name, row)
        assert row["mean_expected_purchases_per_100"] <= row["mean_oracle_purchases_per_100"] + 1e-9
        assert row["mean_gap_share"] == pytest.approx(
            (row["mean_expected_purchases_per_100"] - row["mean_legacy_purchases_per_100"])
            / (row["mean_oracle_purchases_per_100"] - row["mean_legacy_purchases_per_100"]), abs=1e-3)
    # Every strategy minus full retraining and minus the pair_with strategy, search by search.
    for reference in ("full_retrain", "warm_start"):
        assert table[reference][f"minus_{reference}"]["diff_per_100"] == 0.0
        for name, row in table.items():
            low, high = row[f"minus_{reference}"]["diff_ci"]
            assert low <= row[f"minus_{reference}"]["diff_per_100"] <= high, (name, reference)
    assert table["static"]["minus_warm_start"]["diff_per_100"] == pytest.approx(
        table["static"]["mean_expected_purchases_per_100"] - table["warm_start"]["mean_expected_purchases_per_100"],
        abs=0.02)
    legacy = {table[n]["mean_legacy_purchases_per_100"] for n in table}
    assert len(legacy) == 1, "every strategy is compared on the same pages"
    # Static never trains again and cannot forget; updating strategies did train.
    assert table["static"]["train_examples"] == 0
    assert table["static"]["forgetting"] == 0.0 or math.isnan(table["static"]["forgetting"])
    assert table["static"]["updates"] == 0
    for name in STRATEGIES[1:]:
        assert table[name]["updates"] == 1 and table[name]["train_examples"] > 0 and table[name]["train_seconds"] > 0
        assert table[name]["train_flops"] > 0
    # Compute is examples x FLOPs per example: equal for same-mode strategies on equal examples, and
    # partial mode's frozen lower encoder skips part of the backward pass.
    per_example = {n: table[n]["train_flops"] / table[n]["train_examples"] for n in STRATEGIES[1:]}
    assert per_example["warm_start"] == pytest.approx(per_example["full_retrain"])
    assert per_example["warm_start_partial"] < 0.9 * per_example["warm_start"]
    # pipeline_default is the trainer config's defaults: the newest span alone (no replay), two passes.
    assert table["pipeline_default"]["window_examples"] == table["warm_start"]["window_examples"]
    assert table["pipeline_default"]["train_examples"] == 2 * table["warm_start"]["train_examples"]
    # Forgetting and the blessing rules are measured counterfactually / against the truth.
    assert all(math.isfinite(table[n]["forgetting"]) for n in STRATEGIES[1:])
    # ... on span 1's day's probe searches, which no span logs and so no update trains on.
    early = loaded["first_model"]["early_span_expected"]
    assert early["searches"] == probe_searches(settings.requests_per_day) == 40
    assert all(s["early_span"][0] == early for s in loaded["series"].values())
    agreement = loaded["blessing_agreement"]
    assert set(agreement) == {"lift_ips", "lift_unweighted", "auc_ndcg_ips", "auc_ndcg_unweighted",
                              "lift_ips_held_out", "lift_unweighted_held_out"}
    assert loaded["blessing_rule"] == "lift_ips"  # the pipeline's default (--bless-pages test)
    decision = loaded["series"]["pipeline_default"]["decisions"][0]
    # The pipeline's rule, replayed from what the decision recorded: the AUC floor and the lift's z.
    lift = decision["ips_lift_estimate"]
    z = lift["per_100"] / lift["standard_error"] if lift["standard_error"] else 0.0
    assert decision["lift_ips"] == (decision["ips_metrics"]["new"]["candidate"]["auc"] >= settings.min_auc
                                    and z >= -settings.bless_tolerance)
    # The rule on the eval and test pages together (--bless-pages held-out): about twice the pages.
    wide = decision["ips_lift_estimate_held_out"]
    assert wide["pages"] > lift["pages"] and wide["pages"] == pytest.approx(2 * lift["pages"], rel=0.6)
    wide_z = wide["per_100"] / wide["standard_error"] if wide["standard_error"] else 0.0
    if wide_z < -settings.bless_tolerance:
        assert not decision["lift_ips_held_out"]
    assert table["pipeline_default"]["blessed_updates"] == int(decision["lift_ips"])
    assert isinstance(decision["truth_margin_per_100"], float) and decision["truth"] == (
        decision["truth_margin_per_100"] > 0)
    for rule in agreement.values():
        assert rule["updates"] == len(STRATEGIES) - 1 and 0.0 <= rule["agreement"] <= 1.0
        assert rule["blessed_better"] + rule["blessed_worse"] + rule["rejected_better"] + rule["rejected_worse"] \
            == rule["updates"]
    # Every update trains on the newest span's train pages and the previous span's held-out pages
    # (TrainConfig.reuse_holdout, as the pipeline does); replay adds a sample of the older span's
    # train pages, full retraining all of them.
    newest, older = loaded["spans"][1]["examples"], loaded["spans"][0]["examples"]
    assert loaded["settings"]["train"]["reuse_holdout"] is True
    assert table["warm_start"]["window_examples"] == newest["train"] + older["eval"] + older["test"]
    assert table["warm_start"]["window_examples"] < table["warm_start_replay"]["window_examples"] \
        < table["full_retrain"]["window_examples"]
    assert table["full_retrain"]["window_examples"] == newest["train"] + sum(older.values())
    # Every updating strategy was scored on the same unseen span as static.
    assert loaded["scored_spans"] == [loaded["spans"][2]["date"]]
    assert set(loaded["goals"]) == {"pipeline_default_matches_full_retrain_at_quarter_compute",
                                    "pipeline_default_5pct_above_static", "weighted_blessing_agrees_more"}
    report = open(paths[1], encoding="utf-8").read()
    assert "| pipeline_default |" in report and "mean_gap_share" in report and "agrees with the truth" in report
    with open(paths[2], "rb") as f:
        assert f.read(4) == b"\x89PNG"
    # Where the wall time went, phase by phase, adds up to (nearly) all of it; bench.md says so.
    phases = loaded["phase_seconds"]
    assert set(phases) == {"stream", "first_model", "first_model_scoring", "updates"}
    assert all(seconds >= 0 for seconds in phases.values()) and phases["updates"] > 0
    assert sum(phases.values()) <= loaded["wall_seconds"] <= sum(phases.values()) + 30
    assert "first model" in open(paths[1], encoding="utf-8").read()


def test_pairing_with_a_strategy_not_run_is_refused_before_any_training(tmp_path):
    settings = BenchSettings(days=3, requests_per_day=20, epochs=1, warm_epochs=1, train=TINY, jobs=1,
                             only=("full_retrain",))
    with pytest.raises(ValueError, match="pair_with 'warm_start' is not among the strategies to run"):
        run_bench(str(tmp_path), settings, say=lambda line: None, pair_with="warm_start")
    assert not (tmp_path / "models").exists() or not any((tmp_path / "models").iterdir())


def test_the_strategies_are_split_so_the_most_loaded_process_finishes_soonest():
    from freshrank.bench.runner import _split
    from freshrank.bench.strategies import Strategy

    costs = {"full": 60.0, "default": 26.0, "replay": 25.0, "warm": 22.0, "partial": 22.0, "distill": 22.0}
    strategies = [Strategy(name) for name in costs]
    groups = _split(strategies, 2, lambda s: costs[s.name])
    assert sorted(s.name for g in groups for s in g) == sorted(costs)
    # Largest first to the least loaded would give 82 and 95; the best split is 86 and 91.
    assert max(sum(costs[s.name] for s in g) for g in groups) == 91.0
    wide = _split(strategies, 8, lambda s: costs[s.name])  # more processes than strategies
    assert all(wide) and max(sum(costs[s.name] for s in g) for g in wide) == 60.0
    many = [Strategy(f"s{i}") for i in range(20)]  # too many to try every split: the greedy rule
    greedy = _split(many, 3, lambda s: 1.0)
    assert sorted(len(g) for g in greedy) == [6, 7, 7]


def test_a_workers_last_lines_are_said_even_when_its_result_overtakes_them():
    # A worker's result can reach the parent before its queue's feeder thread has written the last
    # progress lines (seen in CI: one strategy's "through" line missing). The parent waits for each
    # worker's end marker; before it comes, a non-blocking drain says what is there and goes on.
    import multiprocessing
    import threading
    import time

    from freshrank.bench.runner import _LAST_LINE, _say_lines

    lines = multiprocessing.get_context("spawn").Queue()
    said: list[str] = []
    assert _say_lines(lines, said.append, block=False) == 0 and said == []

    def late_worker():
        time.sleep(0.5)
        lines.put("warm_start through day 2")
        lines.put(_LAST_LINE)

    threading.Thread(target=late_worker).start()
    assert _say_lines(lines, said.append, block=False) == 0  # nothing yet: the drain does not wait
    assert _say_lines(lines, said.append, block=True) == 1
    assert said == ["warm_start through day 2"]
