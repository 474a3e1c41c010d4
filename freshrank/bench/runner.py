"""The bench's replay: one drifting stream, every strategy, progressive validation.

For spans 1..T: all strategies share the first model (span 1, from scratch). At each later span
t < T every updating strategy trains its model through span t with `trainer.task.train` (the
pipeline Trainer's own function; windows assembled by SpanWindow's `_copy_split`), and that
model is scored on span t+1 before it ever sees it. Means are over these update steps (spans
2..T-1 scored on 3..T); static's model is scored on the same spans.

Blessing follows the pipeline's rule (tfx_pipeline/evaluation.py): on span t's test split the
candidate's AUC must reach `min_auc` and neither its AUC nor its NDCG@10 may fall more than
`bless_tolerance` below the strategy's previous model. The bench counts the updates that would
have been blessed but, to measure each strategy itself, continues every strategy from its own
latest model either way. Forgetting is NDCG@10 on a fixed holdout (span 1's test split, never
trained on) of the first model minus that of the strategy's final model.

The headline is counterfactual (freshrank/counterfactual.py): each model orders the next span's
searches, and the market's own probabilities give the expected purchases per 100 searches of that
order, of the legacy order and of the best possible order of the same pages, the share of the gap
captured and a paired bootstrap interval. NDCG/AUC are measured on the logged pages, which the
legacy ranking ordered, and stay beside it.
"""
from __future__ import annotations

import dataclasses
import datetime
import math
import os
import shutil
import statistics
import time
from collections.abc import Callable

from freshrank import counterfactual
from freshrank.bench import metrics
from freshrank.bench.scoring import Scored, Scorer
from freshrank.bench.strategies import STRATEGIES, Strategy, strategies
from freshrank.bench.stream import SPLITS, StreamSpan, write_stream
from trainer.config import TrainConfig

BENCH_START = datetime.date(2026, 11, 1)


@dataclasses.dataclass
class BenchSettings:
    """Everything a bench run depends on; written into bench.json."""

    days: int = 6
    requests_per_day: int = 400
    seed: int = 0
    drift: str = "mild"
    window: int = 7
    epochs: int = 3  # from-scratch training (the first model, full_retrain)
    warm_epochs: int = 1  # warm-start updates
    replay_fraction: float = 0.3
    distill_weight: float = 0.3
    min_auc: float = 0.52
    bless_tolerance: float = 0.0
    train: TrainConfig = dataclasses.field(default_factory=TrainConfig)

    def validate(self) -> None:
        if self.days < 3:
            raise ValueError(f"--days must be >= 3 (a first span, one update, one span to score it on), "
                             f"got {self.days}")
        if self.window < 1 or self.epochs < 1 or self.warm_epochs < 1:
            raise ValueError("window, epochs and warm epochs must be >= 1")


@dataclasses.dataclass
class _Model:
    """A trained model's scores: its own span's test split, the next span, the fixed holdout."""

    path: str
    current_test: Scored  # the span it was trained through: what blessing compares on
    next_all: Scored  # the next span, all splits: progressive validation
    next_test: Scored  # the next span's test split: the baseline when the next update is blessed
    holdout: float  # NDCG@10 on the first span's test split
    next_expected: counterfactual.Comparison | None = None  # the next span's searches, exact


@dataclasses.dataclass
class _Tally:
    expected: list[counterfactual.Comparison] = dataclasses.field(default_factory=list)
    ndcg: list[float] = dataclasses.field(default_factory=list)
    auc: list[float] = dataclasses.field(default_factory=list)
    holdout: list[float] = dataclasses.field(default_factory=list)
    train_seconds: float = 0.0
    update_seconds: float = 0.0
    train_examples: int = 0
    window_examples: int = 0
    blessed: int = 0
    updates: int = 0


