"""Exporting the ranker as a TF Serving SavedModel, and reading back what warm start needs.

Layout of every exported (and pushed) version:
  saved_model.pb, variables/, assets/vocab.txt      the servable
  assets.extra/freshrank/model.json                 config, price normalisation, training facts
  assets.extra/freshrank/ids/<feature>.txt          id vocabularies in embedding-row order
  assets.extra/tf_serving_warmup_requests           so a real TF Serving starts warm

Signatures: `serving_default` (raw batched tensors -> `score`), `regress` (serialized
tf.Example `inputs` -> `outputs`, for TFMA and TF Serving's Regress API) and `classify`
(`inputs` -> `scores`, `classes`, for TF Serving's Classify API).
"""
from __future__ import annotations

import dataclasses
import json
import os
from typing import Any

import numpy as np
import tensorflow as tf
import tf_keras as keras
from tensorflow.core.protobuf import saved_model_pb2

from trainer import vocab as vocab_lib
from trainer.config import ID_FEATURES, TrainConfig
from trainer.data import feature_spec
from trainer.model import Preprocessor, Vocabularies, raw_input_specs

FRESHRANK_DIR = os.path.join("assets.extra", "freshrank")
MODEL_INFO = "model.json"
REGRESS_METHOD = "tensorflow/serving/regress"
CLASSIFY_METHOD = "tensorflow/serving/classify"


class RankerServing(tf.Module):
    """The servable: the Keras ranker wrapped in the three signatures."""

    def __init__(self, preprocessor: Preprocessor, ranker: keras.Model):
        super().__init__()
        self.preprocessor = preprocessor
        self.ranker = ranker

    @tf.function(input_signature=[raw_input_specs()], autograph=False)
    def score(self, features):
        """Raw features -> purchase probability.

        One tf.function that the three signatures call: the tokenizer and the encoder are traced
        and stored once instead of once per signature, which makes every export (so every
        pipeline run) several seconds faster and the SavedModel smaller.
        """
        return tf.sigmoid(self.ranker(self.preprocessor(features), training=False)["purchase_logit"])

    @tf.function(input_signature=[raw_input_specs()], autograph=False)
    def serve(self, features):
        return {"score": self.score(features)}

    @tf.function(input_signature=[tf.TensorSpec([None], tf.string, name="inputs")], autograph=False)
    def regress(self, inputs):
        parsed = tf.io.parse_example(inputs, feature_spec(with_labels=False))
        return {"outputs": self.score(parsed)}

    @tf.function(input_signature=[tf.TensorSpec([None], tf.string, name="inputs")], autograph=False)
    def classify(self, inputs):
        score = self.score(tf.io.parse_example(inputs, feature_spec(with_labels=False)))
        scores = tf.stack([1.0 - score, score], axis=1)
        classes = tf.tile(tf.constant([["0", "1"]]), [tf.shape(score)[0], 1])
        return {"scores": scores, "classes": classes}


def _serve_kwargs(module: RankerServing):
    # `serve` takes one dict; TF Serving wants named top-level inputs, so bind them by name.
    @tf.function(input_signature=list(raw_input_specs().values()), autograph=False)
    def serve(query, title, brand, category, product_id, price):
        return module.serve(
            {"query": query, "title": title, "brand": brand, "category": category,
             "product_id": product_id, "price": price}
        )

    return serve


def export_ranker(
    preprocessor: Preprocessor,
    model: keras.Model,
    export_dir: str,
    config: TrainConfig,
    vocabs: Vocabularies,
    facts: dict[str, Any],
    warmup: list[dict] | None = None,
    model_name: str = "ranker",
) -> None:
    module = RankerServing(preprocessor, model)
    signatures = {
        "serving_default": _serve_kwargs(module),
        "regress": module.regress,
        "classify": module.classify,
    }
    tf.saved_model.save(module, export_dir, signatures=signatures)
    _set_method_names(export_dir, {"regress": REGRESS_METHOD, "classify": CLASSIFY_METHOD})
    info_dir = os.path.join(export_dir, FRESHRANK_DIR)
    for feature in ID_FEATURES:
        vocab_lib.write_lines(os.path.join(info_dir, "ids", f"{feature}.txt"), vocabs.ids[feature])
    info = {
        "train_config": dataclasses.asdict(config),
        "price_log_mean": vocabs.price_log_mean,
        "price_log_std": vocabs.price_log_std,
        "facts": facts,
    }
    with tf.io.gfile.GFile(os.path.join(info_dir, MODEL_INFO), "w") as f:
        f.write(json.dumps(info, indent=1, sort_keys=True, default=_jsonable))
    if warmup:
        # Replayed by TF Serving (and freshrank-model-server) at load: the first real request
        # does not pay for graph initialisation. Pushed along with the rest of the version.
        from serving.client import write_warmup_requests

        write_warmup_requests(export_dir, warmup, model_name=model_name)


def _jsonable(value: Any) -> Any:
    if isinstance(value, np.generic):
        return value.item()
    raise TypeError(f"cannot write {type(value).__name__} into model.json")


def _set_method_names(export_dir: str, methods: dict[str, str]) -> None:
    """tf.saved_model.save marks every signature 'predict'; TF Serving's Regress/Classify check it."""
    path = os.path.join(export_dir, "saved_model.pb")
    proto = saved_model_pb2.SavedModel()
    with tf.io.gfile.GFile(path, "rb") as f:
        proto.ParseFromString(f.read())
    for meta_graph in proto.meta_graphs:
        for name, method in methods.items():
            meta_graph.signature_def[name].method_name = method
    with tf.io.gfile.GFile(path, "wb") as f:
        f.write(proto.SerializeToString())


@dataclasses.dataclass
class BaseModel:
    """What a previous export hands to the next update."""

    path: str
    config: TrainConfig
    vocabs: Vocabularies
    facts: dict[str, Any]
    weights: dict[str, np.ndarray]


def load_base_model(path: str) -> BaseModel:
    info_path = os.path.join(path, FRESHRANK_DIR, MODEL_INFO)
    if not tf.io.gfile.exists(info_path):
        raise ValueError(
            f"base model {path} was not exported by freshrank (no {FRESHRANK_DIR}/{MODEL_INFO}); "
            "run with --from-scratch to start a new model"
        )
    with tf.io.gfile.GFile(info_path) as f:
        info = json.load(f)
    config = TrainConfig.from_dict(info["train_config"])
    vocab_path = os.path.join(path, "assets", "vocab.txt")
    wordpiece = vocab_lib.read_lines(vocab_path)
    ids = {
        feature: vocab_lib.read_lines(os.path.join(path, FRESHRANK_DIR, "ids", f"{feature}.txt"))
        for feature in ID_FEATURES
    }
    vocabs = Vocabularies(vocab_path, wordpiece, ids, info["price_log_mean"], info["price_log_std"])
    loaded = tf.saved_model.load(path)
    weights = {v.name: v.numpy() for v in loaded.ranker.variables}
    return BaseModel(path, config, vocabs, info.get("facts", {}), weights)
