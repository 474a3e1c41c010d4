"""Is the warm chain's frozen WordPiece vocabulary why it trails full retraining on mild drift?

A warm-started update keeps the base model's WordPiece vocabulary (learned on span 1's text),
while full retraining learns one on its whole window at every update. This diagnostic runs, on
the bench's own loop and stream, full retraining beside the same full retraining with the
first model's WordPiece vocabulary kept (`full_retrain_first_vocab`: from scratch, whole window,
3 epochs; only the text vocabulary is span 1's; id vocabularies are learned as usual). If the
second loses what the warm chain loses, the vocabulary is the cause; if it matches full
retraining, it is not.

    .venv/bin/python benchmarks/vocab_diagnostic.py --out /tmp/exp/vocab --stream 0:mild --stream 59:mild

One process per stream (`--jobs`, default 2); each writes `<out>/<seed>-<drift>/bench.json` and the
table goes to `<out>/vocab.md`.
"""
from __future__ import annotations

import functools
import os
import sys

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
os.environ.setdefault("TF_USE_LEGACY_KERAS", "1")
os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

FIRST_VOCAB = "full_retrain_first_vocab"


def _first_vocab_strategy():
    """FIRST_VOCAB, and the patch (in this process only) that gives its fits span 1's WordPiece list.

    The runner asks a strategy for its TrainConfig right before each of its fits, and a
    from-scratch fit learns its vocabulary with `trainer.vocab.learn_wordpiece_vocab`: the
    strategy marks its fit there, and the next vocabulary learned is span 1's instead. The
    first vocabulary this process learns is the first model's. Only with the bench's `jobs=1`
    (its cost model, used to split strategies over processes, also asks for TrainConfigs).
    """
    from freshrank.bench.strategies import Strategy
    from trainer import vocab

    state: dict = {"first": None, "marked": False}
    learn = vocab.learn_wordpiece_vocab

    def learn_or_keep(texts, size):
        if state["marked"] and state["first"] is not None:
            state["marked"] = False
            return list(state["first"])
        learned = learn(texts, size)
        if state["first"] is None:
            state["first"] = learned
        return learned

    class FirstVocab(Strategy):
        def train_config(self, base, epochs, warm_epochs):
            state["marked"] = True
            return super().train_config(base, epochs, warm_epochs)

    vocab.learn_wordpiece_vocab = learn_or_keep
    return FirstVocab(FIRST_VOCAB, warm=False, replay_fraction=1.0)


def run_stream(out: str, seed: int, drift: str, days: int, requests_per_day: int) -> dict:
    from benchmarks.update_sweep import bench_stream

    return bench_stream(out, seed, drift, days, requests_per_day, ("full_retrain", "pipeline_default"),
                        [_first_vocab_strategy()])


def main() -> None:
    from benchmarks.update_sweep import parse_streams, run_streams, stream_parser

    args = stream_parser(__doc__.splitlines()[0]).parse_args()
    run_one = functools.partial(run_stream, args.out, days=args.days, requests_per_day=args.requests_per_day)
    run_streams(args.out, parse_streams(args.stream), args.jobs, run_one, "vocab.md")


if __name__ == "__main__":
    main()
