"""The `freshrank` command line.

Exit codes (every command):
  0  success (for `run`: the run completed, pushed or not blessed)
  1  anything else failed; the message says what to do
  2  usage error (bad flag, bad date, missing data directory)
  3  data rejected: the span broke the schema or drifted past it; nothing was trained or pushed
"""
from __future__ import annotations

import contextlib
import datetime
import json
import os
import sys
import traceback

import click

from freshrank.cli_options import (
    model_name_option,
    parse_day,
    parse_span,
    pipeline_options,
    pipeline_settings,
    train_config_from,
    train_options,
)
from freshrank.env import configure, import_tensorflow
from tfx_pipeline.config import DEFAULT_MODEL_NAME
from tfx_pipeline.home import Home

configure()

EXIT_OK, EXIT_FAILED, EXIT_USAGE, EXIT_REJECTED = 0, 1, 2, 3


@click.group(context_settings={"help_option_names": ["-h", "--help"]})
def main() -> None:
    """Keep a BERT search ranker fresh: ingest daily spans, gate, warm-start, bless, push."""


@main.command()
@click.option("--out", required=True, type=click.Path(file_okay=False), help="Landing directory for spans.")
@click.option("--start", required=True, callback=parse_day, help="First day, YYYY-MM-DD.")
@click.option("--days", default=1, show_default=True, type=click.IntRange(min=1))
@click.option("--requests-per-day", default=1000, show_default=True, type=click.IntRange(min=1))
@click.option("--seed", default=0, show_default=True, type=int)
@click.option("--drift", default="mild", show_default=True, type=click.Choice(["mild", "strong"]))
@click.option("--overwrite", is_flag=True, help="Replace spans that already exist.")
@click.option("--interval", default="day", show_default=True, type=click.Choice(["day", "hour"]),
              help="hour: each day as 24 spans OUT/YYYY-MM-DD/HH/, split by event_time (the day's traffic curve kept).")
def simulate(out, start, days, requests_per_day, seed, drift, overwrite, interval) -> None:
    """Write DAYS complete spans of a generated, drifting shop (same seed, same bytes)."""
    from tqdm import tqdm

    from freshrank.market import simulate as simulate_market

    with tqdm(total=days, unit="day", file=sys.stderr, disable=None) as bar:
        def progress(day, rows):
            bar.set_postfix_str(f"{day} {rows} rows")
            bar.update(1)

        try:
            paths = simulate_market(out, start, days, requests_per_day=requests_per_day, seed=seed,
                                    drift=drift, progress=progress, overwrite=overwrite, interval=interval)
        except FileExistsError as error:
            raise click.UsageError(f"{error} (pass --overwrite to replace it)") from None
    for path in paths:
        click.echo(str(path))


@main.command()
@click.option("--data", "data_root", required=True, type=click.Path(exists=True, file_okay=False),
              help="Landing directory holding YYYY-MM-DD/ (daily) or YYYY-MM-DD/HH/ (hourly) spans.")
@click.option("--home", required=True, type=click.Path(file_okay=False),
              help="State directory: ML Metadata, pipeline outputs, serving models, runs.jsonl.")
@click.option("--span", callback=parse_span,
              help="Run this span (YYYY-MM-DD, or YYYY-MM-DDTHH for hourly data) instead of the newest complete one.")
@pipeline_options()
@train_options()
def run(data_root, home, span, **flags) -> None:
    """Run the pipeline once on one span; the last stdout line is the run's JSON record."""
    from tfx_pipeline import spans
    from tfx_pipeline.config import PipelineConfig

    train_config = train_config_from(flags)
    settings = pipeline_settings(flags)
    try:
        day = spans.resolve_span(data_root, span, settings.get("interval"))
        spans.check_home(home, day)
        config = PipelineConfig(data_root=data_root, home=home, span=day, train=train_config, **settings)
    except (FileNotFoundError, ValueError) as error:
        raise click.UsageError(str(error)) from None
    sys.exit(_run(config))


@contextlib.contextmanager
def _stderr_to(log_file):
    """Points file descriptor 2 at `log_file` (so C++ and Python writers alike land there) and
    yields a stream to the real stderr; restores it on the way out."""
    sys.stderr.flush()
    saved = os.dup(2)
    terminal = os.fdopen(os.dup(saved), "w", buffering=1, encoding="utf-8", errors="replace")
    os.dup2(log_file.fileno(), 2)
    try:
        yield terminal
    finally:
        sys.stderr.flush()
        os.dup2(saved, 2)
        os.close(saved)
        terminal.close()


def _stop_logging() -> None:
    """Detaches the handlers `_log_progress` attached (their stream may be about to close)."""
    import logging

    root = logging.getLogger()
    for handler in list(root.handlers):
        root.removeHandler(handler)
        handler.flush()


