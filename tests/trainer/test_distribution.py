"""tf.distribute: a real two-worker MultiWorkerMirroredStrategy run on CPU, and the strategy switch.

Two subprocesses play the two machines of a cluster: each gets its own TF_CONFIG (both workers on
localhost ports), runs `trainer.task.train` on the same tiny window and joins the other in
collective all-reduces every step. Worker 0 is the chief and owns the export; worker 1 must take
part in the whole run (a collective needs both) and still write nothing to the serving directory.
"""
from __future__ import annotations

import json
import os
import socket
import subprocess
import sys
import textwrap

import pytest
import tensorflow as tf

from tests.helpers import write_examples
from trainer.distribution import is_chief, make_strategy

REPO = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
WORKER_TIMEOUT_S = 420  # a hung collective must fail the test, not hang the suite

WORKER = textwrap.dedent(
    """
    import json, sys
    from trainer.config import TrainConfig
    from trainer.task import train

    args = json.loads(sys.argv[1])
    config = TrainConfig.from_dict(args["config"])
    facts = train(config, [args["train"]], [args["eval"]], args["serving"], args["logs"], base_model=None)
    print("FACTS " + json.dumps({k: facts[k] for k in ("examples_processed", "epochs_run", "val_auc")}))
    """
)


def _free_ports(n: int) -> list[int]:
    sockets = [socket.socket() for _ in range(n)]
    try:
        for s in sockets:
            s.bind(("localhost", 0))
        return [s.getsockname()[1] for s in sockets]
    finally:
        for s in sockets:
            s.close()


def _env(tf_config: dict) -> dict[str, str]:
    env = dict(os.environ)
    env.update(
        PYTHONPATH=REPO + os.pathsep + env.get("PYTHONPATH", ""),
        TF_USE_LEGACY_KERAS="1", TF_CPP_MIN_LOG_LEVEL="2", PYTHONWARNINGS="ignore",
        TF_CONFIG=json.dumps(tf_config), CUDA_VISIBLE_DEVICES="",
        # Two workers share this host's cores: keep each from spawning a thread per core.
        TF_NUM_INTRAOP_THREADS="1", TF_NUM_INTEROP_THREADS="2",
    )
    return env


@pytest.fixture(scope="module")
def two_worker_run(tmp_path_factory):
    tmp = tmp_path_factory.mktemp("multi_worker")
    write_examples(str(tmp / "data" / "Split-train" / "data_tfrecord-00000-of-00001.gz"), 96, seed=0)
    write_examples(str(tmp / "data" / "Split-eval" / "data_tfrecord-00000-of-00001.gz"), 32, seed=1)
    config = {
        "distribution": "multi_worker", "epochs": 1, "steps_per_epoch": 3, "batch_size": 8,
        "vocab_size": 200, "bert": {"hidden_size": 16, "num_layers": 1, "num_heads": 2,
                                    "intermediate_size": 32, "max_seq_length": 16},
    }
    cluster = {"worker": [f"localhost:{port}" for port in _free_ports(2)]}
    serving = tmp / "serving"
    procs = []
    for index in range(2):
        # In a real cluster every worker gets the same serving dir; here the non-chief gets its
        # own, so that anything it wrote there would be its doing and visible.
        args = {
            "config": config, "train": str(tmp / "data" / "Split-train" / "*"),
            "eval": str(tmp / "data" / "Split-eval" / "*"), "logs": str(tmp / f"logs-{index}"),
            "serving": str(serving if index == 0 else tmp / "serving-non-chief"),
        }
        scratch = tmp / f"tmp-{index}"
        scratch.mkdir()
        procs.append(subprocess.Popen(
            [sys.executable, "-c", WORKER, json.dumps(args)], cwd=str(tmp),
            env=dict(_env({"cluster": cluster, "task": {"type": "worker", "index": index}}), TMPDIR=str(scratch)),
            stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True,
        ))
    outputs = []
    try:
        for proc in procs:
            outputs.append(proc.communicate(timeout=WORKER_TIMEOUT_S)[0])
    finally:
        for proc in procs:
            if proc.poll() is None:
                proc.kill()
                proc.wait()
    return tmp, serving, procs, outputs


