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
import os
import time
from collections.abc import Callable

from tfx_pipeline import spans


def done_spans(runs_log: str) -> set[str]:
    if not os.path.exists(runs_log):
        return set()
    done = set()
    with open(runs_log, encoding="utf-8") as f:
        for line in f:
            line = line.strip()
            if not line:
                continue
            try:
                done.add(json.loads(line)["span"])
            except (ValueError, KeyError):
                continue  # a torn last line from a crash is not a finished run
    return done


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
