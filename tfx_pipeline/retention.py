"""Retention: a home that does not grow without bound, and never loses what the loop still needs.

Every run adds a served version (about 3.4 MB for the default ranker) and about 5.6 MB of pipeline
outputs, and open-source TFX and ML Metadata delete nothing (tensorflow/tfx-addons#179,
google/ml-metadata#69). `plan` decides and `apply` does: `freshrank gc --dry-run` prints the plan,
and every local run applies it after its record is written (`after_run`, `--keep-versions`).

What stays; everything else of these kinds goes:

- Served versions (`HOME/serving/MODEL/`): the newest K (`--keep-versions`: the rollback targets),
  the newest one (what a latest-1 model server serves) and the version of the newest blessed model
  (the next warm start and the Evaluator's baseline). Unfinished version folders and hidden
  `.tmp-*` push folders are never touched (recovery owns those).
- Retired versions (`HOME/retired/MODEL/`): those newer than the oldest kept served version.
- Pipeline outputs (`HOME/pipeline/NODE/KEY/EXECUTION/`): all outputs of the newest run and of
  every run whose span is inside the training window (the newest WINDOW spans of the span index:
  the next run's window is a subset, and their examples and statistics are what SpanWindow reads).
  Of an older run only what something still reads: the Model, ModelBlessing and PushedModel of
  every version still in a serving folder (a rollback makes that model the warm start again), the
  newest blessed model and its blessing (the warm start and baseline, read from ML Metadata), and
  any examples or statistics the span index points at for a window span.
- The span index keeps the window's spans. The quarantine's cleaned copy of a span (a full copy of
  its good rows) goes with the span's index entry; `bad_rows.jsonl` always stays.
- ML Metadata loses nothing: every artifact whose folder is removed gets state DELETED and a
  `deleted_by` reason (the maintainers' advice, google/ml-metadata#38), so lineage, run summaries
  and `freshrank tensorboard` still read it, and TFX's input resolution (which resolves LIVE
  artifacts only) never hands it to a run.

Order, so that a rerun finishes what a killed gc started: ML Metadata first, then files. A served
version is moved into `HOME/trash/` with one `os.rename` (same filesystem) and deleted there, so a
model server polling the base path sees a version whole or not at all and never loads a
half-deleted one; a server that had loaded it keeps it in memory until it unloads it (a version no
longer on disk is no longer aspired). The caller holds the home lock: no run pushes meanwhile.
"""
from __future__ import annotations

import dataclasses
import logging
import os
import shutil
import time

from serving.versions import finished_versions, parse_version
from tfx_pipeline import span_index
from tfx_pipeline.config import DEFAULT_KEEP_VERSIONS
from tfx_pipeline.home import Home
from tfx_pipeline.lineage import Lineage, custom

log = logging.getLogger("freshrank.retention")

VERSION, RETIRED, OUTPUT, INDEX, CLEANED, TRASH = "version", "retired", "output", "span_index", "cleaned", "trash"
SYSTEM_DIR = ".system"
EXAMPLE_GEN = "CsvExampleGen"
SPAN_WINDOW_TYPE = "SpanWindow"


class RetentionError(RuntimeError):
    """Retention cannot run on this home; the message says why and what to do."""


@dataclasses.dataclass
class Removal:
    kind: str
    path: str
    bytes: int
    why: str
    artifact_ids: list[int] = dataclasses.field(default_factory=list)


