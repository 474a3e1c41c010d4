"""`freshrank bench`: replay one drifting stream under seven update strategies (see freshrank/bench)."""
from __future__ import annotations

import datetime
import sys
import time

import click

from freshrank.cli_options import bless_options
from freshrank.env import import_tensorflow


@click.command("bench")
@click.option("--out", required=True, type=click.Path(file_okay=False),
              help="Directory for bench.json, bench.md, bench.png (and the stream it trains on).")
@click.option("--days", default=6, show_default=True, type=click.IntRange(min=3),
              help="Spans in the stream: the first trains the shared first model, the last is only scored.")
@click.option("--seed", default=0, show_default=True, type=int)
@click.option("--drift", default="mild", show_default=True, type=click.Choice(["mild", "strong"]))
@click.option("--start", default="2026-11-01", show_default=True, type=click.DateTime(formats=["%Y-%m-%d"]),
              help="The stream's first day (the market starts then).")
@click.option("--requests-per-day", default=1000, show_default=True, type=click.IntRange(min=20),
              help="Searches per span.")
@click.option("--window", default=7, show_default=True, type=click.IntRange(min=1),
              help="Spans in full retrain's window (and replay's); pipeline_default uses the pipeline's.")
@click.option("--epochs", default=3, show_default=True, type=click.IntRange(min=1),
              help="Epochs of from-scratch training (first model, full retrain).")
@click.option("--warm-epochs", default=1, show_default=True, type=click.IntRange(min=1),
              help="Epochs of each named warm-start strategy's update (pipeline_default: the trainer config's).")
@click.option("--replay-fraction", default=0.3, show_default=True, type=click.FloatRange(0.0, 1.0),
              help="warm_start_replay's share of each older span.")
@click.option("--distill-weight", default=0.3, show_default=True, type=click.FloatRange(0.0, 1.0),
              help="warm_start_distill's weight of the previous model's scores.")
@bless_options
@click.option("--strategy", "only", multiple=True,
              help="Run only these strategies (repeatable; static always runs). Default: all.")
@click.option("--train-config", type=click.Path(exists=True, dir_okay=False),
              help="JSON file of trainer settings (model size, batch size, learning rates): "
                   "pipeline_default uses it as `freshrank run --train-config` would.")
@click.option("--jobs", default=2, show_default=True, type=click.IntRange(min=1),
              help="Processes the strategies' updates are split over (1: all in this process).")
def bench_command(out, days, seed, drift, start, requests_per_day, window, epochs, warm_epochs, replay_fraction,
                  distill_weight, bless_weighting, bless_tolerance, bless_pages, only, train_config, jobs) -> None:
    """Does incremental updating pay? Full retrain, five warm-start strategies, the pipeline's default and static.

    Exit codes: 0 done (goals are reported, not enforced); 1 stopped by Ctrl-C; 2 bad options.
    """
    import_tensorflow()  # first: its import-time noise stays off the terminal
    from freshrank.bench.report import phase_breakdown, table, write_all
    from freshrank.bench.runner import BenchSettings, run_bench
    from freshrank.cli_options import load_train_config

    started = time.time()
    settings = BenchSettings(days=days, requests_per_day=requests_per_day, seed=seed, drift=drift,
                             start=datetime.date(start.year, start.month, start.day), window=window,
                             epochs=epochs, warm_epochs=warm_epochs, replay_fraction=replay_fraction,
                             distill_weight=distill_weight, bless_weighting=bless_weighting,
                             bless_tolerance=bless_tolerance, bless_pages=bless_pages,
                             only=tuple(only) if only else None, train=load_train_config(train_config, {}),
                             jobs=jobs)
    try:
        results = run_bench(out, settings, say=lambda line: click.echo(line, err=True))
    except KeyboardInterrupt:
        click.echo("bench: stopped", err=True)
        sys.exit(1)
    except ValueError as e:
        raise click.UsageError(str(e)) from e
    paths = write_all(out, results)
    click.echo(table(results))
    for goal, verdict in results["goals"].items():
        click.echo(f"{goal}: {'met' if verdict['met'] else 'missed'}")
    click.echo("wrote " + ", ".join(paths))
    click.echo(f"bench wall time: {(time.time() - started) / 60:.1f} min{phase_breakdown(results)}")
