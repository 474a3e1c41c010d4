"""`freshrank rollback` (take a bad served version out of service for good) and `freshrank gc`
(retention: remove old versions and old runs' pipeline outputs, keep what anything still needs).

Registered on the `freshrank` group at the end of freshrank/cli.py. Exit codes of rollback:
  0  rolled back: the retired versions moved to HOME/retired/<model>/, the record is in runs.jsonl
  1  nothing to roll back, only one version left (it stays), or another run holds HOME
  2  usage error, including an unknown --to version (the message lists the versions there)
Exit codes of gc:
  0  done (or, with --dry-run, the plan printed; nothing changed), also when nothing was to remove
  1  another run holds HOME, or some paths could not be removed (named; rerun gc once fixed)
  2  usage error (HOME is not a freshrank home, --keep-versions 0)
"""
from __future__ import annotations

import json
import os
import sys

import click

from freshrank.cli_options import keep_versions_option, model_name_option
from freshrank.env import configure
from tfx_pipeline.home import Home

configure()

EXIT_FAILED = 1


@click.command("rollback")
@click.option("--home", required=True, type=click.Path(exists=True, file_okay=False),
              help="freshrank home whose serving/<model>/ to roll back.")
@click.option("--to", "to_version", type=click.IntRange(min=0),
              help="Serve this version again (every newer one is retired). Default: the one before the newest.")
@model_name_option
def rollback_command(home: str, to_version: int | None, model_name: str) -> None:
    """Retire the serving version so the model server falls back to the previous one.

    Retired versions move to HOME/retired/<model>/<version> and lose their blessing in ML
    Metadata, so no later run warm-starts from them or uses them as the baseline.
    """
    from tfx_pipeline import rollback, run_summary
    from tfx_pipeline.home_lock import HomeLocked, home_lock

    home = os.path.abspath(home)
    try:
        with home_lock(home):
            record = rollback.retire(home, model_name, to_version)
            run_summary.append(Home(home).runs_log, record)
    except rollback.UnknownVersion as error:
        raise click.UsageError(str(error)) from None
    except (rollback.RollbackError, HomeLocked) as error:
        click.echo(f"error: {error}", err=True)
        sys.exit(EXIT_FAILED)
    retired = ", ".join(map(str, record["retired_versions"]))
    click.echo(f"rolled back: retired {retired}; {record['serving_version']} serves again "
               f"(retired copies under {Home(home).retired_dir(model_name)})", err=True)
    click.echo(json.dumps(record, sort_keys=True))


@click.command("gc")
@click.option("--home", required=True, type=click.Path(exists=True, file_okay=False),
              help="freshrank home to clean (the --home of `freshrank run`).")
@model_name_option
@keep_versions_option
@click.option("--dry-run", is_flag=True, help="Print what would be removed and the bytes freed; change nothing.")
def gc_command(home: str, model_name: str, keep_versions: int, dry_run: bool) -> None:
    """Remove old served versions and old runs' pipeline outputs; list them and the bytes freed.

    Keeps the newest K versions, the serving one and the newest blessed one (warm start, baseline,
    rollback targets), and every output of the runs inside the training window (the window the
    newest run used). Removed artifacts stay in ML Metadata, marked DELETED. Runs after every
    `freshrank run` / `watch` by itself; see docs/reliability.md.
    """
    from tfx_pipeline import retention, run_summary
    from tfx_pipeline.home_lock import HomeLocked, home_lock

    home = os.path.abspath(home)
    layout = Home(home)
    if not (os.path.exists(layout.metadata_path) or os.path.isdir(os.path.dirname(layout.serving_dir(model_name)))):
        raise click.UsageError(f"{home} is not a freshrank home (no metadata.sqlite, no serving/); pass the "
                               "--home of `freshrank run`")
    try:
        with home_lock(home):
            steps = retention.plan(home, model_name, keep_versions)
            for line in steps.lines():
                click.echo(line)
            if dry_run:
                click.echo(f"dry run: nothing changed; {retention.home_bytes(home)} bytes in {home}")
                return
            record = retention.apply(steps)
            run_summary.append(layout.gc_log, record)
    except retention.RetentionError as error:
        raise click.UsageError(str(error)) from None
    except HomeLocked as error:
        click.echo(f"error: {error}", err=True)
        sys.exit(EXIT_FAILED)
    click.echo(f"gc: freed {record['bytes_freed']} bytes; {record['home_bytes']} bytes left in {home}")
    if record["errors"]:
        for problem in record["errors"]:
            click.echo(f"error: could not remove {problem}", err=True)
        click.echo("fix the cause (permissions, a process holding the folder) and rerun `freshrank gc`", err=True)
        sys.exit(EXIT_FAILED)
