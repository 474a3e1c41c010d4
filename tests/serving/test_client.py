"""The ranking client against a real server, the candidates CSV reader and the warmup writer.

The served model has the production ranker's `serving_default` signature (query, title, brand,
category, product_id strings and a float price -> score) and uses a tensorflow_text op, so the
server's import of tensorflow_text is exercised too.
"""
from __future__ import annotations

import re

import pytest
import tensorflow as tf
from tensorflow_serving.apis import prediction_log_pb2

from serving import client

CSV = """product_id,title,brand,category,price,label,extra
p1,Red running shoes,Acme,shoes,59.90,1,x
p2,Shoe,Acme,shoes,10,0,y
p3,Lightweight waterproof trail running shoes for women,Peak,shoes,120.5,0,z
"""


@pytest.fixture(scope="module")
def candidates_file(tmp_path_factory):
    path = tmp_path_factory.mktemp("client") / "candidates.csv"
    path.write_text(CSV)
    return path


@pytest.fixture(scope="module")
def server(models, tmp_path_factory, helpers, candidates_file):
    base = tmp_path_factory.mktemp("ranker_base") / "ranker"
    version_dir = helpers.copy_version(models.ranker, base, 1)
    examples = [dict(c, query="running shoes")
                for c in client.read_candidates_csv(candidates_file)]
    client.write_warmup_requests(version_dir, examples, model_name="ranker")
    monitoring = base.parent / "monitoring.txt"
    monitoring.write_text(helpers.MONITORING_CONFIG)
    proc = helpers.start_module_server(tmp_path_factory, "client_log", [
        "--model_name=ranker", f"--model_base_path={base}",
        f"--monitoring_config_file={monitoring}"])
    yield proc
    proc.stop()


def test_read_candidates_csv_keeps_candidate_columns_and_parses_prices(candidates_file):
    candidates = client.read_candidates_csv(candidates_file)
    assert [c["product_id"] for c in candidates] == ["p1", "p2", "p3"]
    assert candidates[0] == {"product_id": "p1", "title": "Red running shoes", "brand": "Acme",
                             "category": "shoes", "price": 59.9}
    assert all(set(c) == set(client.CANDIDATE_COLUMNS) for c in candidates)


@pytest.mark.parametrize("text, message", [
    ("product_id,title,brand,price\np1,t,b,1\n", "missing required column(s): category"),
    ("product_id,title,brand,category,price\np1,t,b,c,1\np2,t,b,c,abc\n",
     ":3: bad price 'abc' (product_id 'p2')"),
    ("product_id,title,brand,category,price\np1,t,b,c,nan\n", ":2: bad price 'nan'"),
    ("product_id,title,brand,category,price\np1,t,b\n", ":2: row has no value for category"),
    ("", "empty file"),
])
def test_read_candidates_csv_errors_name_the_problem(tmp_path, text, message):
    path = tmp_path / "bad.csv"
    path.write_text(text)
    with pytest.raises(ValueError) as excinfo:
        client.read_candidates_csv(path)
    assert message in str(excinfo.value)
    assert str(path) in str(excinfo.value)


def test_rank_sends_one_request_and_returns_candidates_best_first(server, candidates_file,
                                                                  helpers):
    candidates = client.read_candidates_csv(candidates_file)
    before = predict_count(server, helpers)
    ranked = client.rank(server.grpc_address, "running shoes", candidates)
    assert [c["product_id"] for c, _ in ranked] == ["p3", "p1", "p2"]
    for candidate, score in ranked:
        expected = helpers.expected_rank_score("running shoes", candidate["title"],
                                               candidate["price"])
        assert score == pytest.approx(expected, rel=1e-5)
    assert predict_count(server, helpers) == before + 1
    table = client.format_ranking(ranked, top=2)
    assert table.splitlines()[1].split()[:3] == ["1", f"{ranked[0][1]:.5f}", "p3"]
    assert len(table.splitlines()) == 3


def predict_count(server, helpers) -> int:
    _, body = helpers.call_rest(f"{server.rest_url}/monitoring/prometheus/metrics")
    match = re.search(r':tensorflow:serving:request_count\{model_name="ranker",API="Predict",'
                      r'status="OK"\} (\d+)', body.decode())
    return int(match.group(1)) if match else 0


def test_rank_fifty_candidates(server, helpers):
    candidates = [{"product_id": f"id{i}", "title": "t" * i, "brand": "b", "category": "c",
                   "price": float(i)} for i in range(50)]
    ranked = client.rank(server.grpc_address, "a b", candidates)
    assert len(ranked) == 50
    scores = [s for _, s in ranked]
    assert scores == sorted(scores, reverse=True)
    assert ranked[0][0]["product_id"] == "id49"


def test_rank_errors_carry_the_grpc_code(server):
    candidates = [{"product_id": "a", "title": "t", "brand": "b", "category": "c",
                   "price": 1.0}]
    with pytest.raises(client.RankError, match="NOT_FOUND: Servable not found for request: "
                                               r"Latest\(nope\)"):
        client.rank(server.grpc_address, "q", candidates, model_name="nope")
    with pytest.raises(client.RankError, match="FAILED_PRECONDITION"):
        client.rank(server.grpc_address, "q", candidates, signature="regress")
    assert client.rank(server.grpc_address, "q", []) == []


def test_warmup_file_is_replayed_by_the_server(server, models, tmp_path):
    server.wait_for_log(r"ranker/1/assets.extra/tf_serving_warmup_requests. Number of warmup "
                        r"records read: 2\.")


def test_write_warmup_requests_format(tmp_path):
    examples = [{"query": "q1", "product_id": "a", "title": "t", "brand": "b",
                 "category": "c", "price": 2.5},
                {"query": "q2", "product_id": "b", "title": "u", "brand": "b",
                 "category": "c", "price": 3.0}]
    path = client.write_warmup_requests(tmp_path, examples, model_name="ranker")
    assert path == str(tmp_path / "assets.extra" / "tf_serving_warmup_requests")
    logs = []
    for record in tf.compat.v1.io.tf_record_iterator(path):
        log = prediction_log_pb2.PredictionLog()
        log.ParseFromString(record)
        logs.append(log.predict_log.request)
    # all examples (one request per query) + the first example alone
    assert [list(r.inputs["query"].string_val) for r in logs] == [[b"q1"], [b"q2"], [b"q1"]]
    assert all(r.model_spec.name == "ranker" for r in logs)
    assert list(logs[0].inputs["price"].float_val) == [2.5]
    with pytest.raises(ValueError, match="lacks query"):
        client.write_warmup_requests(tmp_path, [{"title": "t"}], model_name="ranker")
    with pytest.raises(ValueError, match="at least one example"):
        client.write_warmup_requests(tmp_path, [], model_name="ranker")