def test_both_workers_finish(two_worker_run):
    _, _, procs, outputs = two_worker_run
    for index, (proc, out) in enumerate(zip(procs, outputs, strict=True)):
        assert proc.returncode == 0, f"worker {index} exited {proc.returncode}:\n{out[-4000:]}"
    facts = [json.loads(out.split("FACTS ", 1)[1].splitlines()[0]) for out in outputs]
    # The same global steps on both: 3 steps of a global batch of whole pages (batch size 8 over
    # pages of 5 rows and two replicas: 2 pages, one per worker), 3 x 2 x 5 rows.
    assert facts[0]["examples_processed"] == facts[1]["examples_processed"] == 30
    assert facts[0]["epochs_run"] == facts[1]["epochs_run"] == 1


def test_chief_export_loads_and_scores(two_worker_run):
    import tensorflow_text  # noqa: F401  registers the tokenizer's ops for loading

    _, serving, _, _ = two_worker_run
    loaded = tf.saved_model.load(str(serving))
    score = loaded.signatures["serving_default"](
        query=tf.constant(["跑鞋 男", "xiaomi 5g"]), title=tf.constant(["跑 鞋 男 run", "Xiaomi 5g phone"]),
        brand=tf.constant(["nike", "xiaomi"]), category=tf.constant(["shoes", "phones"]),
        product_id=tf.constant(["p3", "p1"]), price=tf.constant([99.0, 1999.0]),
    )["score"].numpy()
    assert score.shape == (2,) and ((score > 0) & (score < 1)).all()
    info = json.load(open(serving / "assets.extra" / "freshrank" / "model.json"))
    assert info["train_config"]["distribution"] == "multi_worker"


def test_non_chief_writes_nothing_under_the_serving_dir(two_worker_run):
    tmp, serving, _, _ = two_worker_run
    assert (serving / "saved_model.pb").exists() and (serving / "assets" / "vocab.txt").exists()
    assert not (tmp / "serving-non-chief").exists()
    # Its throw-away export went to scratch space and was removed again.
    assert not [p.name for p in (tmp / "tmp-1").iterdir() if p.name.startswith("freshrank-worker-")]
    # Nothing appeared elsewhere either (the workers' cwd is tmp).
    assert sorted(p.name for p in tmp.iterdir()) == ["data", "logs-0", "logs-1", "serving", "tmp-0", "tmp-1"]
    # Only the chief records the run's hparams and facts (the log dir is shared in a real cluster).
    assert (tmp / "logs-0" / "facts.json").exists()
    assert not (tmp / "logs-1" / "facts.json").exists()


def test_default_strategy_is_the_one_in_scope(monkeypatch):
    monkeypatch.delenv("TF_CONFIG", raising=False)
    strategy = make_strategy("default")
    assert strategy is tf.distribute.get_strategy()
    assert strategy.num_replicas_in_sync == 1
    assert is_chief()


def test_multi_worker_without_tf_config_says_what_is_missing(monkeypatch):
    monkeypatch.delenv("TF_CONFIG", raising=False)
    with pytest.raises(ValueError, match=r"'multi_worker' needs TF_CONFIG.*--distribution default"):
        make_strategy("multi_worker")


def test_unknown_strategy_is_refused():
    with pytest.raises(ValueError, match="unknown distribution 'gpu'"):
        make_strategy("gpu")


@pytest.mark.parametrize(
    "tf_config, chief",
    [
        ({"cluster": {"worker": ["a:1", "b:2"]}, "task": {"type": "worker", "index": 0}}, True),
        ({"cluster": {"worker": ["a:1", "b:2"]}, "task": {"type": "worker", "index": 1}}, False),
        ({"cluster": {"chief": ["c:0"], "worker": ["a:1"]}, "task": {"type": "worker", "index": 0}}, False),
        ({"cluster": {"chief": ["c:0"], "worker": ["a:1"]}, "task": {"type": "chief", "index": 0}}, True),
    ],
)
def test_chief_is_the_chief_task_or_worker_zero(monkeypatch, tf_config, chief):
    monkeypatch.setenv("TF_CONFIG", json.dumps(tf_config))
    assert is_chief() is chief
