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
from tensorflow.core.protobuf import saved_model_pb2, trackable_object_graph_pb2
from tf_keras.src.saving.legacy.saved_model.utils import keras_option_scope

from trainer import vocab as vocab_lib
from trainer.config import LEGACY_MODEL_SETTINGS, PRICE_FEATURE, TrainConfig
from trainer.data import feature_spec
from trainer.model import Preprocessor, Vocabularies, purchase_probability, raw_input_specs

FRESHRANK_DIR = os.path.join("assets.extra", "freshrank")
MODEL_INFO = "model.json"
REGRESS_METHOD = "tensorflow/serving/regress"
CLASSIFY_METHOD = "tensorflow/serving/classify"


class RankerServing(tf.Module):
    """The servable: the Keras ranker wrapped in the three signatures.

    The position tower rides along as a tracked attribute so its weights are saved for the next
    warm start; no signature calls it, so serving has no position input.
    """

    def __init__(self, preprocessor: Preprocessor, ranker: keras.Model, config: TrainConfig,
                 tower: keras.Model | None = None):
        super().__init__()
        self.preprocessor = preprocessor
        self.ranker = ranker
        self._config = config
        if tower is not None:
            self.position_tower = tower

    @tf.function(autograph=False)
    def score(self, features):
        """Raw features -> purchase probability.

        One tf.function that the three signatures call: the tokenizer and the encoder are traced
        and stored once instead of once per signature, which makes every export (so every
        pipeline run) several seconds faster and the SavedModel smaller.
        """
        return purchase_probability(self.ranker(self.preprocessor(features), training=False), self._config)

    def _parse(self, serialized):
        return tf.io.parse_example(serialized, feature_spec(with_labels=False, user=self._config.user_features))

    @tf.function(input_signature=[tf.TensorSpec([None], tf.string, name="inputs")], autograph=False)
    def regress(self, inputs):
        return {"outputs": self.score(self._parse(inputs))}

    @tf.function(input_signature=[tf.TensorSpec([None], tf.string, name="inputs")], autograph=False)
    def classify(self, inputs):
        score = self.score(self._parse(inputs))
        scores = tf.stack([1.0 - score, score], axis=1)
        classes = tf.tile(tf.constant([["0", "1"]]), [tf.shape(score)[0], 1])
        return {"scores": scores, "classes": classes}


def _serve_kwargs(module: RankerServing, config: TrainConfig):
    """`serving_default`: TF Serving wants named top-level inputs, so they are bound by name.

    A model with user features also takes `user_id`; no model takes a position.
    """
    specs = list(raw_input_specs(config).values())
    if config.user_features:
        @tf.function(input_signature=specs, autograph=False)
        def serve_with_user(query, title, brand, category, product_id, user_id, price):
            return {"score": module.score({"query": query, "title": title, "brand": brand, "category": category,
                                           "product_id": product_id, "user_id": user_id, "price": price})}

        return serve_with_user

    @tf.function(input_signature=specs, autograph=False)
    def serve(query, title, brand, category, product_id, price):
        return {"score": module.score({"query": query, "title": title, "brand": brand, "category": category,
                                       "product_id": product_id, "price": price})}

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
    tower: keras.Model | None = None,
) -> None:
    module = RankerServing(preprocessor, model, config, tower)
    signatures = {
        "serving_default": _serve_kwargs(module, config),
        "regress": module.regress,
        "classify": module.classify,
    }
    # Only the signatures are the servable's contract: without Keras' per-layer traces
    # (`keras_api` call functions, traced layer by layer for tf_keras' own loader, which never
    # loads this module-rooted SavedModel) the export takes a fraction of the time, and the
    # Evaluator, the model server and the next warm start load a smaller graph.
    with keras_option_scope(save_traces=False):
        tf.saved_model.save(module, export_dir, signatures=signatures)
    _set_method_names(export_dir, {"regress": REGRESS_METHOD, "classify": CLASSIFY_METHOD})
    info_dir = os.path.join(export_dir, FRESHRANK_DIR)
    for feature in config.id_features():
        vocab_lib.write_lines(os.path.join(info_dir, "ids", f"{feature}.txt"), vocabs.ids[feature])
    info = {
        "train_config": dataclasses.asdict(config),
        "price_log_mean": vocabs.price_log_mean,
        "price_log_std": vocabs.price_log_std,
        "category_log_price": vocabs.category_log_price,
        "facts": facts,
    }
    with tf.io.gfile.GFile(os.path.join(info_dir, MODEL_INFO), "w") as f:
        f.write(json.dumps(info, indent=1, sort_keys=True, default=_jsonable))
    if warmup:
        # Replayed by TF Serving (and freshrank-model-server) at load: the first real request
        # does not pay for graph initialisation. Pushed along with the rest of the version.
        from trainer.contract import write_warmup_requests

        write_warmup_requests(export_dir, warmup, model_name=model_name, with_user=config.user_features)


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
    """What a previous model hands to the next update: read from an export, or still in memory."""

    path: str | None  # None: handed over in memory (`trainer.task.Trained.as_base`)
    config: TrainConfig
    vocabs: Vocabularies
    facts: dict[str, Any]
    weights: dict[str, np.ndarray]
    teacher: Any = None  # raw feature dict -> served score, for distillation

    def teacher_fn(self):
        """The base model's served score as a function of a raw feature dict (loaded on first use)."""
        if self.teacher is None:
            loaded = tf.saved_model.load(self.path)
            serve = loaded.signatures["serving_default"]
            inputs = self.config.string_inputs()

            def teacher(features):
                return serve(**{k: features[k] for k in (*inputs, PRICE_FEATURE)})["score"]

            teacher.loaded = loaded  # its variables must outlive the function
            self.teacher = teacher
        return self.teacher