def _log_progress() -> None:
    """Component progress (TFX, Beam, Keras) on stderr, so stdout ends with the JSON record."""
    import logging

    from absl import logging as absl_logging

    import_tensorflow()  # before anything imports it: its import-time noise stays off the terminal
    logging.basicConfig(level=logging.INFO, stream=sys.stderr, format="%(asctime)s %(name)s: %(message)s")
    absl_logging.set_verbosity(absl_logging.INFO)
    for noisy in ("apache_beam", "tensorflow", "absl.apache_beam", "googleapiclient"):
        logging.getLogger(noisy).setLevel(logging.WARNING)


def _run(config) -> int:
    from tfx_pipeline.local_runner import HomeLocked, run_once
    from tfx_pipeline.run_summary import REJECTED_DATA

    _log_progress()
    click.echo(f"freshrank: running span {config.span} (window {config.window}) in {config.home}", err=True)
    try:
        record = run_once(config)
    except HomeLocked as error:
        click.echo(f"error: {error}", err=True)
        return EXIT_FAILED
    except Exception as error:  # noqa: BLE001 - the one place a run's failure becomes an exit code
        traceback.print_exc()
        click.echo(f"error: span {config.span} failed: {type(error).__name__}: {error}", err=True)
        click.echo(f"  logs above; ML Metadata: {config.metadata_path}. Fix the cause and rerun "
                   f"`freshrank run --span {config.span}`.", err=True)
        return EXIT_FAILED
    if record["status"] == REJECTED_DATA:
        click.echo(f"error: span {config.span} rejected; nothing trained or pushed, the serving model stays:",
                   err=True)
        for problem in record["problems"]:
            click.echo(f"  {problem}", err=True)
        click.echo("  fix the span's data (or the schema in schemas/schema.pbtxt if the change is real) "
                   "and rerun.", err=True)
    click.echo(json.dumps(record, sort_keys=True, ensure_ascii=False))
    return EXIT_REJECTED if record["status"] == REJECTED_DATA else EXIT_OK


@main.command()
@click.option("--server", required=True, help="Model server gRPC address, HOST:PORT.")
@click.option("--query", required=True, help="The search text.")
@click.option("--candidates", required=True, type=click.Path(exists=True, dir_okay=False),
              help="CSV with product_id,title,brand,category,price (landing-data columns; labels not needed).")
@click.option("--top", type=click.IntRange(min=1), help="Print only the best K.")
@model_name_option
@click.option("--timeout", default=10.0, show_default=True, type=click.FloatRange(min=0.1))
@click.option("--user-id", help="Who is searching; only for a model trained with user features (it takes a "
                                "user_id input, other models refuse one).")
def rank(server, query, candidates, top, model_name, timeout, user_id) -> None:
    """Rank candidates for a query with one gRPC Predict to a served model."""
    from serving.client import RankError, format_ranking, read_candidates_csv
    from serving.client import rank as rank_candidates

    try:
        rows = read_candidates_csv(candidates)
    except ValueError as error:
        raise click.UsageError(str(error)) from None
    try:
        ranked = rank_candidates(server, query, rows, model_name=model_name, timeout=timeout, user_id=user_id)
    except RankError as error:
        click.echo(f"error: {error}", err=True)
        sys.exit(EXIT_FAILED)
    click.echo(format_ranking(ranked, top=top))


@main.command()
@click.option("--data", "data_root", required=True, type=click.Path(exists=True, file_okay=False))
@click.option("--home", required=True, type=click.Path(file_okay=False))
@click.option("--poll-seconds", default=60.0, show_default=True, type=click.FloatRange(min=0.1))
@click.option("--once", is_flag=True, help="One pass over the pending spans, then exit.")
@click.option("--gap-alert", default="1h", show_default=True, metavar="AGE",
              help="Report a span missing from the sequence once the span after it has been complete this "
                   "long (30m, 2h, 1d); see docs/hourly.md.")
@pipeline_options()
@train_options()
def watch(data_root, home, poll_seconds, once, gap_alert, **flags) -> None:
    """Run every complete span that has no run yet, oldest first, exactly once (across restarts)."""
    from freshrank.watch import parse_duration
    from freshrank.watch import watch as watch_spans
    from tfx_pipeline import spans
    from tfx_pipeline.config import PipelineConfig
    from tfx_pipeline.local_runner import HomeLocked, run_once

    train_config = train_config_from(flags)
    settings = pipeline_settings(flags)
    try:  # the settings' own checks, before the first span rather than at it
        gap_seconds = parse_duration(gap_alert)
        settings["interval"] = spans.data_interval(data_root, settings.get("interval"))
        now = datetime.datetime.now(datetime.timezone.utc)
        probe = spans.Span.of_hour(now) if settings["interval"] == spans.HOUR else spans.Span.of_day(now.date())
        spans.check_home(home, probe)
        PipelineConfig(data_root=data_root, home=home, span=probe, train=train_config, **settings)
    except ValueError as error:
        raise click.UsageError(str(error)) from None
    _log_progress()

    def run_span(day, absorbed=()):
        return run_once(PipelineConfig(data_root=data_root, home=home, span=day, train=train_config,
                                       absorbed=absorbed, **settings))

    runs_log = Home(home).runs_log
    try:
        ran = watch_spans(data_root, runs_log, run_span, poll_seconds, once,
                          say=lambda line: click.echo(line), interval=settings["interval"],
                          gap_alert=gap_seconds)
    except HomeLocked as error:
        click.echo(f"error: {error}", err=True)
        sys.exit(EXIT_FAILED)
    except KeyboardInterrupt:
        click.echo("watch: stopped", err=True)
        return
    except Exception as error:  # noqa: BLE001
        traceback.print_exc()
        click.echo(f"error: watch stopped: {type(error).__name__}: {error}; fix it and restart watch "
                   "(finished spans are not run again)", err=True)
        sys.exit(EXIT_FAILED)
    click.echo(f"watch: ran {ran} span(s)", err=True)