def run_bench(out: str, settings: BenchSettings, say: Callable[[str], None] = print) -> dict:
    """Runs the whole bench under `out` and returns the results (the report module writes them)."""
    from trainer import task

    settings.validate()
    started = time.time()
    stream_dir, models_dir = os.path.join(out, "stream"), os.path.join(out, "models")
    for path in (stream_dir, models_dir):
        shutil.rmtree(path, ignore_errors=True)
    say(f"bench: {settings.days} spans of a {settings.drift} stream (seed {settings.seed}, "
        f"{settings.requests_per_day} searches/day) in {stream_dir}")
    spans = write_stream(stream_dir, BENCH_START, settings.days, settings.requests_per_day, settings.seed,
                         settings.drift, progress=lambda line: say("  " + line))
    holdout = spans[0].files("test")
    plan = strategies(settings.replay_fraction, settings.distill_weight)
    from freshrank.market import Market

    market = Market(seed=settings.seed, market_start=BENCH_START, drift=settings.drift)
    searches = {s.date: market.searches(datetime.date.fromisoformat(s.date), settings.requests_per_day)
                for s in spans}

    def expected(scorer: Scorer, span: StreamSpan) -> counterfactual.Comparison:
        """The model's order of `span`'s searches against legacy and the best order, exactly."""
        pages = searches[span.date]
        scores = counterfactual.score_searches(pages, scorer.score_columns)
        return counterfactual.compare(market, pages, counterfactual.rank_by_scores(pages, scores))

    def fit(strategy: Strategy, t: int, base: str | None) -> tuple[str, dict, int]:
        """Trains `strategy`'s model through span t (0-based); returns (export, facts, window size)."""
        where = os.path.join(models_dir, strategy.name, spans[t].date)
        members = spans[max(0, t - settings.window + 1): t + 1] if strategy.replay_fraction > 0 else [spans[t]]
        train_files, window_examples = _window(members, spans[t], strategy.replay_fraction, where,
                                               settings.train.seed)
        config = strategy.train_config(settings.train, settings.epochs, settings.warm_epochs)
        facts = task.train(config, train_files, spans[t].files("eval"), os.path.join(where, "model"),
                           os.path.join(where, "logs"), base_model=base)
        return os.path.join(where, "model"), facts, window_examples

    first_path, first_facts, _ = fit(Strategy("initial", warm=False), 0, None)
    first_scorer = Scorer(first_path)
    first = _score(first_scorer, first_path, spans[0], spans[1], holdout)
    first.next_expected = expected(first_scorer, spans[1])
    say(f"  first model (span {spans[0].date}): next span {first.next_expected.line()}; logged {_line(first.next_all)}, "
        f"holdout NDCG@10 {first.holdout:.3f}, {first_facts['train_seconds']:.0f}s")

    tallies = {name: _Tally() for name in STRATEGIES}
    for t in range(1, settings.days - 1):
        _record(tallies["static"], Scored.concat(_score_splits(first_scorer, spans[t + 1]).values()))
        tallies["static"].expected.append(expected(first_scorer, spans[t + 1]))
    tallies["static"].holdout.append(first.holdout)
    del first_scorer

    for name in STRATEGIES[1:]:
        strategy, tally, previous = plan[name], tallies[name], first
        tally.holdout.append(first.holdout)
        for t in range(1, settings.days - 1):
            clock = time.time()
            path, facts, window_examples = fit(strategy, t, previous.path if strategy.warm else None)
            tally.update_seconds += time.time() - clock
            tally.train_seconds += float(facts["train_seconds"])
            tally.train_examples += int(facts["examples_processed"])
            tally.window_examples += window_examples
            scorer = Scorer(path)
            model = _score(scorer, path, spans[t], spans[t + 1], holdout)
            model.next_expected = expected(scorer, spans[t + 1])
            tally.expected.append(model.next_expected)
            blessed = blesses(model.current_test, previous.next_test, settings.min_auc, settings.bless_tolerance)
            tally.blessed += int(blessed)
            tally.updates += 1
            _record(tally, model.next_all)
            tally.holdout.append(model.holdout)
            say(f"  {name:<19} through {spans[t].date}: next span {model.next_expected.line()}; "
                f"logged {_line(model.next_all)}, "
                f"blessed {'yes' if blessed else 'no '}, {facts['examples_processed']} examples, "
                f"fit {facts['train_seconds']:.0f}s, update {time.time() - clock:.0f}s")
            previous = model
    results = _results(settings, spans, tallies, first)
    results["wall_seconds"] = round(time.time() - started, 1)
    return results


def _score_splits(scorer: Scorer, span: StreamSpan) -> dict[str, Scored]:
    return {split: scorer.score(span.files(split)) for split in SPLITS}


def _score(scorer: Scorer, path: str, current: StreamSpan, nxt: StreamSpan, holdout: list[str]) -> _Model:
    by_split = _score_splits(scorer, nxt)
    kept = scorer.score(holdout)
    return _Model(path=path, current_test=scorer.score(current.files("test")),
                  next_all=Scored.concat(list(by_split.values())), next_test=by_split["test"],
                  holdout=metrics.ndcg_at_k(kept.groups, kept.labels, kept.scores))


def blesses(candidate: Scored, baseline: Scored | None, min_auc: float, tolerance: float) -> bool:
    """The Evaluator's rule: AUC >= min_auc, and AUC and NDCG@10 no worse than the baseline - tolerance."""
    c = metrics.evaluate(candidate.groups, candidate.labels, candidate.scores)
    if not c["auc"] >= min_auc:
        return False
    if baseline is None:
        return True
    b = metrics.evaluate(baseline.groups, baseline.labels, baseline.scores)
    return bool(c["auc"] >= b["auc"] - tolerance and c["ndcg@10"] >= b["ndcg@10"] - tolerance)


def _record(tally: _Tally, scored: Scored) -> None:
    m = metrics.evaluate(scored.groups, scored.labels, scored.scores)
    tally.ndcg.append(m["ndcg@10"])
    tally.auc.append(m["auc"])


