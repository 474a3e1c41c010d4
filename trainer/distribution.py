"""Choosing the tf.distribute strategy from the config, the one switch between laptop and pod."""
from __future__ import annotations

import json
import os

import tensorflow as tf


def make_strategy(kind: str, tpu_address: str | None = None) -> tf.distribute.Strategy:
    if kind == "default":
        return tf.distribute.get_strategy()
    if kind == "mirrored":
        # All local GPUs; on a CPU-only host this is one replica.
        return tf.distribute.MirroredStrategy()
    if kind == "multi_worker":
        if "TF_CONFIG" not in os.environ:
            raise ValueError(
                "distribution 'multi_worker' needs TF_CONFIG (cluster and task) in the environment; "
                "see BUILD.md, or use --distribution default"
            )
        return tf.distribute.MultiWorkerMirroredStrategy()
    if kind == "tpu":
        resolver = tf.distribute.cluster_resolver.TPUClusterResolver(tpu=tpu_address or "")
        tf.config.experimental_connect_to_cluster(resolver)
        tf.tpu.experimental.initialize_tpu_system(resolver)
        return tf.distribute.TPUStrategy(resolver)
    raise ValueError(f"unknown distribution {kind!r}; use default, mirrored, multi_worker or tpu")


def is_chief() -> bool:
    """Only the chief writes the exported model; other workers write to scratch space."""
    tf_config = json.loads(os.environ.get("TF_CONFIG", "{}") or "{}")
    task = tf_config.get("task", {})
    kind, index = task.get("type"), task.get("index", 0)
    if not kind:
        return True
    if kind == "chief":
        return True
    has_chief = "chief" in tf_config.get("cluster", {})
    return kind == "worker" and index == 0 and not has_chief
