"""Running the pipeline once on this machine: LocalDagRunner, sqlite ML Metadata, DirectRunner.

Under the home lock a run first checks the span is of the home's interval (tfx_pipeline/spans.py),
cleans up after a killed predecessor (tfx_pipeline/recovery.py), then quarantines malformed CSV rows
(tfx_pipeline/quarantine.py; an hourly span and the late spans it absorbs are staged for
ExampleGen by tfx_pipeline/hourly_ingest.py), then runs the pipeline. Once
the run's record is written, retention removes what no later run, rollback or server needs
(tfx_pipeline/retention.py, `--keep-versions`; a failed gc is reported, never fails the run).
"""
from __future__ import annotations

import contextlib
import dataclasses
import logging
import sys
import time

from tfx.orchestration import metadata
from tfx.orchestration.local.local_dag_runner import LocalDagRunner

from tfx_pipeline import hourly_ingest, quarantine, recovery, retention, run_summary, spans
from tfx_pipeline.config import PipelineConfig
from tfx_pipeline.data_gate import DataRejected
from tfx_pipeline.home_lock import HomeLocked, home_lock  # noqa: F401  (HomeLocked: re-exported for the CLI)
from tfx_pipeline.lineage import Lineage
from tfx_pipeline.pipeline import Platform, create_pipeline

log = logging.getLogger("freshrank.run")


def run_once(config: PipelineConfig) -> dict:
    """Runs the pipeline for `config.span`; returns the run record (already appended to runs.jsonl)."""
    import tensorflow_text  # noqa: F401  (registers the ranker's ops for the in-process Evaluator)

    started = time.time()
    span = config.span.isoformat()
    with home_lock(config.home):
        spans.claim_home(config.home, config.span)
        recovery.recover(config.metadata_path, config.serving_dir)
        late: dict = {}
        try:
            if config.interval == spans.HOUR:
                staged = hourly_ingest.stage(config.data_root, config.span, config.absorbed, config.home,
                                             config.max_bad_row_share)
                ingest_root, quarantined = staged.ingest_root, staged.quarantined_rows
                late = {key: value for key, value in (("absorbed", staged.absorbed),
                                                      ("late_rejected", staged.late_rejected)) if value}
            else:
                ingest_root, quarantined = quarantine.gate_span(
                    config.data_root, span, config.home, config.max_bad_row_share
                )
        except quarantine.SpanMalformed as malformed:
            record = run_summary.rejected(span, malformed.problems, time.time() - started)
            record["quarantine"] = malformed.quarantine_dir
            _record(config, record)
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
            record["quarantined_rows"] = quarantined  # late spans stay pending: the next run absorbs them
            _record(config, record)
            return record
        finally:
            if config.interval == spans.HOUR:
                hourly_ingest.clear(config.home)  # ExampleGen holds its own copy now
        lineage = Lineage.open(config.metadata_path)
        nodes = lineage.run_nodes(lineage.latest_run_id())
        record = run_summary.summarize(lineage, nodes, span, time.time() - started)
        record["quarantined_rows"] = quarantined
        if quarantined:
            record["quarantine"] = config.layout.quarantine_dir(span)
        record.update(late)
        _record(config, record)
        return record


def _record(config: PipelineConfig, record: dict) -> None:
    """Appends the run's record, then applies retention (the record first: a gc killed half-way
    must not make `watch` run the span again)."""
    run_summary.append(config.runs_log, record)
    retention.after_run(config.home, config.model_name, config.keep_versions, config.window)


def local_platform(config: PipelineConfig) -> Platform:
    """This machine: the span pinned, the window a number, sqlite ML Metadata in the home."""
    from tfx.proto import range_config_pb2

    span = spans.span_number(config.span)
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
