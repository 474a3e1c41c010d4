"""Running the pipeline once on this machine: LocalDagRunner, sqlite ML Metadata, DirectRunner.

Under the home lock a run first cleans up after a killed predecessor (tfx_pipeline/recovery.py),
then quarantines malformed CSV rows (tfx_pipeline/quarantine.py), then runs the pipeline.
"""
from __future__ import annotations

import contextlib
import dataclasses
import logging
import sys
import time

from tfx.orchestration import metadata
from tfx.orchestration.local.local_dag_runner import LocalDagRunner

from tfx_pipeline import quarantine, recovery, run_summary
from tfx_pipeline.config import PipelineConfig
from tfx_pipeline.data_gate import DataRejected
from tfx_pipeline.home_lock import HomeLocked, home_lock  # noqa: F401  (HomeLocked: re-exported for the CLI)
from tfx_pipeline.lineage import Lineage
from tfx_pipeline.pipeline import Platform, create_pipeline
from tfx_pipeline.spans import span_number

log = logging.getLogger("freshrank.run")


def run_once(config: PipelineConfig) -> dict:
    """Runs the pipeline for `config.span`; returns the run record (already appended to runs.jsonl)."""
    import tensorflow_text  # noqa: F401  (registers the ranker's ops for the in-process Evaluator)

    started = time.time()
    span = config.span.isoformat()
    with home_lock(config.home):
        recovery.recover(config.metadata_path, config.serving_dir)
        try:
            ingest_root, quarantined = quarantine.gate_span(
                config.data_root, span, config.home, config.max_bad_row_share
            )
        except quarantine.SpanMalformed as malformed:
            record = run_summary.rejected(span, malformed.problems, time.time() - started)
            record["quarantine"] = malformed.quarantine_dir
            run_summary.append(config.runs_log, record)
            return record
        if ingest_root != config.data_root:
            config = dataclasses.replace(config, ingest_root=ingest_root)
        try:
            # Component output (Keras progress included) goes to stderr: stdout is for records.
            with contextlib.redirect_stdout(sys.stderr):
                LocalDagRunner().run(create_pipeline(config))
        except Exception as error:  # noqa: BLE001 - classified below, re-raised when not data
            rejection = _find(error, DataRejected)
            if rejection is None:
                raise
            record = run_summary.rejected(span, [str(p) for p in rejection.problems], time.time() - started)
            record["quarantined_rows"] = quarantined
            run_summary.append(config.runs_log, record)
            return record
        lineage = Lineage.open(config.metadata_path)
        nodes = lineage.run_nodes(lineage.latest_run_id())
        record = run_summary.summarize(lineage, nodes, span, time.time() - started)
        record["quarantined_rows"] = quarantined
        if quarantined:
            record["quarantine"] = config.layout.quarantine_dir(span)
        run_summary.append(config.runs_log, record)
        return record


def local_platform(config: PipelineConfig) -> Platform:
    """This machine: the span pinned, the window a number, sqlite ML Metadata in the home."""
    from tfx.proto import range_config_pb2

    span = span_number(config.span)
    return Platform(
        range_config=range_config_pb2.RangeConfig(
            static_range=range_config_pb2.StaticRange(start_span_number=span, end_span_number=span)),
        window_size=config.window,
        metadata_connection_config=metadata.sqlite_metadata_connection_config(
            config.metadata_path),
        evaluator_hook=False,
    )


def _find(error: BaseException, kind: type) -> BaseException | None:
    seen = set()
    while error is not None and id(error) not in seen:
        if isinstance(error, kind):
            return error
        seen.add(id(error))
        error = error.__cause__ or error.__context__
    return None
