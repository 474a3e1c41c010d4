"""`freshrank watch`: run the pipeline once for every complete span that has no run yet.

The run log (`<home>/runs.jsonl`, appended and fsynced after each run) is the ledger: a span
with a record there is done. A run killed half-way leaves no record, so the next pass runs
that span again from the start; the home lock keeps two watchers (or a watcher and a manual
`freshrank run`) from working on one home at once. Spans run oldest first, and a failure
stops the pass so no later span is trained on a window with a hole in it.
"""
from __future__ import annotations

import datetime
import json
import time
from collections.abc import Callable

from tfx_pipeline import spans
from tfx_pipeline.home import read_runs


def done_spans(runs_log: str) -> set[str]:
    """Spans with a run record (pushed, not blessed or rejected); a torn line is not a finished run."""
    return {record["span"] for record in read_runs(runs_log) if "span" in record}


def pending_spans(data_root: str, runs_log: str) -> list[datetime.date]:
    done = done_spans(runs_log)
    return [day for day in spans.complete_spans(data_root) if day.isoformat() not in done]


def watch(
    data_root: str,
    runs_log: str,
    run_span: Callable[[datetime.date], dict],
    poll_seconds: float,
    once: bool,
    say: Callable[[str], None],
) -> int:
    """Returns the number of spans run; with `once`, after one pass."""
    ran = 0
    while True:
        todo = pending_spans(data_root, runs_log)
        if todo:
            say(f"watch: {len(todo)} span(s) to run: {', '.join(d.isoformat() for d in todo)}")
        for day in todo:
            record = run_span(day)
            ran += 1
            say(json.dumps(record, sort_keys=True, ensure_ascii=False))
        if once:
            return ran
        time.sleep(poll_seconds)
