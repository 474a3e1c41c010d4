"""`freshrank watch`: run the pipeline once for every complete span that has no run yet.

The run log (`<home>/runs.jsonl`, appended and fsynced after each run) is the ledger: a span
with a record there is done. A run killed half-way leaves no record, so the next pass runs
that span again from the start; the home lock keeps two watchers (or a watcher and a manual
`freshrank run`) from working on one home at once. Spans run oldest first, and a failure
stops the pass so no later span is trained on a window with a hole in it.

Late and missing spans (docs/hourly.md), which hourly landing makes common:

- late: in an hourly home, a span that lands after a newer span already ran is never run on its
  own (its model would be trained to an older hour than the one serving: the model would go back
  in time). It is read into the next run beside that run's own span (tfx_pipeline/hourly_ingest.py),
  whose record names it under `absorbed`, which makes it done. Until a newer span lands it waits,
  and watch says so. A daily home keeps running a late day on its own, as it always did.
- missing: a span absent from the sequence while a newer one is complete is a gap. Once the span
  after the gap has been complete for longer than `gap_alert` seconds, watch reports the gap, once
  per missing span, naming it, instead of going on silently. Newer spans are not held up; if the
  missing span lands later it is a late span.
"""
from __future__ import annotations

import dataclasses
import json
import os
import re
import time
from collections.abc import Callable

from tfx_pipeline import spans
from tfx_pipeline.home import read_runs
from tfx_pipeline.spans import Span

# How long a gap may stand before watch reports it: an hour after the next span landed.
DEFAULT_GAP_ALERT_SECONDS = 3600.0
_DURATION = re.compile(r"^(\d+(?:\.\d+)?)([smhd]?)$")
_UNIT_SECONDS = {"": 1, "s": 1, "m": 60, "h": 3600, "d": 86400}


def parse_duration(text: str) -> float:
    """`90`, `90s`, `30m`, `2h`, `1d` -> seconds."""
    match = _DURATION.match(text.strip().lower())
    if not match:
        raise ValueError(f"{text!r} is not a duration: want a number with s, m, h or d (e.g. 30m, 2h)")
    return float(match.group(1)) * _UNIT_SECONDS[match.group(2)]


def done_spans(runs_log: str) -> set[str]:
    """Spans with a run record (pushed, not blessed or rejected), and the late spans a run absorbed
    or left out as malformed; a torn line is not a finished run."""
    done: set[str] = set()
    for record in read_runs(runs_log):
        if "span" in record:
            done.add(record["span"])
            done.update(record.get("absorbed", []))
            done.update(record.get("late_rejected", {}))
    return done


def pending_spans(data_root: str, runs_log: str, interval: str | None = None) -> list[Span]:
    done = done_spans(runs_log)
    return [span for span in spans.complete_spans(data_root, interval) if span.isoformat() not in done]


@dataclasses.dataclass
class Plan:
    """One pass: the spans to run oldest first, and the late spans the first of them absorbs."""

    run: list[Span]
    late: list[Span]
    newest_done: Span | None


def plan(data_root: str, runs_log: str, interval: str | None = None) -> Plan:
    interval = spans.data_interval(data_root, interval)
    todo = pending_spans(data_root, runs_log, interval)
    newest_done = _newest_run(runs_log, interval)
    if interval != spans.HOUR or newest_done is None:
        return Plan(todo, [], newest_done)
    late = [span for span in todo if span < newest_done]
    return Plan([span for span in todo if span > newest_done], late, newest_done)


def _newest_run(runs_log: str, interval: str) -> Span | None:
    newest = None
    for record in read_runs(runs_log):
        try:
            span = spans.parse_span(record["span"]) if "span" in record else None
        except ValueError:
            continue
        if span is not None and span.interval == interval and (newest is None or span > newest):
            newest = span
    return newest


def gaps(data_root: str, interval: str | None, older_than: float, now: float | None = None) -> list[tuple[Span, Span]]:
    """(missing span, the complete span after it) for every hole in the sequence of complete spans
    whose next span has been complete for more than `older_than` seconds."""
    interval = spans.data_interval(data_root, interval)
    now = time.time() if now is None else now
    landed = spans.complete_spans(data_root, interval)
    found = []
    for before, after in zip(landed, landed[1:], strict=False):
        if after.number - before.number < 2:
            continue
        marker = os.path.join(data_root, after.relpath, spans.SUCCESS_MARKER)
        if now - os.path.getmtime(marker) > older_than:
            found += [(before.shifted(k), after) for k in range(1, after.number - before.number)]
    return found


def _say_gaps(found: list[tuple[Span, Span]], reported: set[Span], gap_alert: float, data_root: str,
              say: Callable[[str], None]) -> None:
    new = [(missing, after) for missing, after in found if missing not in reported]
    if not new:
        return
    reported.update(missing for missing, _ in new)
    names = ", ".join(missing.isoformat() for missing, _ in new)
    say(f"watch: gap: span(s) {names} missing from {data_root} for over {_duration(gap_alert)} while newer "
        f"span(s) landed (first after the gap: {new[0][1]}); newer spans run without them. Land them "
        f"(write {spans.SUCCESS_MARKER} last) and they join the next run as late spans, or ignore this "
        f"if the hour had no traffic")


def _duration(seconds: float) -> str:
    for unit, size in (("d", 86400), ("h", 3600), ("m", 60)):
        if seconds >= size and seconds % size == 0:
            return f"{int(seconds // size)}{unit}"
    return f"{seconds:g}s"


def watch(
    data_root: str,
    runs_log: str,
    run_span: Callable[..., dict],
    poll_seconds: float,
    once: bool,
    say: Callable[[str], None],
    interval: str | None = None,
    gap_alert: float = DEFAULT_GAP_ALERT_SECONDS,
) -> int:
    """Returns the number of spans run; with `once`, after one pass.

    `run_span(span, absorbed)` runs one span with the late spans it absorbs (a tuple, often empty).
    """
    ran = 0
    reported: set[Span] = set()
    while True:
        _say_gaps(gaps(data_root, interval, gap_alert), reported, gap_alert, data_root, say)
        todo = plan(data_root, runs_log, interval)
        if todo.late:
            names = ", ".join(s.isoformat() for s in todo.late)
            joins = f"they join the run of {todo.run[0]}" if todo.run else "they join the next span's run once it lands"
            say(f"watch: late span(s) {names} landed after {todo.newest_done} ran: not run on their own "
                f"(that would take the model back in time); {joins}")
        if todo.run:
            say(f"watch: {len(todo.run)} span(s) to run: {', '.join(d.isoformat() for d in todo.run)}")
        late = tuple(todo.late)
        for span in todo.run:
            record = run_span(span, late) if late else run_span(span)
            ran += 1
            taken = set(record.get("absorbed", [])) | set(record.get("late_rejected", {}))
            late = tuple(s for s in late if s.isoformat() not in taken)
            say(json.dumps(record, sort_keys=True, ensure_ascii=False))
        if once:
            return ran
        time.sleep(poll_seconds)
