"""The bench's replay: one drifting stream, every strategy, progressive validation.

For spans 1..T: all strategies share the first model (span 1, from scratch). At each later span
t < T every updating strategy trains its model through span t with `trainer.task.fit` (the
pipeline Trainer's own fitting code, kept in memory: no SavedModel per update, which cost 30-45 s
each; windows assembled by SpanWindow's `copy_split`), and that model is scored on span t+1
before it ever sees it. Means are over these update steps (spans 2..T-1 scored on 3..T).

The headline is counterfactual (freshrank/counterfactual.py): each model orders the next span's
searches, and the market's own probabilities give the expected purchases per 100 searches of that
order, of the legacy order and of the best possible order of the same pages, the share of the gap
captured and a paired bootstrap interval. NDCG/AUC are measured on the logged pages, which the
legacy ranking ordered, and stay beside it.

Blessing (`blessing.py`) is judged on what the logs hold, with the pipeline's rules; every rule's
decision is compared with the truth (the candidate orders the next span better than the model it
would replace, counterfactually) in `blessing_agreement`. Strategies other than pipeline_default
continue from their own latest model either way, so each is measured as itself.

The updating strategies run in `jobs` processes (`_run_in_processes`; 1: in this one).

Forgetting is counterfactual too: the gap share on searches of span 1's day of the first model
minus that of the strategy's final model. They are the market's probe searches (`probe_searches`):
the same day's shoppers and catalogue, logged in no span, so no model ever trains on them. Span
1's test pages, used until 2026-12-08, stopped being out of sample when the previous span's
held-out pages began to train the next update (`reuse_holdout`).
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

import numpy as np

from freshrank import counterfactual
from freshrank.bench import blessing, metrics
from freshrank.bench.scoring import Scored, Scorer, read_split
from freshrank.bench.strategies import Strategy, strategies
from freshrank.bench.stream import HELD_OUT_PER_TRAIN, SPLITS, StreamSpan, write_stream
from tfx_pipeline.config import BLESS_PAGES, PipelineConfig
from trainer.config import TrainConfig

BENCH_START = datetime.date(2026, 11, 1)


@dataclasses.dataclass
class BenchSettings:
    """Everything a bench run depends on; written into bench.json."""

    days: int = 6
    requests_per_day: int = 1000
    seed: int = 0
    drift: str = "mild"
    start: datetime.date = BENCH_START
    window: int = 7  # full retrain's and replay's window
    pipeline_window: int | None = None  # pipeline_default's; None: the pipeline's default
    epochs: int = 3  # from-scratch training (the first model, full_retrain)
    warm_epochs: int = 1  # the named warm-start strategies' updates
    replay_fraction: float = 0.3
    distill_weight: float = 0.3
    min_auc: float = 0.52
    bless_tolerance: float = PipelineConfig.bless_tolerance  # standard errors, as `freshrank run`'s
    bless_weighting: str = "ips"
    bless_pages: str = PipelineConfig.bless_pages  # the new span's pages the product's rule reads
    train: TrainConfig = dataclasses.field(default_factory=TrainConfig)
    only: tuple[str, ...] | None = None  # strategy names to run (static always runs); None: all
    jobs: int = 1  # processes the updating strategies are split over (see _run_in_processes)

    def validate(self) -> None:
        if self.days < 3:
            raise ValueError(f"--days must be >= 3 (a first span, one update, one span to score it on), "
                             f"got {self.days}")
        if self.jobs < 1:
            raise ValueError(f"--jobs must be >= 1, got {self.jobs}")
        if self.window < 1 or self.epochs < 1 or self.warm_epochs < 1:
            raise ValueError("window, epochs and warm epochs must be >= 1")
        if self.bless_weighting not in blessing.WEIGHTINGS:
            raise ValueError(f"--bless-weighting must be one of {blessing.WEIGHTINGS}, got {self.bless_weighting!r}")
        if self.bless_pages not in BLESS_PAGES:
            raise ValueError(f"--bless-pages must be one of {BLESS_PAGES}, got {self.bless_pages!r}")


def probe_searches(requests_per_day: int) -> int:
    """How many of span 1's day's unlogged searches forgetting is measured on: half a span's."""
    return max(1, requests_per_day // 2)


@dataclasses.dataclass
class _Tally:
    expected: list[counterfactual.Comparison] = dataclasses.field(default_factory=list)
    candidates: list[counterfactual.Comparison] = dataclasses.field(default_factory=list)
    early: list[counterfactual.Comparison] = dataclasses.field(default_factory=list)
    ndcg: list[float] = dataclasses.field(default_factory=list)
    auc: list[float] = dataclasses.field(default_factory=list)
    train_seconds: float = 0.0
    update_seconds: float = 0.0
    train_examples: int = 0
    train_flops: int = 0
    window_examples: int = 0
    decisions: list[dict] = dataclasses.field(default_factory=list)  # one per update
    rule: str | None = None  # the blessing rule it counts (None: the product's)
    # The served model's expected purchases per search on each scored span, for paired comparisons.
    per_search: list[np.ndarray] = dataclasses.field(default_factory=list)


class _Stream:
    """The written spans, the market behind them and what every strategy is scored with."""

    def __init__(self, spans: list[StreamSpan], settings: BenchSettings, pipeline_window: int):
        from freshrank.market import Market

        self.spans, self.pipeline_window = spans, pipeline_window
        self.market = Market(seed=settings.seed, market_start=settings.start, drift=settings.drift)
        self.searches = {s.date: self.market.searches(datetime.date.fromisoformat(s.date), settings.requests_per_day)
                         for s in spans}
        self.early = self.market.probe_searches(datetime.date.fromisoformat(spans[0].date),
                                                probe_searches(settings.requests_per_day))
        self._curves: dict[int, object] = {}
        self._references: dict[object, counterfactual.Reference] = {}

    def expected(self, scorer: Scorer, t: int) -> tuple[counterfactual.Comparison, np.ndarray, dict]:
        """The model's order of span t's searches against legacy and the best order, exactly; that
        order's expected purchases search by search; and each impression's score."""
        return self._compare(scorer, self.searches[self.spans[t].date], t)

    def early_span(self, scorer: Scorer) -> counterfactual.Comparison:
        """The same on span 1's day's probe searches: what the updates forgot."""
        return self._compare(scorer, self.early, "early")[0]

    def _compare(self, scorer: Scorer, pages, key) -> tuple[counterfactual.Comparison, np.ndarray, dict]:
        scores = counterfactual.score_searches(pages, scorer.score_columns)
        model = self.market.expected_outcomes(pages, counterfactual.rank_by_scores(pages, scores))
        if key not in self._references:  # legacy, best and random orders: the same for every model
            self._references[key] = counterfactual.reference(self.market, pages)
        by_impression = {(s.request_id, c["product_id"]): float(v) for s, page in zip(pages, scores, strict=True)
                         for c, v in zip(s.candidates, page, strict=True)}
        return counterfactual.compare_outcomes(model, self._references[key]), model.purchases, by_impression

    def logged(self, scorer: Scorer, t: int, by_impression: dict) -> Scored:
        """The model's scores of span t's logged impressions (all splits), for NDCG/AUC on them.

        The logged pages are the same searches and candidates the counterfactual scored (the
        served inputs carry no position), so their scores are looked up; only impressions not
        among them would be scored again.
        """
        parts = []
        for split in SPLITS:
            logged = read_split(tuple(self.spans[t].files(split)))
            keys = list(zip((g.decode() for g in logged.groups), logged.items, strict=True))
            if all(k in by_impression for k in keys):
                parts.append(Scored(logged.groups, logged.labels, np.array([by_impression[k] for k in keys]),
                                    logged.positions))
            else:
                parts.append(scorer.score(self.spans[t].files(split)))
        return Scored.concat(parts)

    def curve(self, t: int):
        """The examination curve the pipeline would estimate at span t (its window's train logs)."""
        if t not in self._curves:
            members = self.spans[max(0, t - self.pipeline_window + 1): t + 1]
            self._curves[t] = blessing.estimate_curve([m.files("train") for m in members])
        return self._curves[t]


def _pipeline_window() -> int:
    from tfx_pipeline.config import DEFAULT_WINDOW

    return DEFAULT_WINDOW


def run_bench(out: str, settings: BenchSettings, say: Callable[[str], None] = print,
              extra: list[Strategy] | None = None, pair_with: str | None = None) -> dict:
    """Runs the whole bench under `out` and returns the results (the report module writes them).

    `extra`: more strategies (a sweep) run and reported beside the standard ones. `pair_with`: a
    strategy every other is also compared with, search by search (`minus_<name>`), as all are
    with full retraining: a sweep's variant against its control.
    """
    settings.validate()
    started = time.time()
    stream_dir, models_dir = os.path.join(out, "stream"), os.path.join(out, "models")
    for path in (stream_dir, models_dir):
        shutil.rmtree(path, ignore_errors=True)
    say(f"bench: {settings.days} spans of a {settings.drift} stream (seed {settings.seed}, "
        f"{settings.requests_per_day} searches/day, from {settings.start}) in {stream_dir}")
    phases: dict[str, float] = {}  # where the wall time went, in seconds
    clock = time.time()
    spans = write_stream(stream_dir, settings.start, settings.days, settings.requests_per_day, settings.seed,
                         settings.drift, progress=lambda line: say("  " + line))
    phases["stream"], clock = time.time() - clock, time.time()
    read_split.cache_clear()  # a rerun into the same `out` rewrote the files behind those paths
    pipeline_window = settings.pipeline_window or _pipeline_window()
    stream = _Stream(spans, settings, pipeline_window)
    plan = strategies(settings.train, pipeline_window, settings.replay_fraction, settings.distill_weight)
    if settings.only is not None:
        unknown = sorted(set(settings.only) - set(plan))
        if unknown:
            raise ValueError(f"unknown strategies {unknown}; choose from {sorted(plan)}")
        plan = {n: s for n, s in plan.items() if n == "static" or n in settings.only}
    for strategy in extra or []:
        plan[strategy.name] = strategy
    if pair_with is not None and pair_with not in plan:
        raise ValueError(f"pair_with {pair_with!r} is not among the strategies to run: {sorted(plan)}")

    first, _ = _fit(Strategy("initial", warm=False), 0, None, spans, settings, models_dir)
    phases["first_model"], clock = time.time() - clock, time.time()
    first_view = _View(first, stream)
    say(f"  first model (span {spans[0].date}): next span {first_view.expected(1).line()}; "
        f"{first.facts['train_seconds']:.0f}s")

    tallies = {name: _Tally() for name in plan}
    static = tallies["static"]
    for t in range(1, settings.days - 1):
        static.expected.append(first_view.expected(t + 1))
        static.per_search.append(first_view.per_search(t + 1))
        _record(static, first_view.logged(t + 1))
    static.early = [first_view.early()]

    updating = [strategy for strategy in plan.values() if strategy.updates]
    parallel = settings.jobs > 1 and len(updating) > 1
    if parallel:
        _score_everywhere(first_view, settings)
    phases["first_model_scoring"], clock = time.time() - clock, time.time()
    if not parallel:
        for strategy in updating:
            tallies[strategy.name] = _run_strategy(strategy, first_view, stream, settings, models_dir, say)
    else:
        tallies.update(_run_in_processes(updating, first, first_view, spans, settings, pipeline_window,
                                         models_dir, say))
    phases["updates"] = time.time() - clock
    results = _results(settings, spans, tallies, first_view, pair_with)
    results["wall_seconds"] = round(time.time() - started, 1)
    results["phase_seconds"] = {name: round(seconds, 1) for name, seconds in phases.items()}
    return results


def _fit(strategy: Strategy, t: int, base, spans: list[StreamSpan], settings: BenchSettings, models_dir: str):
    """Trains `strategy`'s model through span t (0-based); returns it and its window's size."""
    from trainer import task

    where = os.path.join(models_dir, strategy.name, spans[t].date)
    window = strategy.window_spans(settings.window)
    config = strategy.train_config(settings.train, settings.epochs, settings.warm_epochs)
    members = spans[max(0, t - window + 1): t + 1]
    train_files, window_examples = _window(members, strategy.replay_fraction, config.reuse_holdout, where,
                                           settings.train.seed,
                                           salt="" if strategy.fixed_replay_sample else spans[t].date)
    trained = task.fit(config, train_files, spans[t].files("eval"), None,
                       base.as_base() if base is not None else None)
    shutil.rmtree(where, ignore_errors=True)
    return trained, window_examples


def _run_strategy(strategy: Strategy, first_view: _View, stream: _Stream, settings: BenchSettings,
                  models_dir: str, say: Callable[[str], None]) -> _Tally:
    """Every update of one strategy from the shared first model, each scored on its next span."""
    spans, name = stream.spans, strategy.name
    tally, serving = _Tally(rule=blessing.product_rule(settings, strategy.bless_pages)), first_view
    latest = serving  # what the next update starts from
    tally.early.append(first_view.early())
    for t in range(1, settings.days - 1):
        clock = time.time()
        trained, window_examples = _fit(strategy, t, latest.trained if strategy.warm else None, spans, settings,
                                        models_dir)
        fit_seconds = time.time() - clock
        tally.update_seconds += fit_seconds
        tally.train_seconds += float(trained.facts["train_seconds"])
        tally.train_examples += int(trained.facts["examples_processed"])
        tally.train_flops += int(trained.facts["train_flops"])
        tally.window_examples += window_examples
        candidate = _View(trained, stream)
        decision = blessing.decide(candidate, serving, t, stream.curve(t), settings)
        margin = candidate.expected(t + 1).model_per_100 - serving.expected(t + 1).model_per_100
        truth = margin > 0
        decision["truth"] = bool(truth)
        decision["truth_margin_per_100"] = round(margin, 4)
        tally.decisions.append(decision)
        blessed = decision[tally.rule]
        tally.candidates.append(candidate.expected(t + 1))
        if blessed or not strategy.follows_blessing:
            serving = latest = candidate
        tally.expected.append(serving.expected(t + 1))
        tally.per_search.append(serving.per_search(t + 1))
        _record(tally, serving.logged(t + 1))
        tally.early.append(serving.early())
        say(f"  {name:<19} through {spans[t].date}: next span {serving.expected(t + 1).line()}; "
            f"blessed {'yes' if blessed else 'no '} (right: {'yes' if blessed == truth else 'no'}), "
            f"{trained.facts['examples_processed']} examples, "
            f"{trained.facts['train_flops'] / 1e12:.2f} TFLOP, fit {fit_seconds:.0f}s + scoring "
            f"{time.time() - clock - fit_seconds:.0f}s")
    return tally


def _score_everywhere(view: _View, settings: BenchSettings) -> None:
    """Scores `view`'s model on every span a strategy may ask it about (next spans, test splits, the early span)."""
    for t in range(0, settings.days):
        if t >= 1:
            view.expected(t)
        if t < settings.days - 1:
            view.held_out(t)
    view.early()


# An update's fixed cost (building, tracing, scoring) in passes over a span. Measured on 2 cores
# with both processes busy (2026-12-07, after the shared text function and the in-memory eval
# split): a warm one-pass update 18 s, full retraining 313 s for 42 span-passes and 4 builds.
FIXED_COST_PASSES = 2.5


def _cost(strategy: Strategy, settings: BenchSettings) -> float:
    """A strategy's updates in passes over one span: each pays FIXED_COST_PASSES plus its passes
    over its window, which grows with the spans seen."""
    config = strategy.train_config(settings.train, settings.epochs, settings.warm_epochs)
    passes = (config.warm_start_epochs or config.epochs) if strategy.warm else config.epochs
    window = strategy.window_spans(settings.window)
    total = 0.0
    for t in range(1, settings.days - 1):
        older = min(window, t + 1) - 1
        held = HELD_OUT_PER_TRAIN * (1.0 + strategy.replay_fraction * (older - 1)) if config.reuse_holdout else 0.0
        total += FIXED_COST_PASSES + passes * (1.0 + strategy.replay_fraction * older + held)
    return total


def _split(strategies: list[Strategy], jobs: int, cost: Callable[[Strategy], float]) -> list[list[Strategy]]:
    """The strategies over `jobs` processes so that the most loaded one finishes soonest.

    A bench has a handful of strategies, one of them (full retraining) as costly as two or three
    others, where "largest first to the least loaded" can leave one process a whole update behind:
    every assignment is tried when there are few (jobs ** n up to ~100 000), the greedy rule otherwise.
    """
    jobs = min(jobs, len(strategies))
    costs = [cost(s) for s in strategies]
    order = sorted(range(len(strategies)), key=lambda i: -costs[i])
    if jobs ** len(strategies) <= 100_000:
        import itertools

        best, best_span = None, float("inf")
        for assignment in itertools.product(range(jobs), repeat=len(strategies) - 1):
            loads = [0.0] * jobs
            loads[0] = costs[order[0]]  # the largest in the first group: the groups are interchangeable
            for i, group in zip(order[1:], assignment, strict=True):
                loads[group] += costs[i]
            if max(loads) < best_span:
                best, best_span = (0, *assignment), max(loads)
        groups: list[list[Strategy]] = [[] for _ in range(jobs)]
        for i, group in zip(order, best, strict=True):
            groups[group].append(strategies[i])
        return [g for g in groups if g]
    groups = [[] for _ in range(jobs)]
    totals = [0.0] * jobs
    for i in order:
        g = totals.index(min(totals))
        groups[g].append(strategies[i])
        totals[g] += costs[i]
    return groups


def _run_in_processes(updating: list[Strategy], first, first_view: _View, spans: list[StreamSpan],
                      settings: BenchSettings, pipeline_window: int, models_dir: str,
                      say: Callable[[str], None]) -> dict[str, _Tally]:
    """The strategies split over `settings.jobs` fresh processes by their estimated cost (`_split`).

    Tracing and graph building, most of a small update's cost on 2 cores, run on one Python
    thread, so two processes keep both cores busy. Each process rebuilds the first model from its
    weights (`trainer.task.rebuild`: the same scores) and reads the first model's scores from here
    (`first_view` has scored everything a worker would otherwise score again: `_score_everywhere`).
    """
    import concurrent.futures
    import multiprocessing

    loads = _split(updating, settings.jobs, lambda s: _cost(s, settings))
    base = dataclasses.replace(first.as_base(), teacher=None)  # a tf.function does not pickle
    context = multiprocessing.get_context("spawn")  # TensorFlow is not fork-safe
    lines = context.Queue()  # the workers' progress lines, said here as they come
    tallies: dict[str, _Tally] = {}
    with concurrent.futures.ProcessPoolExecutor(len(loads), mp_context=context, initializer=_set_progress_queue,
                                                initargs=(lines,)) as pool:
        futures = [pool.submit(_worker, group, base, first_view.scored(), spans, settings, pipeline_window,
                               models_dir) for group in loads]
        pending = set(futures)
        finished = 0  # workers whose last line has arrived (a result can overtake its queue's feeder thread)
        while pending:
            done, pending = concurrent.futures.wait(pending, timeout=1.0)
            finished += _say_lines(lines, say, block=False)
            for future in done:
                tallies.update(future.result())
        while finished < len(futures):
            got = _say_lines(lines, say, block=True)
            if got < 0:
                break  # a worker's lines never came; its figures did, so the bench goes on
            finished += got
    return {s.name: tallies[s.name] for s in updating}


_LAST_LINE = None  # what a worker puts on the progress queue after its group's last line


def _say_lines(lines, say: Callable[[str], None], block: bool) -> int:
    """Says the queued progress lines; returns how many workers' end markers came (-1: none within a minute)."""
    import queue as queue_lib

    ends = 0
    while True:
        try:
            line = lines.get(timeout=60.0) if block else lines.get_nowait()
        except queue_lib.Empty:
            return -1 if block else ends
        if line is _LAST_LINE:
            ends += 1
            if block:
                return ends
        else:
            say(line)


_PROGRESS = None  # in a worker process: the queue its progress lines go to


def _set_progress_queue(queue) -> None:
    global _PROGRESS
    _PROGRESS = queue


def _worker(group: list[Strategy], base, first_cache: dict, spans: list[StreamSpan], settings: BenchSettings,
            pipeline_window: int, models_dir: str) -> dict[str, _Tally]:
    from trainer import task

    stream = _Stream(spans, settings, pipeline_window)
    first_view = _View(task.rebuild(base), stream)
    first_view.adopt(first_cache)
    tallies = {s.name: _run_strategy(s, first_view, stream, settings, models_dir, _PROGRESS.put) for s in group}
    _PROGRESS.put(_LAST_LINE)
    return tallies


class _View:
    """One model's scores, each computed once: next spans, test splits, the early span."""

    def __init__(self, trained, stream: _Stream):
        self.trained, self.stream = trained, stream
        self.scorer = Scorer(trained.score)
        self._cache: dict = {}

    def scored(self) -> dict:
        """Everything this view has scored so far (to hand to another process's view of the same model)."""
        return self._cache

    def adopt(self, scored: dict) -> None:
        """Takes another view's scores of the same model instead of scoring again."""
        self._cache.update(scored)

    def _once(self, key, compute):
        if key not in self._cache:
            self._cache[key] = compute()
        return self._cache[key]

    def _expected(self, t: int) -> tuple[counterfactual.Comparison, np.ndarray, dict]:
        return self._once(("expected", t), lambda: self.stream.expected(self.scorer, t))

    def expected(self, t: int) -> counterfactual.Comparison:
        return self._expected(t)[0]

    def per_search(self, t: int) -> np.ndarray:
        """Expected purchases of this model's order of span t, search by search."""
        return self._expected(t)[1]

    def early(self) -> counterfactual.Comparison:
        return self._once("early", lambda: self.stream.early_span(self.scorer))

    def logged(self, t: int) -> Scored:
        return self._once(("logged", t), lambda: self.stream.logged(self.scorer, t, self._expected(t)[2]))

    def test(self, t: int) -> Scored:
        return self._once(("test", t), lambda: self.scorer.score(self.stream.spans[t].files("test")))

    def held_out(self, t: int) -> Scored:
        """Span t's eval and test pages together: what a blessing on both would read."""
        return self._once(("held_out", t), lambda: Scored.concat(
            [self.scorer.score(self.stream.spans[t].files("eval")), self.test(t)]))


def _record(tally: _Tally, scored: Scored) -> None:
    m = metrics.evaluate(scored.groups, scored.labels, scored.scores)
    tally.ndcg.append(m["ndcg@10"])
    tally.auc.append(m["auc"])


def _mean(values: list[float]) -> float:
    finite = [v for v in values if not math.isnan(v)]
    return round(statistics.mean(finite), 5) if finite else math.nan


def _results(settings: BenchSettings, spans: list[StreamSpan], tallies: dict[str, _Tally], first: _View,
             pair_with: str | None = None) -> dict:
    logged = first.logged(1)
    first_next = metrics.evaluate(logged.groups, logged.labels, logged.scores)
    rule = blessing.product_rule(settings)
    out: dict = {"strategies": {}, "series": {}}
    for name, tally in tallies.items():
        cf = counterfactual.mean_comparison(tally.expected)
        candidates = counterfactual.mean_comparison(tally.candidates)
        early = tally.early[0], tally.early[-1]
        out["strategies"][name] = {
            "mean_expected_purchases_per_100": cf.get("mean_model_per_100", math.nan),
            "mean_legacy_purchases_per_100": cf.get("mean_legacy_per_100", math.nan),
            "mean_oracle_purchases_per_100": cf.get("mean_oracle_per_100", math.nan),
            "mean_gap_share": cf.get("mean_gap_share", math.nan),
            "mean_candidate_gap_share": candidates.get("mean_gap_share", math.nan),
            "updates_above_legacy": cf.get("days_above_legacy", 0),
            "mean_ndcg@10": _mean(tally.ndcg),
            "last_ndcg@10": round(tally.ndcg[-1], 5),
            "mean_auc": _mean(tally.auc),
            # Counterfactual, on span 1's day's probe searches (logged in no span): the first
            # model's gap share minus the final served model's (positive = forgot).
            "forgetting": round(early[0].gap_share - early[1].gap_share, 5),
            "forgetting_per_100": round(early[0].model_per_100 - early[1].model_per_100, 4),
            "train_seconds": round(tally.train_seconds, 2),
            "train_examples": tally.train_examples,
            "train_flops": tally.train_flops,
            "blessed_updates": sum(d[tally.rule or rule] for d in tally.decisions),
            "updates": len(tally.decisions),
            "window_examples": tally.window_examples,
            "update_seconds": round(tally.update_seconds, 2),
        }
        out["series"][name] = {"expected": [c.to_json() for c in tally.expected],
                               "candidates": [c.to_json() for c in tally.candidates],
                               "early_span": [c.to_json() for c in tally.early],
                               "decisions": tally.decisions,
                               "ndcg@10": [round(v, 5) for v in tally.ndcg],
                               "auc": [round(v, 5) for v in tally.auc]}
    full = out["strategies"].get("full_retrain")
    for row in out["strategies"].values():
        row["flops_vs_full_retrain"] = (round(row["train_flops"] / full["train_flops"], 4)
                                        if full and full["train_flops"] else math.nan)
        row["expected_vs_full_retrain"] = (round(row["mean_expected_purchases_per_100"]
                                                 / full["mean_expected_purchases_per_100"], 4) if full else math.nan)
    if "full_retrain" in tallies:  # each strategy minus full retraining on the same searches, paired
        reference = np.concatenate(tallies["full_retrain"].per_search)
        for name, tally in tallies.items():
            out["strategies"][name]["minus_full_retrain"] = counterfactual.paired_difference(
                np.concatenate(tally.per_search), reference)
    if pair_with is not None:
        reference = np.concatenate(tallies[pair_with].per_search)
        for name, tally in tallies.items():
            out["strategies"][name][f"minus_{pair_with}"] = counterfactual.paired_difference(
                np.concatenate(tally.per_search), reference)
    settings_json = dataclasses.asdict(settings)
    settings_json["start"] = settings.start.isoformat()
    settings_json["train"] = {k: settings_json["train"][k] for k in (
        "batch_size", "learning_rate", "warm_start_learning_rate", "epochs", "warm_start_epochs",
        "replay_fraction", "reuse_holdout", "distill_weight", "warm_start_schedule", "anchor_weight",
        "warm_start_shrink", "warm_start_perturb", "row_evidence_decay", "shared_evidence_rate", "update_mode", "bert")}
    out["settings"] = settings_json
    out["spans"] = [{"date": s.date, "examples": s.num_examples} for s in spans]
    out["scored_spans"] = [s.date for s in spans[2:]]
    out["first_model"] = {"next_span_expected": first.expected(1).to_json(),
                          "next_span_ndcg@10": round(first_next["ndcg@10"], 5),
                          "next_span_auc": round(first_next["auc"], 5),
                          "early_span_expected": first.early().to_json()}
    out["blessing_agreement"] = blessing.agreement([d for t in tallies.values() for d in t.decisions])
    out["blessing_rule"] = rule
    out["goals"] = goals(out["strategies"], out["blessing_agreement"], settings.drift, settings.bless_pages)
    return out


def goals(table: dict[str, dict], agreement: dict, drift: str, bless_pages: str = PipelineConfig.bless_pages
          ) -> dict[str, dict]:
    """The issue's goals, checked against the figures (compute = train_flops); the blessing rules
    compared are the two weightings on the pages the product's rule reads."""
    verdicts: dict[str, dict] = {}
    full, default, static = table.get("full_retrain"), table.get("pipeline_default"), table["static"]
    if full and default:
        ratio = default["mean_expected_purchases_per_100"] / full["mean_expected_purchases_per_100"]
        flops = default["train_flops"] / full["train_flops"] if full["train_flops"] else math.nan
        verdicts["pipeline_default_matches_full_retrain_at_quarter_compute"] = {
            "met": bool(ratio >= 0.99 and flops <= 0.25), "expected_ratio": round(ratio, 4),
            "flops_ratio": round(flops, 4)}
    if default:
        lift = default["mean_expected_purchases_per_100"] / static["mean_expected_purchases_per_100"] - 1
        verdicts["pipeline_default_5pct_above_static"] = {
            "met": bool(lift >= 0.05), "lift": round(lift, 4),
            "note": "the goal is set for strong drift" if drift != "strong" else ""}
    if agreement:
        pages = blessing.pages_suffix(bless_pages)
        weighted, unweighted = agreement.get("lift_ips" + pages), agreement.get("lift_unweighted" + pages)
        if weighted and unweighted:
            verdicts["weighted_blessing_agrees_more"] = {
                "met": bool(weighted["agreement"] > unweighted["agreement"]),
                "weighted": weighted["agreement"], "unweighted": unweighted["agreement"]}
    return verdicts


def _window(members: list[StreamSpan], replay_fraction: float, reuse_holdout: bool, where: str, seed: int,
            salt: str) -> tuple[list[str], int]:
    """The window's training split (`members` oldest first, the newest last), assembled by
    SpanWindow's own `assemble_train`; returns its file pattern and example count."""
    from tfx_pipeline.components.span_window import TRAIN, assemble_train

    train_dir = os.path.join(where, "window", f"Split-{TRAIN}")
    shutil.rmtree(train_dir, ignore_errors=True)
    os.makedirs(train_dir, exist_ok=True)
    total = assemble_train([m.member() for m in members], train_dir, replay_fraction, reuse_holdout, seed, salt)
    return [os.path.join(train_dir, "*")], total
