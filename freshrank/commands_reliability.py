"""`freshrank rollback`: take a bad served version out of service for good.

Registered on the `freshrank` group at the end of freshrank/cli.py. Exit codes:
  0  rolled back: the retired versions moved to HOME/retired/<model>/, the record is in runs.jsonl
  1  nothing to roll back, only one version left (it stays), or another run holds HOME
  2  usage error, including an unknown --to version (the message lists the versions there)
"""
from __future__ import annotations

import json
import os
import sys

import click

from freshrank.cli_options import model_name_option
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