@dataclasses.dataclass
class Plan:
    home: str
    model_name: str
    keep_versions: int
    window: int | None  # None: no run has built a window yet, so no pipeline output is judged
    kept_versions: dict[int, list[str]]  # version -> why it stays
    window_spans: list[str]
    removals: list[Removal]
    delete_artifacts: dict[int, str]  # artifact id -> why (also artifacts whose folder is already gone)
    kept_artifacts: dict[int, str]  # artifact id of an old run's output -> why it stays

    @property
    def bytes_freed(self) -> int:
        return sum(r.bytes for r in self.removals)

    def of_kind(self, kind: str) -> list[Removal]:
        return [r for r in self.removals if r.kind == kind]

    def lines(self) -> list[str]:
        """The plan as `freshrank gc` prints it: what stays, then one line per removal, then the total."""
        kept = ", ".join(f"{v} ({'; '.join(why)})" for v, why in sorted(self.kept_versions.items()))
        out = [f"keep versions of {self.model_name}: {kept or 'none (nothing pushed yet)'}"]
        if self.window is None:
            out.append("window: no run has built one yet, so no pipeline output is removed")
        else:
            out.append(f"window ({self.window} spans): {', '.join(self.window_spans) or 'none'}")
        for artifact_id, why in sorted(self.kept_artifacts.items()):
            out.append(f"keep artifact {artifact_id}: {why}")
        for r in self.removals:
            out.append(f"remove {r.kind:<10} {_size(r.bytes):>9}  {r.path}  ({r.why})")
        out.append(f"ML Metadata: {len(self.delete_artifacts)} artifact(s) to mark DELETED")
        out.append(f"total: {len(self.removals)} path(s), {_size(self.bytes_freed)} ({self.bytes_freed} bytes)")
        return out


def plan(home: str, model_name: str, keep_versions: int = DEFAULT_KEEP_VERSIONS, window: int | None = None) -> Plan:
    """What retention would remove from `home` now. `window`: the training window in spans (default:
    the one the newest run used, from ML Metadata). Reads only; `apply` does the work."""
    if keep_versions < 1:
        raise RetentionError(f"--keep-versions must be at least 1 (the newest version always stays), got {keep_versions}")
    layout = Home(home)
    if "://" in layout.root:
        raise RetentionError(f"{home} is not a local home; retention runs on local homes only "
                             "(a compiled pipeline's store belongs to its orchestrator)")
    if not os.path.isdir(layout.root):
        raise RetentionError(f"{home} does not exist; pass the --home of `freshrank run`")
    lineage = Lineage.open(layout.metadata_path) if os.path.exists(layout.metadata_path) else None
    pushes = lineage.pushes() if lineage else []
    newest_blessed = lineage.latest_blessed_model() if lineage else None

    on_disk = _version_dirs(layout.serving_dir(model_name))
    kept = _kept_versions(sorted(on_disk), keep_versions, pushes, newest_blessed, model_name)
    removals = [Removal(VERSION, on_disk[v], _bytes(on_disk[v]), f"older than the newest {keep_versions} versions")
                for v in sorted(on_disk) if v not in kept]
    if kept:
        oldest_kept = min(kept)
        retired_dir = layout.retired_dir(model_name)
        for name in sorted(_listdir(retired_dir)):
            number = parse_version(name.split("-", 1)[0])
            if number is not None and number < oldest_kept:
                path = os.path.join(retired_dir, name)
                removals.append(Removal(RETIRED, path, _bytes(path), f"retired, older than kept version {oldest_kept}"))
    for name in sorted(_listdir(layout.trash_dir)):
        path = os.path.join(layout.trash_dir, name)
        removals.append(Removal(TRASH, path, _bytes(path), "left by a gc that did not finish"))

    if window is None and lineage is not None:
        recorded = lineage.last_execution_property(SPAN_WINDOW_TYPE, "window_size")
        window = int(recorded) if recorded else None
    steps = Plan(layout.root, model_name, keep_versions, window, kept, [], removals, {}, {})
    if lineage is not None and window is not None:
        removed_versions = {(model_name, v) for v in on_disk if v not in kept}
        _plan_outputs(steps, layout, lineage, pushes, newest_blessed, removed_versions)
    return steps