def _line(scored: Scored) -> str:
    m = metrics.evaluate(scored.groups, scored.labels, scored.scores)
    return f"NDCG@10 {m['ndcg@10']:.3f} AUC {m['auc']:.3f}"


def _mean(values: list[float]) -> float:
    finite = [v for v in values if not math.isnan(v)]
    return round(statistics.mean(finite), 5) if finite else math.nan


def _results(settings: BenchSettings, spans: list[StreamSpan], tallies: dict[str, _Tally], first: _Model) -> dict:
    first_next = metrics.evaluate(first.next_all.groups, first.next_all.labels, first.next_all.scores)
    out: dict = {"strategies": {}, "series": {}}
    for name, tally in tallies.items():
        cf = counterfactual.mean_comparison(tally.expected)
        out["strategies"][name] = {
            "mean_expected_purchases_per_100": cf.get("mean_model_per_100", math.nan),
            "mean_legacy_purchases_per_100": cf.get("mean_legacy_per_100", math.nan),
            "mean_oracle_purchases_per_100": cf.get("mean_oracle_per_100", math.nan),
            "mean_gap_share": cf.get("mean_gap_share", math.nan),
            "updates_above_legacy": cf.get("days_above_legacy", 0),
            "mean_ndcg@10": _mean(tally.ndcg),
            "last_ndcg@10": round(tally.ndcg[-1], 5),
            "mean_auc": _mean(tally.auc),
            "forgetting": round(tally.holdout[0] - tally.holdout[-1], 5),
            "train_seconds": round(tally.train_seconds, 2),
            "train_examples": tally.train_examples,
            "blessed_updates": tally.blessed,
            "updates": tally.updates,
            "window_examples": tally.window_examples,
            "update_seconds": round(tally.update_seconds, 2),
        }
        out["series"][name] = {"expected": [c.to_json() for c in tally.expected],
                               "ndcg@10": [round(v, 5) for v in tally.ndcg],
                               "auc": [round(v, 5) for v in tally.auc],
                               "holdout_ndcg@10": [round(v, 5) for v in tally.holdout]}
    settings_json = dataclasses.asdict(settings)
    settings_json["train"] = {k: settings_json["train"][k] for k in ("batch_size", "learning_rate",
                                                                      "warm_start_learning_rate", "bert")}
    out["settings"] = settings_json
    out["spans"] = [{"date": s.date, "examples": s.num_examples} for s in spans]
    out["scored_spans"] = [s.date for s in spans[2:]]
    out["first_model"] = {"next_span_expected": first.next_expected.to_json() if first.next_expected else None,
                          "next_span_ndcg@10": round(first_next["ndcg@10"], 5),
                          "next_span_auc": round(first_next["auc"], 5),
                          "holdout_ndcg@10": round(first.holdout, 5)}
    out["goals"] = goals(out["strategies"])
    return out


def goals(table: dict[str, dict]) -> dict[str, dict]:
    """The three goals of the issue, checked against the figures (compute = examples processed)."""
    full = table["full_retrain"]
    warm_names = [n for n in table if n.startswith("warm_start")]
    close = {n: table[n]["mean_ndcg@10"] >= 0.99 * full["mean_ndcg@10"]
             and table[n]["train_examples"] <= 0.25 * full["train_examples"] for n in warm_names}
    static = table["static"]["mean_ndcg@10"]
    above = {n: table[n]["mean_ndcg@10"] >= 1.05 * static for n in table if n != "static"}
    warm_forgetting = table["warm_start"]["forgetting"]
    halves = {n: table[n]["forgetting"] <= 0.5 * warm_forgetting
              for n in ("warm_start_replay", "warm_start_distill")}
    return {
        "warm_start_matches_full_retrain_at_quarter_compute": {"met": any(close.values()), "by": close},
        "every_update_strategy_5pct_above_static": {"met": all(above.values()), "by": above},
        "replay_or_distill_halves_forgetting": {
            "met": warm_forgetting > 0 and any(halves.values()), "by": halves,
            "note": "" if warm_forgetting > 0 else "plain warm start did not forget (forgetting <= 0)"},
    }


def _window(members: list[StreamSpan], newest: StreamSpan, replay_fraction: float, where: str,
            seed: int) -> tuple[list[str], int]:
    """The window's training split, assembled by SpanWindow's `_copy_split` (whole newest span,
    `replay_fraction` of each older one); returns its file pattern and example count."""
    from tfx_pipeline.components.span_window import TRAIN, _copy_split

    train_dir = os.path.join(where, "window", f"Split-{TRAIN}")
    os.makedirs(train_dir, exist_ok=True)
    total = 0
    for member in members:
        fraction = 1.0 if member.date == newest.date else replay_fraction
        total += _copy_split(member.member(), TRAIN, train_dir, fraction, seed)
    return [os.path.join(train_dir, "*")], total
