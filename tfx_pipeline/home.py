"""A home's layout: where ML Metadata, pipeline outputs, served models and records live.

    HOME/metadata.sqlite            ML Metadata (local runs)
    HOME/pipeline/                  pipeline outputs, one folder per component and execution
    HOME/span_index/                SpanWindow's index of validated spans
    HOME/serving/MODEL/VERSION/     what the model server loads
    HOME/retired/MODEL/VERSION/     versions a rollback took out of serving
    HOME/trash/                     what retention is deleting (moved here first, in one rename)
    HOME/quarantine/SPAN/           malformed rows of a span (and quarantine/cleaned/)
    HOME/runs.jsonl                 one JSON record per run, rollback or rejected span
    HOME/interval                   "hour" in an hourly home (none in a daily one: tfx_pipeline/spans.py)
    HOME/ingest/SPAN/               an hourly span as ExampleGen reads it, during its run only
    HOME/gc.jsonl                   one JSON record per retention pass (tfx_pipeline/retention.py)

Every module that needs one of these paths asks a `Home`; none joins them by hand.
"""
from __future__ import annotations

import dataclasses
import json
import os


@dataclasses.dataclass(frozen=True)
class Home:
    root: str

    def __post_init__(self) -> None:
        # Local paths become absolute; URIs (gs://, s3://, hdfs://) stay as they are.
        if "://" not in self.root:
            object.__setattr__(self, "root", os.path.abspath(self.root))

    def _join(self, *parts: str) -> str:
        return os.path.join(self.root, *parts)

    @property
    def metadata_path(self) -> str:
        return self._join("metadata.sqlite")

    @property
    def pipeline_root(self) -> str:
        return self._join("pipeline")

    @property
    def span_index_dir(self) -> str:
        return self._join("span_index")

    @property
    def runs_log(self) -> str:
        return self._join("runs.jsonl")

    @property
    def ingest_dir(self) -> str:
        return self._join("ingest")

    @property
    def gc_log(self) -> str:
        """Retention's records, apart from runs.jsonl so that file stays one record per run."""
        return self._join("gc.jsonl")

    def serving_dir(self, model_name: str) -> str:
        return self._join("serving", model_name)

    def retired_dir(self, model_name: str) -> str:
        return self._join("retired", model_name)

    @property
    def trash_dir(self) -> str:
        """Where retention moves a version directory (one rename, same filesystem) before deleting it."""
        return self._join("trash")

    def quarantine_dir(self, name: str) -> str:
        """A span's quarantine (`name` = the span) or the cleaned copies' folder."""
        return self._join("quarantine", name)

    def runs(self) -> list[dict]:
        """The records of runs.jsonl, oldest first; a torn last line (a crash mid-write) is skipped."""
        return read_runs(self.runs_log)


def read_runs(runs_log: str) -> list[dict]:
    if not os.path.exists(runs_log):
        return []
    records = []
    with open(runs_log, encoding="utf-8") as f:
        for line in f:
            line = line.strip()
            if not line:
                continue
            try:
                record = json.loads(line)
            except json.JSONDecodeError:
                continue
            if isinstance(record, dict):
                records.append(record)
    return records
