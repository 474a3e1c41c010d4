"""Is the warm chain's frozen WordPiece vocabulary why it trails full retraining on mild drift?

A warm-started update keeps the base model's WordPiece vocabulary (learned on span 1's text),
while full retraining learns one on its whole window at every update. This diagnostic runs, on
the bench's own loop and stream, full retraining beside the same full retraining with the
first model's WordPiece vocabulary kept (`full_retrain_first_vocab`: from scratch, whole window,
3 epochs; only the text vocabulary is span 1's; id vocabularies are learned as usual). If the
second loses what the warm chain loses, the vocabulary is the cause; if it matches full
retraining, it is not.

    .venv/bin/python benchmarks/vocab_diagnostic.py --out /tmp/exp/vocab --stream 0:mild --stream 41:mild

One process per stream (`--jobs`, default 2); each writes `<out>/<seed>-<drift>/bench.json` and the
table goes to `<out>/vocab.md`.
"""
from __future__ import annotations

import functools
import json
import os
import sys

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
os.environ.setdefault("TF_USE_LEGACY_KERAS", "1")
os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

FIRST_VOCAB = "full_retrain_first_vocab"


def _keep_first_vocab() -> None:
    """Patches the trainer, in this process only, so FIRST_VOCAB's fits use span 1's WordPiece list."""
    from freshrank.bench import runner
    from trainer import task

    state: dict = {"first": None, "active": False}
    learn, fit = task._vocabularies, runner._fit

    def vocabularies(config, window, base, work_dir):
        vocabs = learn(config, window, base, work_dir)
        if base is not None:
            return vocabs
        if state["first"] is None:
            state["first"] = vocabs.wordpiece
        elif state["active"]:
            import dataclasses

            return dataclasses.replace(vocabs, wordpiece=state["first"],
                                       wordpiece_path=task._local_copy(state["first"], work_dir))
        return vocabs

    def bench_fit(strategy, *args, **kwargs):
        state["active"] = strategy.name == FIRST_VOCAB
        try:
            return fit(strategy, *args, **kwargs)
        finally:
            state["active"] = False

    task._vocabularies, runner._fit = vocabularies, bench_fit


def run_stream(out: str, seed: int, drift: str, days: int, requests_per_day: int) -> dict:
    from freshrank.bench.runner import BenchSettings, run_bench
    from freshrank.bench.strategies import Strategy

    _keep_first_vocab()
    where = os.path.join(out, f"{seed}-{drift}")
    os.makedirs(where, exist_ok=True)
    settings = BenchSettings(days=days, requests_per_day=requests_per_day, seed=seed, drift=drift,
                             only=("full_retrain", "pipeline_default"))
    extra = [Strategy(FIRST_VOCAB, warm=False, replay_fraction=1.0)]
    with open(os.path.join(where, "progress.log"), "w", buffering=1) as log:
        results = run_bench(where, settings, say=lambda line: print(line, file=log), extra=extra)
    with open(os.path.join(where, "bench.json"), "w") as f:
        json.dump(results, f, indent=1, default=str)
    return results


def main() -> None:
    from benchmarks.update_sweep import parse_streams, run_streams, stream_parser

    args = stream_parser(__doc__.splitlines()[0]).parse_args()
    run_one = functools.partial(run_stream, args.out, days=args.days, requests_per_day=args.requests_per_day)
    run_streams(args.out, parse_streams(args.stream), args.jobs, run_one, "vocab.md")


if __name__ == "__main__":
    main()
