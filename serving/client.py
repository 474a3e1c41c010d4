"""The ranking client (`freshrank rank`) and the warmup file the Pusher writes.

`rank()` sends ONE gRPC Predict carrying every candidate (the ranker's `serving_default`
signature takes batched `query`, `title`, `brand`, `category`, `product_id` strings and a float
`price`, and returns `score`) and returns the candidates best first. It works against
freshrank-model-server and against a real TF Serving alike: it only uses the official
tensorflow-serving-api stubs.

`write_warmup_requests()` writes `assets.extra/tf_serving_warmup_requests` (a TFRecord of
PredictionLog) into a version directory so TF Serving replays it at load time and the first
user request does not pay for graph initialisation (tensorflow/serving#385, #1414).
"""
from __future__ import annotations

import csv
import math
import os
from collections.abc import Iterable, Sequence
from typing import Any

CANDIDATE_COLUMNS = ("product_id", "title", "brand", "category", "price")
STRING_INPUTS = ("title", "brand", "category", "product_id")
USER_INPUT = "user_id"
SCORE_OUTPUT = "score"
WARMUP_RELATIVE_PATH = os.path.join("assets.extra", "tf_serving_warmup_requests")
MAX_MESSAGE_BYTES = 64 * 1024 * 1024


class RankError(RuntimeError):
    """The server could not rank the candidates; the message says why (gRPC code included)."""


def read_candidates_csv(path: str | os.PathLike) -> list[dict]:
    """Reads candidates with the landing data's columns; labels and extra columns are ignored.

    Raises ValueError naming a missing column, or the line number of a bad price.
    """
    path = os.fspath(path)
    with open(path, newline="", encoding="utf-8") as f:
        reader = csv.DictReader(f)
        if reader.fieldnames is None:
            raise ValueError(f"{path}: empty file; expected a header with columns "
                             f"{', '.join(CANDIDATE_COLUMNS)}")
        reader.fieldnames = [name.strip() for name in reader.fieldnames]
        missing = [c for c in CANDIDATE_COLUMNS if c not in reader.fieldnames]
        if missing:
            raise ValueError(f"{path}: missing required column(s): {', '.join(missing)} "
                             f"(found: {', '.join(reader.fieldnames)})")
        candidates = []
        for row in reader:
            line = reader.line_num
            absent = [c for c in CANDIDATE_COLUMNS if row.get(c) is None]
            if absent:
                raise ValueError(f"{path}:{line}: row has no value for {', '.join(absent)}")
            text = row["price"].strip()
            try:
                price = float(text)
            except ValueError:
                price = math.nan
            if not math.isfinite(price):
                raise ValueError(f"{path}:{line}: bad price {row['price']!r} "
                                 f"(product_id {row['product_id']!r}); expected a number")
            candidate = {c: row[c] for c in STRING_INPUTS}
            candidate["price"] = price
            candidates.append(candidate)
    return candidates


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
    request.inputs["query"].CopyFrom(
        tf.make_tensor_proto([query.encode("utf-8")] * count, dtype=tf.string, shape=[count]))
    for column in STRING_INPUTS:
        values = [str(c[column]).encode("utf-8") for c in candidates]
        request.inputs[column].CopyFrom(
            tf.make_tensor_proto(values, dtype=tf.string, shape=[count]))
    if user_id is not None:
        request.inputs[USER_INPUT].CopyFrom(
            tf.make_tensor_proto([user_id.encode("utf-8")] * count, dtype=tf.string, shape=[count]))
    prices = np.asarray([float(c["price"]) for c in candidates], dtype=np.float32)
    request.inputs["price"].CopyFrom(tf.make_tensor_proto(prices, shape=[count]))
    return request


def scores_from_response(response: Any, expected: int) -> list[float]:
    import tensorflow as tf

    outputs = response.outputs
    if SCORE_OUTPUT in outputs:
        proto = outputs[SCORE_OUTPUT]
    elif len(outputs) == 1:
        proto = next(iter(outputs.values()))
    else:
        raise RankError(f"response has no '{SCORE_OUTPUT}' output (got {sorted(outputs)})")
    scores = tf.make_ndarray(proto).reshape(-1).tolist()
    if len(scores) != expected:
        raise RankError(f"server returned {len(scores)} scores for {expected} candidates")
    return [float(s) for s in scores]


def rank(server: str, query: str, candidates: list[dict], model_name: str = "ranker",
         signature: str = "serving_default", timeout: float = 10.0,
         credentials: Any = None, user_id: str | None = None) -> list[tuple[dict, float]]:
    """Scores all candidates with one Predict call; returns (candidate, score), best first.

    `credentials` (grpc.ChannelCredentials) selects a TLS channel; ties keep input order.
    """
    if not candidates:
        return []
    import grpc
    from tensorflow_serving.apis import prediction_service_pb2_grpc

    request = build_predict_request(query, candidates, model_name, signature, user_id=user_id)
    options = [("grpc.max_send_message_length", MAX_MESSAGE_BYTES),
               ("grpc.max_receive_message_length", MAX_MESSAGE_BYTES)]
    channel = (grpc.secure_channel(server, credentials, options=options) if credentials
               else grpc.insecure_channel(server, options=options))
    with channel:
        stub = prediction_service_pb2_grpc.PredictionServiceStub(channel)
        try:
            response = stub.Predict(request, timeout=timeout)
        except grpc.RpcError as exc:
            raise RankError(f"Predict on {server} (model {model_name!r}) failed: "
                            f"{exc.code().name}: {exc.details()}") from exc
    scores = scores_from_response(response, len(candidates))
    ranked = list(zip(candidates, scores, strict=True))
    ranked.sort(key=lambda pair: -pair[1])
    return ranked


def format_ranking(ranked: Iterable[tuple[dict, float]], top: int | None = None) -> str:
    """A plain-text table: rank, score, product_id, brand, price, title."""
    rows = list(ranked)[: top if top is not None and top >= 0 else None]
    lines = [f"{'rank':>4}  {'score':>8}  {'product_id':<14} {'brand':<14} {'price':>9}  title"]
    for position, (candidate, score) in enumerate(rows, start=1):
        lines.append(
            f"{position:>4}  {score:8.5f}  {str(candidate['product_id']):<14} "
            f"{str(candidate['brand']):<14} {float(candidate['price']):9.2f}  "
            f"{candidate['title']}"
        )
    return "\n".join(lines)


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
