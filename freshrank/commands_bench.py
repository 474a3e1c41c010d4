"""`freshrank bench`: replay one drifting stream under six update strategies (see freshrank/bench)."""
from __future__ import annotations

import sys

import click


@click.command("bench")
@click.option("--out", required=True, type=click.Path(file_okay=False),
              help="Directory for bench.json, bench.md, bench.png (and the stream and models it trains).")
@click.option("--days", default=6, show_default=True, type=click.IntRange(min=3),
              help="Spans in the stream: the first trains the shared first model, the last is only scored.")
@click.option("--seed", default=0, show_default=True, type=int)
@click.option("--drift", default="mild", show_default=True, type=click.Choice(["mild", "strong"]))
@click.option("--requests-per-day", default=400, show_default=True, type=click.IntRange(min=20))
@click.option("--window", default=7, show_default=True, type=click.IntRange(min=1),
              help="Spans in full retrain's window (and replay's).")
@click.option("--epochs", default=3, show_default=True, type=click.IntRange(min=1),
              help="Epochs of from-scratch training (first model, full retrain).")
@click.option("--warm-epochs", default=1, show_default=True, type=click.IntRange(min=1),
              help="Epochs of each warm-start update.")
@click.option("--replay-fraction", default=0.3, show_default=True, type=click.FloatRange(0.0, 1.0))
@click.option("--distill-weight", default=0.3, show_default=True, type=click.FloatRange(0.0, 1.0))
@click.option("--train-config", type=click.Path(exists=True, dir_okay=False),
              help="JSON file of trainer settings (model size, batch size, learning rates).")
def bench_command(out, days, seed, drift, requests_per_day, window, epochs, warm_epochs, replay_fraction,
                  distill_weight, train_config) -> None:
    """Does incremental updating pay? static, full retrain and four warm-start strategies, side by side."""
    from freshrank.bench.report import table, write_all
    from freshrank.bench.runner import BenchSettings, run_bench
    from freshrank.cli_options import load_train_config

    settings = BenchSettings(days=days, requests_per_day=requests_per_day, seed=seed, drift=drift, window=window,
                             epochs=epochs, warm_epochs=warm_epochs, replay_fraction=replay_fraction,
                             distill_weight=distill_weight, train=load_train_config(train_config, {}))
    try:
        results = run_bench(out, settings, say=lambda line: click.echo(line, err=True))
    except KeyboardInterrupt:
        click.echo("bench: stopped", err=True)
        sys.exit(1)
    paths = write_all(out, results)
    click.echo(table(results))
    for goal, verdict in results["goals"].items():
        click.echo(f"{goal}: {'met' if verdict['met'] else 'missed'}")
    click.echo("wrote " + ", ".join(paths))
