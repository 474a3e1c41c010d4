"""Three simulated days, three `freshrank run`s: a warm-start chain proven from ML Metadata."""
from __future__ import annotations

import json
import os
import subprocess
import sys
import textwrap

import pytest
from ml_metadata import metadata_store
from ml_metadata.proto import metadata_store_pb2

from tests.helpers import FRESHRANK, REPO, serving_version, subprocess_env, write_candidates

pytestmark = pytest.mark.e2e
DAYS = ["2026-11-01", "2026-11-02", "2026-11-03"]


def _cli(*args: str, check: bool = True) -> subprocess.CompletedProcess:
    result = subprocess.run([*FRESHRANK, *args], capture_output=True, text=True, env=subprocess_env(),
                            cwd=REPO, timeout=900)
    if check and result.returncode != 0:
        raise AssertionError(f"freshrank {args} exited {result.returncode}:\n{result.stderr[-4000:]}")
    return result


@pytest.fixture(scope="module")
def chain(tmp_path_factory):
    root = tmp_path_factory.mktemp("chain")
    data, home = root / "data", root / "home"
    _cli("simulate", "--out", str(data), "--start", DAYS[0], "--days", "3", "--requests-per-day", "300")
    records = []
    for day in DAYS:
        # Blessing always passes here: this test is about the warm-start chain, and 300 searches
        # a day leave only ~12 purchases in a test split, too few for a stable AUC comparison.
        # One epoch: the chain (window, base model, push) does not depend on how well each day fits.
        result = _cli("run", "--data", str(data), "--home", str(home), "--span", day, "--epochs", "1",
                      "--min-auc", "0.0", "--bless-tolerance", "1000")
        records.append(json.loads(result.stdout.strip().splitlines()[-1]))
    return home, records


def test_each_day_pushes_and_warm_starts_from_the_previous_push(chain):
    home, records = chain
    first, second, third = records
    assert [r["span"] for r in records] == DAYS
    assert all(r["status"] == "pushed" and r["blessed"] for r in records), records
    assert first["warm_started_from"] is None
    assert second["warm_started_from"] == first["pushed_version"]
    assert third["warm_started_from"] == second["pushed_version"]
    assert first["window_spans"] == DAYS[:1]
    assert second["window_spans"] == DAYS[:2]
    assert third["window_spans"] == DAYS
    # The default update trains on the newest span alone (replay_fraction 0): older window spans
    # are listed (the examination curve is fitted on them) but not copied.
    assert second["train_examples"] > 0 and first["train_examples"] > 0
    assert third["train_examples"] < first["train_examples"] + second["train_examples"]
    for r in records:
        assert 0.0 <= r["metrics"]["auc"] <= 1.0 and 0.0 <= r["metrics"]["ndcg@10"] <= 1.0
        assert r["train_seconds"] > 0 and r["total_seconds"] >= r["train_seconds"]
    assert "baseline_auc" not in first["metrics"]
    assert "baseline_auc" in second["metrics"] and "baseline_ndcg@10" in third["metrics"]
    logged = [json.loads(line) for line in (home / "runs.jsonl").read_text().splitlines()]
    assert logged == records
    versions = sorted(int(v) for v in os.listdir(home / "serving" / "ranker"))
    assert versions == [r["pushed_version"] for r in records]


def test_ml_metadata_shows_trainer_inputs_form_the_chain(chain):
    """The Trainer of day N consumed, as base_model, the model the Pusher of day N-1 pushed."""
    home, records = chain
    config = metadata_store_pb2.ConnectionConfig()
    config.sqlite.filename_uri = str(home / "metadata.sqlite")
    store = metadata_store.MetadataStore(config)
    trainer_runs = sorted(store.get_executions_by_type("tfx.components.trainer.component.Trainer"),
                          key=lambda e: e.id)
    assert len(trainer_runs) == 3
    pushed_model_of_day = []
    for execution in trainer_runs:
        events = store.get_events_by_execution_ids([execution.id])
        base = [e.artifact_id for e in events
                if e.type == metadata_store_pb2.Event.INPUT and e.path.steps[0].key == "base_model"]
        out = [e.artifact_id for e in events
               if e.type == metadata_store_pb2.Event.OUTPUT and e.path.steps[0].key == "model"]
        pushed_model_of_day.append((base, out[0]))
    assert pushed_model_of_day[0][0] == []
    assert pushed_model_of_day[1][0] == [pushed_model_of_day[0][1]]
    assert pushed_model_of_day[2][0] == [pushed_model_of_day[1][1]]


def test_pushed_model_scores_chinese_and_english_queries_in_a_fresh_process(chain):
    home, records = chain
    version_dir = home / "serving" / "ranker" / str(records[-1]["pushed_version"])
    script = textwrap.dedent(f"""
        import os, json
        os.environ["TF_USE_LEGACY_KERAS"] = "1"
        import tensorflow as tf
        import tensorflow_text  # noqa: F401  (the tokenizer's ops)
        model = tf.saved_model.load({str(version_dir)!r})
        fn = model.signatures["serving_default"]
        out = fn(query=tf.constant(["跑步鞋 男", "wireless earbuds noise cancelling"]),
                 title=tf.constant(["Nike 耐克 跑鞋 running shoes 42码", "Sony 索尼 降噪 耳机 earbuds"]),
                 brand=tf.constant(["Nike", "Sony"]), category=tf.constant(["shoes", "headphones"]),
                 product_id=tf.constant(["p0000001", "p9999999"]), price=tf.constant([399.0, 1299.0]))
        print(json.dumps({{"score": out["score"].numpy().tolist(),
                          "inputs": sorted(fn.structured_input_signature[1])}}))
    """)
    result = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True,
                            env=subprocess_env(), timeout=300)
    assert result.returncode == 0, result.stderr[-3000:]
    out = json.loads(result.stdout.strip().splitlines()[-1])
    assert out["inputs"] == ["brand", "category", "price", "product_id", "query", "title"]
    assert len(out["score"]) == 2 and all(0.0 < s < 1.0 for s in out["score"])


def test_served_pushed_model_ranks_through_the_cli(chain, tmp_path):
    """The newest pushed version, served by freshrank-model-server, ranks via `freshrank rank`."""
    home, records = chain
    candidates = tmp_path / "candidates.csv"
    write_candidates(candidates)
    version = str(records[-1]["pushed_version"])
    with serving_version(home / "serving" / "ranker", tmp_path / "server.log", version) as port:
        result = _cli("rank", "--server", f"127.0.0.1:{port}", "--query", "跑步鞋 男",
                      "--candidates", str(candidates), "--top", "2")
        lines = result.stdout.strip().splitlines()
        assert lines[0].split()[:3] == ["rank", "score", "product_id"]
        assert len(lines) == 3  # header + top 2
        scores = [float(line.split()[1]) for line in lines[1:]]
        assert scores == sorted(scores, reverse=True) and all(0 < s < 1 for s in scores)
