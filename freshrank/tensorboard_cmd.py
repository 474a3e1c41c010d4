"""TensorBoard over every Trainer run of a home, one run per span, to compare the updates.

Each Trainer execution writes Keras TensorBoard logs (`train/`, `validation/`) and an `hparams/`
run into its own `HOME/pipeline/Trainer/model_run/<execution id>/`. Which span an execution
trained for is recorded twice: in `HOME/runs.jsonl` (`model_uri` ends in the same execution id)
and in ML Metadata (the Trainer's input window carries the span). Both are read; the result is a
TensorBoard `--logdir_spec` naming each directory `span_YYYY-MM-DD` (with `_<execution id>`
added when a span was trained more than once), so TensorBoard shows `span_2026-11-02/validation`
next to `span_2026-11-01/validation`.
"""
from __future__ import annotations

import dataclasses
import os

from tfx_pipeline.home import Home
from tfx_pipeline.spans import DAY, Span, home_interval

TRAINER_NODE = "Trainer"


@dataclasses.dataclass(frozen=True)
class TrainerRun:
    span: str  # YYYY-MM-DD, or YYYY-MM-DDTHH in an hourly home
    execution_id: int
    logdir: str

    @property
    def sort_key(self):
        return (self.span, self.execution_id)


def runs_from_records(home: str) -> list[TrainerRun]:
    """Trainer runs named in HOME/runs.jsonl whose log directory exists."""
    runs = []
    for record in Home(home).runs():
        model_uri = record.get("model_uri")
        span = record.get("span")
        if not model_uri or not span:
            continue
        model_uri = model_uri.rstrip("/")
        execution = os.path.basename(model_uri)
        # <pipeline>/Trainer/model/<id> -> <pipeline>/Trainer/model_run/<id>
        logdir = os.path.join(os.path.dirname(os.path.dirname(model_uri)), "model_run", execution)
        if execution.isdigit() and os.path.isdir(logdir):
            runs.append(TrainerRun(span, int(execution), logdir))
    return runs


def runs_from_metadata(home: str) -> list[TrainerRun]:
    """Trainer executions in HOME/metadata.sqlite with their window's span and model_run directory."""
    path = Home(home).metadata_path
    if not os.path.exists(path):
        return []
    from tfx_pipeline.lineage import Lineage, custom

    lineage = Lineage.open(path)
    interval = home_interval(home) or DAY  # the window's `span` is a number of the home's interval
    runs = []
    for execution in lineage.store.get_executions():
        if lineage.node_of(execution.id) != TRAINER_NODE:
            continue
        inputs, outputs = lineage.artifacts_of(execution.id)
        window = (inputs.get("examples") or [None])[0]
        model_run = (outputs.get("model_run") or [None])[0]
        span = custom(window, "span") if window is not None else None
        if span is None or model_run is None or not os.path.isdir(model_run.uri):
            continue
        runs.append(TrainerRun(Span(int(span), interval).isoformat(), execution.id, model_run.uri))
    return runs


def trainer_runs(home: str) -> list[TrainerRun]:
    """Every Trainer run of HOME found in runs.jsonl or ML Metadata, by span then execution."""
    home = os.path.abspath(home)
    by_dir: dict[str, TrainerRun] = {}
    for run in runs_from_metadata(home) + runs_from_records(home):
        by_dir.setdefault(os.path.realpath(run.logdir), run)
    return sorted(by_dir.values(), key=lambda r: r.sort_key)


def run_names(runs: list[TrainerRun]) -> dict[str, str]:
    """TensorBoard run name -> log directory: `span_<day>`, `span_<day>_<id>` for a span trained twice."""
    per_span: dict[str, int] = {}
    for run in runs:
        per_span[run.span] = per_span.get(run.span, 0) + 1
    names = {}
    for run in runs:
        name = f"span_{run.span}" if per_span[run.span] == 1 else f"span_{run.span}_{run.execution_id}"
        names[name] = run.logdir
    return names


def logdir_spec(names: dict[str, str]) -> str:
    for name, logdir in names.items():
        if "," in logdir or ":" in name:
            raise ValueError(f"{logdir!r} cannot be named in a --logdir_spec (no ',' in paths)")
    return ",".join(f"{name}:{logdir}" for name, logdir in names.items())


def tensorboard_argv(spec: str, port: int, host: str) -> list[str]:
    return ["tensorboard", "--logdir_spec", spec, "--port", str(port), "--host", host]


def _ensure_pkg_resources() -> None:
    """TensorBoard 2.16 imports `pkg_resources`, which setuptools >= 81 no longer ships.

    Only two functions are used (plugin entry points and version parsing); when the module is
    missing they are provided from importlib.metadata and packaging, which is what they wrap.
    """
    try:
        import pkg_resources  # noqa: F401
    except ModuleNotFoundError:
        import importlib.metadata
        import sys
        import types

        from packaging.version import parse

        class _EntryPoint:
            def __init__(self, entry_point):
                self.name = entry_point.name
                self.resolve = self.load = entry_point.load

        def iter_entry_points(group, name=None):
            return [_EntryPoint(ep) for ep in importlib.metadata.entry_points(group=group)
                    if name is None or ep.name == name]

        shim = types.ModuleType("pkg_resources")
        shim.iter_entry_points = iter_entry_points
        shim.parse_version = parse
        sys.modules["pkg_resources"] = shim


def make_program(spec: str, port: int, host: str):
    """A configured `tensorboard.program.TensorBoard` (call `.main()` to serve, `.launch()` in background)."""
    _ensure_pkg_resources()
    from tensorboard import program

    board = program.TensorBoard()
    board.configure(argv=tensorboard_argv(spec, port, host))
    return board