def load_base_model(path: str) -> BaseModel:
    info_path = os.path.join(path, FRESHRANK_DIR, MODEL_INFO)
    if not tf.io.gfile.exists(info_path):
        raise ValueError(
            f"base model {path} was not exported by freshrank (no {FRESHRANK_DIR}/{MODEL_INFO}); "
            "run with --from-scratch to start a new model"
        )
    with tf.io.gfile.GFile(info_path) as f:
        info = json.load(f)
    # A model exported before a setting existed was built as that setting's legacy value.
    config = TrainConfig.from_dict({**LEGACY_MODEL_SETTINGS, **info["train_config"]})
    vocab_path = os.path.join(path, "assets", "vocab.txt")
    wordpiece = vocab_lib.read_lines(vocab_path)
    ids = {
        feature: vocab_lib.read_lines(os.path.join(path, FRESHRANK_DIR, "ids", f"{feature}.txt"))
        for feature in config.id_features()
    }
    vocabs = Vocabularies(vocab_path, wordpiece, ids, info["price_log_mean"], info["price_log_std"],
                          info.get("category_log_price", {}))
    return BaseModel(path, config, vocabs, info.get("facts", {}), read_weights(path))


def read_weights(path: str, children: tuple[str, ...] = ("ranker", "position_tower")) -> dict[str, np.ndarray]:
    """Variable name -> value of every variable under the export's `children`, read from its checkpoint.

    What `tf.saved_model.load(path).ranker.variables` gives, without loading the SavedModel:
    restoring its functions and their tensorflow_text ops cost seconds of every warm start. The
    object graph in saved_model.pb names each variable; the checkpoint's object graph, node for
    node the same, says under which key its value is stored.
    """
    saved_model = saved_model_pb2.SavedModel()
    with tf.io.gfile.GFile(os.path.join(path, "saved_model.pb"), "rb") as f:
        saved_model.ParseFromString(f.read())
    nodes = saved_model.meta_graphs[0].object_graph_def.nodes
    reader = tf.train.load_checkpoint(os.path.join(path, "variables", "variables"))
    checkpoint_graph = trackable_object_graph_pb2.TrackableObjectGraph()
    checkpoint_graph.ParseFromString(reader.get_tensor("_CHECKPOINTABLE_OBJECT_GRAPH"))
    stack = [c.node_id for c in nodes[0].children if c.local_name in children]
    seen: set[int] = set()
    weights: dict[str, np.ndarray] = {}
    while stack:
        node_id = stack.pop()
        if node_id in seen:
            continue
        seen.add(node_id)
        node = nodes[node_id]
        stack.extend(c.node_id for c in node.children)
        if node.WhichOneof("kind") != "variable":
            continue
        keys = [a.checkpoint_key for a in checkpoint_graph.nodes[node_id].attributes if a.name == "VARIABLE_VALUE"]
        if not keys:
            raise ValueError(f"base model {path}: variable {node.variable.name} has no value in its checkpoint")
        weights[f"{node.variable.name}:0"] = reader.get_tensor(keys[0])
    if not weights:
        raise ValueError(f"base model {path} holds no ranker weights; run with --from-scratch to start a new model")
    return weights