def _kept_versions(versions: list[int], keep: int, pushes, newest_blessed, model_name: str) -> dict[int, list[str]]:
    kept: dict[int, list[str]] = {v: [f"newest {keep}"] for v in versions[-keep:]}
    if versions:
        kept[versions[-1]].append("serving")
    if newest_blessed is not None:
        for push in pushes:
            if push.model is not None and push.model.id == newest_blessed[0].id and \
                    _model_of(push) == model_name and push.version in versions:
                kept.setdefault(push.version, []).append("newest blessed: the next warm start and baseline")
    return kept


def _plan_outputs(steps: Plan, layout: Home, lineage: Lineage, pushes, newest_blessed,
                  removed_versions: set[tuple[str, int]]) -> None:
    """Adds the old runs' pipeline outputs, span index entries and cleaned copies to the plan."""
    protected: dict[int, str] = {}
    protected_paths: dict[str, str] = {}  # NODE/KEY/EXECUTION -> why
    for push in pushes:
        model_name = _model_of(push)
        if (model_name, push.version) in removed_versions:
            continue
        if os.path.isdir(os.path.join(layout.serving_dir(model_name), str(push.version))):
            for artifact in (push.model, push.blessing, push.pushed_model):
                if artifact is not None:
                    protected[artifact.id] = f"version {push.version} of {model_name} is still served (a rollback target)"
    if newest_blessed is not None:
        for artifact in newest_blessed:
            protected.setdefault(artifact.id, "the newest blessed model: the next warm start and baseline")
    index = span_index.read_entries(layout.span_index_dir)
    in_window, outside = index[-steps.window:], index[:-steps.window]
    steps.window_spans = [str(entry.get("date", entry["span"])) for _, entry in in_window]
    for _, entry in in_window:
        for key in ("examples_uri", "statistics_uri"):
            if entry.get(key):
                protected_paths[_tail(entry[key])] = f"span {entry.get('date')} is in the window"
    for artifact in lineage.store.get_artifacts_by_id(list(protected)):
        protected_paths.setdefault(_tail(artifact.uri), protected[artifact.id])

    oldest_span = in_window[0][1]["span"] if in_window else None
    # Only runs with something left to judge (a LIVE output, or a folder on disk): a run collected
    # before is not walked again, so a gc costs the same after a year of hourly runs as after a day.
    newest = lineage.latest_run_id()
    candidates = lineage.live_output_executions() | _executions_on_disk(layout)
    for context in lineage.run_contexts_of(candidates):
        if context.id == newest:  # the newest run always keeps everything
            continue
        nodes = lineage.run_nodes(context.id)
        span = _run_span(nodes)
        if span is None:
            why = f"run {context.name} ingested no span"
        elif oldest_span is not None and span < oldest_span:
            why = f"run {context.name} (span {span}) is older than the window"
        else:
            continue
        for node, record in sorted(nodes.items()):
            _plan_execution(steps, layout, node, record, protected, protected_paths, why)
    for path, entry in outside:
        steps.removals.append(Removal(INDEX, path, _bytes(path), f"span {entry.get('date')} left the window"))
        cleaned = layout.quarantine_dir(os.path.join("cleaned", str(entry.get("date"))))
        if entry.get("date") and os.path.isdir(cleaned):
            steps.removals.append(Removal(CLEANED, cleaned, _bytes(cleaned),
                                          f"cleaned copy of span {entry.get('date')}, which left the window"))


