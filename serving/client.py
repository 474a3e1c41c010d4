"""The ranking client (`freshrank rank`); requests are built by the model's contract (trainer/contract.py).

`rank()` sends ONE gRPC Predict carrying every candidate (the ranker's `serving_default`
signature takes batched `query`, `title`, `brand`, `category`, `product_id` strings and a float
`price`, and returns `score`) and returns the candidates best first. It works against
freshrank-model-server and against a real TF Serving alike: it only uses the official
tensorflow-serving-api stubs.

`write_warmup_requests()` (from the contract) writes `assets.extra/tf_serving_warmup_requests` (a
TFRecord of PredictionLog) into a version directory so TF Serving replays it at load time and the
first user request does not pay for graph initialisation (tensorflow/serving#385, #1414).
"""
from __future__ import annotations

import csv
import math
import os
from collections.abc import Iterable
from typing import Any

# The request contract lives with the model (trainer/contract.py); re-exported for clients.
from trainer.contract import (  # noqa: F401
    CANDIDATE_COLUMNS,
    SCORE_OUTPUT,
    STRING_INPUTS,
    USER_INPUT,
    WARMUP_RELATIVE_PATH,
    build_predict_request,
    write_warmup_requests,
)

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
