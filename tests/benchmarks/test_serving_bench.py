"""benchmarks/serving_bench.py's report: medians and spreads over rounds, and the overhead split.

The issue's goals are read off this report, so its arithmetic is checked on figures whose answer
is known: per round, overhead = server p50 - in-process p50 (the faster of the two in-process
callers), own = overhead - transport floor, and each figure is the median over rounds.
"""
from __future__ import annotations

import sys
from pathlib import Path

import pytest

sys.path.insert(0, str(Path(__file__).resolve().parents[2] / "benchmarks"))

import serving_bench as bench  # noqa: E402


def stats(p50: float, throughput: float = 100.0) -> bench.Stats:
    return bench.Stats("x", 1, int(throughput), 0, 1.0, p50, p50 * 2)


def results(rounds: list[dict[str, float]]) -> dict[str, list[bench.Stats]]:
    out: dict[str, list[bench.Stats]] = {}
    for figures in rounds:
        for name in ("rank50", "pair"):
            for key, column in (("inprocess", "1"), ("inprocess_cc", "1"), ("grpc_off", "1"),
                                ("floor", "1"), ("inprocess", bench.IDLE), ("grpc_off", bench.IDLE)):
                out.setdefault(f"{key}/{name}/{column}", []).append(
                    stats(figures.get(f"{key}/{column}", 1.0)))
            for key in ("inprocess", "grpc_off", "grpc_on"):
                for column in ("8", "32"):
                    out.setdefault(f"{key}/{name}/{column}", []).append(
                        stats(1.0, figures.get(f"{key}/{column}/rps", 100.0)))
                out.setdefault(f"grpc_on/{name}/1", []).append(stats(1.0))
                out.setdefault(f"grpc_on/{name}/{bench.IDLE}", []).append(stats(1.0))
        for name in ("rank50", "pair"):
            out[f"floor/{name}/hold"] = [stats(1.0)]
    return out


def swap(steady_p99: float, swapping_p99: float, failures: int = 0) -> bench.SwapResult:
    steady = bench.Stats("steady", 4, 100, 0, 1.0, 2.0, steady_p99)
    swapping = bench.Stats("swapping", 4, 100, 0, 1.0, 2.0, swapping_p99)
    return bench.SwapResult(failures, steady, swapping, [1000.0])


def test_goals_are_medians_of_per_round_splits_against_the_faster_in_process_caller(capsys):
    rounds = [
        # in-process on the servers' CPU is slow in round 1; the client-CPU caller is the reference
        {"inprocess/1": 9.0, "inprocess_cc/1": 2.0, "grpc_off/1": 3.0, "floor/1": 0.6,
         "grpc_on/32/rps": 300.0, "grpc_off/32/rps": 100.0},
        {"inprocess/1": 2.0, "inprocess_cc/1": 2.2, "grpc_off/1": 3.2, "floor/1": 0.7,
         "grpc_on/32/rps": 250.0, "grpc_off/32/rps": 100.0},
        {"inprocess/1": 2.1, "inprocess_cc/1": 2.5, "grpc_off/1": 3.5, "floor/1": 0.5,
         "grpc_on/32/rps": 150.0, "grpc_off/32/rps": 100.0},
    ]
    swaps = {"off": [swap(4.0, 5.0)], "on": [swap(4.0, 8.0)]}
    bench.report("default", results(rounds), swaps, "Test CPU, 2 CPUs")
    text = capsys.readouterr().out
    # own per round: 3.0-2.0-0.6 = 0.4, 3.2-2.0-0.7 = 0.5, 3.5-2.1-0.5 = 0.9 -> median 0.5
    assert "the server's own 0.50 ms (rounds 0.40-0.90) (goal <= 0.5 ms: met)" in text
    assert "gRPC overhead 1.20 ms (rounds 1.00-1.40)" in text
    assert "batching throughput ratio at 32 clients, pair: 2.50x (rounds 1.50-3.00)" in text
    assert "Test CPU, 2 CPUs" in text
    assert "in-process unbatched 100 req/s" in text
    # swaps: 5/4 = 1.25x is within 1.5x, 8/4 = 2x is not
    assert "batching off, 200 pairs/s from 4 clients, 1 x 3 swaps: p99 while swapping / " \
           "steady p99 = 1.25x (1 round) (goal <= 1.5x, no failure: met)" in text
    assert "steady p99 = 2.00x (1 round) (goal <= 1.5x, no failure: NOT met)" in text


def test_spread_names_the_lowest_and_highest_round():
    assert bench._spread([3.0, 1.0, 2.0]) == "2.00 ms (rounds 1.00-3.00)"
    assert bench._spread([1.5], "x") == "1.50x (1 round)"


@pytest.mark.parametrize("text, cpus", [("0", {0}), ("0-2,5", {0, 1, 2, 5})])
def test_parse_cpus(text, cpus):
    assert bench.parse_cpus(text) == frozenset(cpus)


def test_a_floor_slower_than_the_server_is_reported_as_not_measured(capsys):
    rounds = [{"inprocess/1": 5.0, "inprocess_cc/1": 6.0, "grpc_off/1": 3.0, "floor/1": 0.5}] * 3
    bench.report("default", results(rounds), {"off": [swap(4.0, 5.0)]}, "Test CPU")
    text = capsys.readouterr().out
    assert "(goal <= 0.5 ms: not measured: the in-process floor was slower than the server" in text
    assert ": met)" not in text.split("batching throughput")[0]


def test_each_client_sends_its_own_market_search():
    """Under load every client sends a different search, so that a batch is as wide as its
    longest pair, as under real traffic; the text is the generated market's."""
    requests = bench.bench_requests(4)
    pairs, pages = requests["pair"], requests["rank50"]
    assert len(pairs) == len(pages) == 4
    assert len({r.SerializeToString() for r in pairs}) == 4
    for request in pairs:
        assert request.inputs["title"].tensor_shape.dim[0].size == 1
    for request in pages:
        ids = request.inputs["product_id"].string_val
        assert len(ids) == 50 and len(set(ids)) == 50
    titles = [t.decode() for r in pages for t in r.inputs["title"].string_val]
    assert any(not t.isascii() for t in titles)  # the market's Chinese titles among them


def test_the_bench_ranker_scores_a_pair_alike_alone_and_beside_longer_pairs(tmp_path):
    """The bench's ranker pads a call to its longest pair, as trainer/text.py does: padding is
    masked, so a pair's score does not depend on the pairs it is batched with."""
    import numpy as np

    from serving import client
    from serving.servable import LoadOptions, Servable

    export = tmp_path / "ranker" / "1"
    bench.build_bert_ranker(export, bench.MODEL_SHAPES["default"])
    servable = Servable.load("ranker", 1, str(export), LoadOptions(enable_warmup=False))
    signature = servable.signature("serving_default")
    candidates = bench.make_candidates(50, seed=1)
    short = min(range(50), key=lambda i: len(candidates[i]["title"]))

    def scores(rows: list[dict]) -> np.ndarray:
        request = client.build_predict_request(bench.market_query(0), rows, "ranker")
        return servable.run_direct(*bench.session_call(signature, request))[0]

    try:
        np.testing.assert_allclose(scores(candidates)[short], scores([candidates[short]])[0],
                                   rtol=1e-5)
    finally:
        servable.close()