def _plan_execution(steps: Plan, layout: Home, node: str, record, protected: dict[int, str],
                    protected_paths: dict[str, str], why: str) -> None:
    execution_id = str(record.execution.id)
    for artifacts in record.outputs.values():
        for artifact in artifacts:
            reason = protected.get(artifact.id) or protected_paths.get(_tail(artifact.uri))
            if reason:
                steps.kept_artifacts[artifact.id] = f"{_tail(artifact.uri)}: {reason}"
            elif artifact.state != artifact.DELETED:
                steps.delete_artifacts[artifact.id] = why
    # The folders themselves, found by TFX's layout rather than by URI: a killed execution's
    # outputs were never published, and a URI may name the home where the run happened.
    node_dir = os.path.join(layout.pipeline_root, node)
    for key in sorted(_listdir(node_dir)):
        if key == SYSTEM_DIR:
            continue
        path = os.path.join(node_dir, key, execution_id)
        tail = f"{node}/{key}/{execution_id}"
        if os.path.isdir(path) and tail not in protected_paths:
            ids = [a.id for found in record.outputs.values() for a in found if _tail(a.uri) == tail]
            steps.removals.append(Removal(OUTPUT, path, _bytes(path), why, ids))
    scratch = os.path.join(node_dir, SYSTEM_DIR, "executor_execution", execution_id)
    if os.path.isdir(scratch):
        steps.removals.append(Removal(OUTPUT, scratch, _bytes(scratch), why))


def apply(steps: Plan) -> dict:
    """Does what the plan says (ML Metadata first, then files); returns the record for gc.jsonl.
    A path that cannot be removed is reported in `errors` and the rest goes on."""
    started = time.time()
    layout = Home(steps.home)
    stamp = time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime())
    deleted: list[int] = []
    if steps.delete_artifacts:
        lineage = Lineage.open(layout.metadata_path, writable=True)
        by_reason: dict[str, list[int]] = {}
        for artifact_id, why in steps.delete_artifacts.items():
            by_reason.setdefault(why, []).append(artifact_id)
        for why, ids in by_reason.items():
            deleted += lineage.mark_deleted(ids, f"freshrank gc {stamp}: {why}")
    errors, freed = [], 0
    for removal in steps.removals:
        try:
            _remove(removal, layout)
            freed += removal.bytes
        except OSError as error:
            errors.append(f"{removal.path}: {error}")
            log.error("gc could not remove %s: %s", removal.path, error)
    return {
        "event": "gc", "status": "partial" if errors else "done", "model_name": steps.model_name,
        "keep_versions": steps.keep_versions, "window": steps.window,
        "kept_versions": sorted(steps.kept_versions),
        "removed_versions": [int(os.path.basename(r.path)) for r in steps.of_kind(VERSION)],
        "removed_retired": [os.path.basename(r.path) for r in steps.of_kind(RETIRED)],
        "removed_paths": len(steps.removals) - len(errors), "deleted_artifacts": len(deleted),
        "bytes_freed": freed, "home_bytes": _bytes(layout.root), "errors": errors,
        "seconds": round(time.time() - started, 3), "time": stamp,
    }


def collect(home: str, model_name: str, keep_versions: int, window: int | None = None) -> dict:
    """Plan and apply; the caller holds the home lock."""
    return apply(plan(home, model_name, keep_versions, window))


def after_run(home: str, model_name: str, keep_versions: int, window: int) -> dict | None:
    """Retention after a run (keep_versions 0: off). Never raises: a failed gc must not fail a run
    that pushed; the failure is logged with the fix and recorded in HOME/gc.jsonl as `{"event": "gc",
    "status": "failed"}`. Every pass is recorded there, not in runs.jsonl (one record per run)."""
    if not keep_versions:
        return None
    from tfx_pipeline import run_summary

    try:
        record = collect(home, model_name, keep_versions, window)
        log.info("gc: removed versions %s and %d path(s), %s freed; the home holds %s",
                 record["removed_versions"] or "none", record["removed_paths"], _size(record["bytes_freed"]),
                 _size(record["home_bytes"]))
    except Exception as error:  # noqa: BLE001 - reported, never fatal to the run
        log.exception("gc after the run failed")
        record = {"event": "gc", "status": "failed", "model_name": model_name, "error": f"{type(error).__name__}: {error}",
                  "time": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime())}
        log.error("gc failed (the run itself is fine): %s; run `freshrank gc --home %s --dry-run` to see the plan, "
                  "then without --dry-run once fixed", record["error"], home)
    if record.get("errors"):
        log.error("gc could not remove %d path(s); rerun `freshrank gc --home %s`", len(record["errors"]), home)
    try:
        run_summary.append(Home(home).gc_log, record)
    except OSError as error:
        log.error("could not record the gc in gc.jsonl: %s", error)
    return record


