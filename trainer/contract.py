"""The ranker's request contract: what a client sends and what the exported model takes.

The exported `serving_default` signature (trainer/export.py) takes batched string columns
`query`, `title`, `brand`, `category`, `product_id` (and `user_id` for a model trained with user
features) and a float `price`, and returns `score`. A Predict request carries one search: the
query repeated once per candidate. Clients (`freshrank rank`, the demo, the benchmarks), the
warmup file written into every export and the model server's warmup replay all build requests
here, so the three cannot drift apart. The Trainer writes the warmup file; it needs nothing from
`serving/`.
"""
from __future__ import annotations

import os
from collections.abc import Sequence
from typing import Any

from trainer.config import PRICE_FEATURE, TEXT_FEATURES, USER_KEY

QUERY_INPUT = "query"
# A candidate's columns as the landing data has them; all but the price are string inputs.
CANDIDATE_COLUMNS = ("product_id", "title", "brand", "category", PRICE_FEATURE)
STRING_INPUTS = tuple(f for f in TEXT_FEATURES if f != QUERY_INPUT)
USER_INPUT = USER_KEY
SCORE_OUTPUT = "score"
# TF Serving replays this file when it loads a version (tensorflow/serving#385, #1414).
WARMUP_RELATIVE_PATH = os.path.join("assets.extra", "tf_serving_warmup_requests")


def build_predict_request(query: str, candidates: Sequence[dict], model_name: str,
                          signature: str = "serving_default", user_id: str | None = None) -> Any:
    """One PredictRequest scoring every candidate against the query (batch = candidates).

    `user_id`: who is searching, for models trained with user features (their signature takes a
    `user_id` input; other models refuse one).
    """
    import numpy as np
    import tensorflow as tf
    from tensorflow_serving.apis import predict_pb2

    request = predict_pb2.PredictRequest()
    request.model_spec.name = model_name
    request.model_spec.signature_name = signature
    count = len(candidates)
    request.inputs[QUERY_INPUT].CopyFrom(
        tf.make_tensor_proto([query.encode("utf-8")] * count, dtype=tf.string, shape=[count]))
    for column in STRING_INPUTS:
        values = [str(c[column]).encode("utf-8") for c in candidates]
        request.inputs[column].CopyFrom(
            tf.make_tensor_proto(values, dtype=tf.string, shape=[count]))
    if user_id is not None:
        request.inputs[USER_INPUT].CopyFrom(
            tf.make_tensor_proto([user_id.encode("utf-8")] * count, dtype=tf.string, shape=[count]))
    prices = np.asarray([float(c["price"]) for c in candidates], dtype=np.float32)
    request.inputs[PRICE_FEATURE].CopyFrom(tf.make_tensor_proto(prices, shape=[count]))
    return request

def write_warmup_requests(version_dir: str | os.PathLike, examples: list[dict],
                          model_name: str, signature: str = "serving_default", with_user: bool = False) -> str:
    """Writes `<version_dir>/assets.extra/tf_serving_warmup_requests` and returns its path.

    Each example is a dict with `query` plus the candidate columns. Two PredictLog records are
    written: one request with all examples (the shape `rank` sends) and one with the first
    example alone, so both batch shapes are warm. The file is written to a temporary name and
    renamed, so a server polling the directory never sees half of it; call this before the
    version's saved_model.pb is in place (the Pusher copies that file last).
    """
    import tensorflow as tf
    from tensorflow_serving.apis import prediction_log_pb2

    if not examples:
        raise ValueError("write_warmup_requests needs at least one example")
    for index, example in enumerate(examples):
        missing = [c for c in ("query", *CANDIDATE_COLUMNS) if c not in example]
        if missing:
            raise ValueError(f"warmup example {index} lacks {', '.join(missing)}")
    batches = [examples, examples[:1]] if len(examples) > 1 else [examples]
    path = os.path.join(os.fspath(version_dir), WARMUP_RELATIVE_PATH)
    os.makedirs(os.path.dirname(path), exist_ok=True)
    tmp_path = path + ".tmp"
    with tf.io.TFRecordWriter(tmp_path) as writer:
        for batch in batches:
            # One query per request, as `rank` sends; examples with other queries get their own.
            for query in dict.fromkeys(e["query"] for e in batch):
                same_query = [e for e in batch if e["query"] == query]
                log = prediction_log_pb2.PredictionLog()
                user = str(same_query[0].get(USER_INPUT, "")) if with_user else None
                log.predict_log.request.CopyFrom(
                    build_predict_request(query, same_query, model_name, signature, user_id=user))
                writer.write(log.SerializeToString())
    os.replace(tmp_path, path)
    return path