@main.command()
@click.option("--days", default=5, show_default=True, type=click.IntRange(min=1),
              help="Simulated days; day 1 uses the legacy ranking, later days the served model.")
@click.option("--home", default="demo_home", show_default=True, type=click.Path(file_okay=False))
@click.option("--requests-per-day", type=click.IntRange(min=50),
              help="Searches a day (default 400; with --interval hour 4800, each hour taking its share).")
@click.option("--seed", default=0, show_default=True, type=int)
@click.option("--interval", default="day", show_default=True, type=click.Choice(["day", "hour"]),
              help="hour: the loop an hour at a time (hourly spans); each line prints the seconds from the "
                   "hour landing to its version AVAILABLE.")
@click.option("--hours", default=4, show_default=True, type=click.IntRange(min=1),
              help="With --interval hour: simulated hours (hour 1 is the shop's history).")
def demo(days, home, requests_per_day, seed, interval, hours) -> None:
    """The served loop: rank each day (or hour) through the model server, land it, retrain, bless, push."""
    from freshrank.demo import run_demo
    from freshrank.report import write_report
    from freshrank.served_model import ServerFailed

    import_tensorflow()
    os.makedirs(home, exist_ok=True)
    log_path = os.path.join(home, "demo.log")
    click.echo(f"demo: component logs (TFX, Beam, Keras) go to {log_path}", err=True)
    try:
        # The terminal keeps the table and the progress lines; everything the pipeline prints goes
        # to the log, TensorFlow's C++ logging included (it writes to file descriptor 2 itself).
        with open(log_path, "a", encoding="utf-8") as log_file, _stderr_to(log_file) as terminal:
            _log_progress()
            try:
                from freshrank.demo import DEMO_HOURLY_REQUESTS_PER_DAY

                hourly = interval == "hour"
                requests = requests_per_day or (DEMO_HOURLY_REQUESTS_PER_DAY if hourly else 400)
                records = run_demo(home, hours if hourly else days, requests, seed,
                                   say=lambda line: click.echo(line),
                                   progress=lambda line: click.echo("  " + line, file=terminal), interval=interval)
            finally:
                _stop_logging()
    except FileExistsError as error:
        raise click.UsageError(str(error)) from None
    except ServerFailed as error:
        click.echo(f"error: {error}", err=True)
        sys.exit(EXIT_FAILED)
    except KeyboardInterrupt:
        click.echo("demo: stopped (the model server was shut down)", err=True)
        sys.exit(EXIT_FAILED)
    except Exception as error:  # noqa: BLE001 - the traceback goes to the log, the reason to the terminal
        with open(log_path, "a", encoding="utf-8") as log_file:
            traceback.print_exc(file=log_file)
        click.echo(f"error: demo failed: {type(error).__name__}: {error}; the traceback and the pipeline's "
                   f"output are in {log_path}", err=True)
        sys.exit(EXIT_FAILED)
    md, png = write_report(home, records)
    from freshrank.report import summary_line

    model_days = [r for r in records if r["ranked_by"] and r.get("expected")]
    if model_days:
        click.echo(summary_line(model_days))
    click.echo(f"done: {sum(r['status'] == 'pushed' for r in records)} of {len(records)} updates pushed to "
               f"{Home(home).serving_dir(DEFAULT_MODEL_NAME)}; report {md} and {png}")


from freshrank.commands_bench import bench_command  # noqa: E402
from freshrank.commands_production import (  # noqa: E402  (registered last: they import nothing from here)
    compile_command,
    export_serving_config_command,
    submit_command,
    tensorboard_command,
)
from freshrank.commands_reliability import gc_command, rollback_command  # noqa: E402

main.add_command(compile_command)
main.add_command(submit_command)
main.add_command(export_serving_config_command)
main.add_command(tensorboard_command)
main.add_command(rollback_command)
main.add_command(gc_command)
main.add_command(bench_command)

if __name__ == "__main__":
    main()