def _remove(removal: Removal, layout: Home) -> None:
    path = os.path.abspath(removal.path)
    if not path.startswith(layout.root + os.sep):
        raise OSError(f"refusing to remove {path}: it is not inside the home {layout.root}")
    if not os.path.lexists(path):
        return
    if removal.kind in (VERSION, RETIRED):
        # One rename out of the base path (a server sees the version whole or not at all), then delete.
        os.makedirs(layout.trash_dir, exist_ok=True)
        target = os.path.join(layout.trash_dir, f"{removal.kind}-{os.path.basename(os.path.dirname(path))}-"
                                                f"{os.path.basename(path)}-{os.getpid()}-{time.time_ns()}")
        os.rename(path, target)
        path = target
    if os.path.isdir(path) and not os.path.islink(path):
        shutil.rmtree(path)
    else:
        os.remove(path)


def _executions_on_disk(layout: Home) -> set[int]:
    """Execution ids that still have a folder under the pipeline root (NODE/KEY/ID, NODE/.system/...)."""
    found = set()
    for node in _listdir(layout.pipeline_root):
        node_dir = os.path.join(layout.pipeline_root, node)
        for key in _listdir(node_dir):
            folder = os.path.join(node_dir, key, "executor_execution") if key == SYSTEM_DIR else os.path.join(node_dir, key)
            found |= {int(name) for name in _listdir(folder) if name.isdigit()}
    return found


def _run_span(nodes) -> int | None:
    """The span a run ingested: its ExampleGen's examples carry it (as does any output with a `span`,
    SpanWindow's window for one, should the ingest node change)."""
    ordered = sorted(nodes.items(), key=lambda item: item[0] != EXAMPLE_GEN)
    for _, record in ordered:
        for artifacts in record.outputs.values():
            for artifact in artifacts:
                span = custom(artifact, "span")
                if span is not None:
                    return int(span)
    return None


def _model_of(push) -> str:
    """The model name a push went to: `.../serving/<model>/<version>`."""
    return os.path.basename(os.path.dirname(push.destination.rstrip("/")))


def _version_dirs(serving_dir: str) -> dict[int, str]:
    """Finished versions -> their folder (as the model server and rollback see them)."""
    finished = set(finished_versions(serving_dir))
    found = {}
    for name in sorted(_listdir(serving_dir)):
        number = parse_version(name)
        if number in finished:
            found.setdefault(number, os.path.join(serving_dir, name))
    return found


def _tail(uri: str) -> str:
    """NODE/KEY/EXECUTION of a pipeline output URI, wherever the home lives."""
    return "/".join(uri.rstrip("/").split("/")[-3:])


def _listdir(directory: str) -> list[str]:
    try:
        return os.listdir(directory)
    except (FileNotFoundError, NotADirectoryError):
        return []


def _bytes(path: str) -> int:
    """Bytes of the files under `path` (symbolic links not followed), as `du -sb` counts them."""
    if not os.path.lexists(path):
        return 0
    if not os.path.isdir(path) or os.path.islink(path):
        return os.lstat(path).st_size
    total = 0
    for root, _dirs, files in os.walk(path):
        for name in files:
            try:
                total += os.lstat(os.path.join(root, name)).st_size
            except FileNotFoundError:
                continue
    return total


def home_bytes(home: str) -> int:
    return _bytes(Home(home).root)


def _size(count: int) -> str:
    return f"{count / 1e6:.1f} MB" if count >= 100_000 else f"{count / 1e3:.1f} kB"
