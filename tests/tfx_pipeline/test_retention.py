"""Retention's selection rules and its removal on fabricated homes: a real sqlite ML Metadata store
laid out as TFX lays it out (run and node contexts, executions, events keyed by output name,
outputs in HOME/pipeline/NODE/KEY/EXECUTION/) and real files. The same rules on a home made by real
pipeline runs, with a model server polling it: tests/e2e/test_retention.py."""
from __future__ import annotations

import datetime
import json
import os
import shutil

import pytest
from ml_metadata import metadata_store
from ml_metadata.proto import metadata_store_pb2 as mlmd

from tfx_pipeline import retention
from tfx_pipeline.home import Home, read_runs
from tfx_pipeline.lineage import DELETED_REASON_KEY, Lineage

Execution, Event, Artifact = mlmd.Execution, mlmd.Event, mlmd.Artifact
EPOCH = datetime.date(1970, 1, 1)
MODEL_BYTES = 50_000


class FakeHome:
    """A home as real runs leave it: one pipeline run per `run()`, ExampleGen to Pusher."""

    def __init__(self, root):
        self.root = root
        self.layout = Home(str(root))
        config = mlmd.ConnectionConfig()
        config.sqlite.filename_uri = self.layout.metadata_path
        os.makedirs(root, exist_ok=True)
        self.store = metadata_store.MetadataStore(config)
        self.types = {name: self.store.put_artifact_type(mlmd.ArtifactType(name=name)) for name in (
            "Examples", "ExampleStatistics", "Model", "ModelRun", "ModelBlessing", "ModelEvaluation", "PushedModel")}
        self.run_type = self.store.put_context_type(mlmd.ContextType(name="pipeline_run"))
        self.node_type = self.store.put_context_type(mlmd.ContextType(name="node"))
        self.nodes: dict[str, int] = {}
        self.version = 1_000
        self.runs: list[dict] = []

    def _execution(self, run: int, node: str, inputs: dict, outputs: dict, **props) -> tuple[int, dict]:
        kind = self.store.put_execution_type(mlmd.ExecutionType(name=f"fake.{node}"))
        execution = Execution(type_id=kind, last_known_state=Execution.COMPLETE)
        for key, value in props.items():
            execution.custom_properties[key].int_value = value
        [execution_id] = self.store.put_executions([execution])
        if node not in self.nodes:
            [self.nodes[node]] = self.store.put_contexts([mlmd.Context(type_id=self.node_type, name=f"freshrank.{node}")])
        made, events = {}, []
        for key, (type_name, properties, size) in outputs.items():
            uri = os.path.join(self.layout.pipeline_root, node, key, str(execution_id))
            os.makedirs(uri)
            with open(os.path.join(uri, "data"), "wb") as handle:
                handle.write(b"x" * size)
            artifact = Artifact(type_id=self.types[type_name], uri=uri, state=Artifact.LIVE)
            for name, value in properties.items():
                if isinstance(value, int):
                    artifact.custom_properties[name].int_value = value
                else:
                    artifact.custom_properties[name].string_value = value
            [made[key]] = self.store.put_artifacts([artifact])
            events.append(self._event(made[key], execution_id, Event.OUTPUT, key))
        for key, artifact_id in inputs.items():
            events.append(self._event(artifact_id, execution_id, Event.INPUT, key))
        self.store.put_events(events)
        self.store.put_attributions_and_associations([], [
            mlmd.Association(execution_id=execution_id, context_id=run),
            mlmd.Association(execution_id=execution_id, context_id=self.nodes[node])])
        os.makedirs(os.path.join(self.layout.pipeline_root, node, ".system", "executor_execution", str(execution_id)))
        return execution_id, made

    @staticmethod
    def _event(artifact_id: int, execution_id: int, kind, key: str):
        event = Event(artifact_id=artifact_id, execution_id=execution_id, type=kind)
        event.path.steps.add().key = key
        event.path.steps.add().index = 0
        return event

    def run(self, day: int, blessed: bool = True, window: int = 2) -> dict:
        """One run on span `day` (days since 1970-01-01); pushes a version when blessed."""
        [run] = self.store.put_contexts([mlmd.Context(type_id=self.run_type, name=f"run-{len(self.runs) + 1}")])
        date = (EPOCH + datetime.timedelta(days=day)).isoformat()
        _, gen = self._execution(run, "CsvExampleGen", {}, {"examples": ("Examples", {"span": day}, 2_000)})
        _, stats = self._execution(run, "StatisticsGen", {"examples": gen["examples"]},
                                   {"statistics": ("ExampleStatistics", {}, 1_000)})
        _, win = self._execution(run, "SpanWindow", {"examples": gen["examples"]},
                                 {"window": ("Examples", {"span": day}, 3_000)}, window_size=window)
        examples_uri, statistics_uri = (os.path.join(self.layout.pipeline_root, node, key, _id(self, i))
                                        for node, key, i in (("CsvExampleGen", "examples", gen["examples"]),
                                                             ("StatisticsGen", "statistics", stats["statistics"])))
        os.makedirs(self.layout.span_index_dir, exist_ok=True)
        with open(os.path.join(self.layout.span_index_dir, f"{day:06d}.json"), "w") as handle:
            json.dump({"span": day, "date": date, "examples_uri": examples_uri, "statistics_uri": statistics_uri,
                       "num_examples": {}}, handle)
        _, trained = self._execution(run, "Trainer", {"examples": win["window"]}, {
            "model": ("Model", {}, MODEL_BYTES), "model_run": ("ModelRun", {}, 100)})
        _, evaluated = self._execution(run, "Evaluator", {"model": trained["model"]}, {
            "blessing": ("ModelBlessing", {"blessed": int(blessed), "current_model_id": trained["model"]}, 0),
            "evaluation": ("ModelEvaluation", {}, 500)})
        version = None
        properties: dict = {"pushed": 0}
        if blessed:
            self.version += 10
            version = self.version
            destination = os.path.join(self.layout.serving_dir("ranker"), str(version))
            os.makedirs(os.path.join(destination, "variables"))
            with open(os.path.join(destination, "saved_model.pb"), "wb") as handle:
                handle.write(b"m" * MODEL_BYTES)
            properties = {"pushed": 1, "pushed_version": str(version), "pushed_destination": destination}
        self._execution(run, "Pusher", {"model": trained["model"], "model_blessing": evaluated["blessing"]},
                        {"pushed_model": ("PushedModel", properties, 0)})
        record = {"run": run, "span": day, "date": date, "version": version, "model": trained["model"],
                  "blessing": evaluated["blessing"], "examples": gen["examples"], "window": win["window"]}
        self.runs.append(record)
        return record

    def artifact(self, artifact_id: int) -> Artifact:
        return self.store.get_artifacts_by_id([artifact_id])[0]

    def model_dir(self, record: dict) -> str:
        return self.artifact(record["model"]).uri

    def versions(self) -> list[int]:
        return sorted(int(v) for v in os.listdir(self.layout.serving_dir("ranker")) if v.isdigit())


def _id(home: FakeHome, artifact_id: int) -> str:
    return os.path.basename(home.artifact(artifact_id).uri)


@pytest.fixture
def home(tmp_path):
    return FakeHome(tmp_path / "home")


def _removed(steps: retention.Plan, kind: str) -> set[str]:
    return {r.path for r in steps.of_kind(kind)}


def test_keeps_the_newest_k_versions_and_the_runs_in_the_window(home):
    runs = [home.run(day) for day in range(100, 105)]
    steps = retention.plan(str(home.root), "ranker", keep_versions=2, window=2)

    assert sorted(steps.kept_versions) == [runs[3]["version"], runs[4]["version"]]
    assert "serving" in steps.kept_versions[runs[4]["version"]]
    assert {os.path.basename(p) for p in _removed(steps, retention.VERSION)} == {str(r["version"]) for r in runs[:3]}
    assert steps.window_spans == [runs[3]["date"], runs[4]["date"]]
    # Runs 1-3 lost everything; 4-5 (the window) kept everything.
    for record in runs[:3]:
        assert home.model_dir(record) in _removed(steps, retention.OUTPUT)
        assert record["model"] in steps.delete_artifacts and record["examples"] in steps.delete_artifacts
    for record in runs[3:]:
        assert home.model_dir(record) not in _removed(steps, retention.OUTPUT)
        assert record["model"] not in steps.delete_artifacts and record["window"] not in steps.delete_artifacts
    assert {os.path.basename(p) for p in _removed(steps, retention.INDEX)} == {f"{r['span']:06d}.json" for r in runs[:3]}
    assert steps.bytes_freed == sum(r.bytes for r in steps.removals) > 3 * 2 * MODEL_BYTES


def test_an_old_runs_model_stays_while_its_version_is_served(home):
    """K larger than the window: the versions of runs outside the window are rollback targets, so
    their Model, ModelBlessing and PushedModel stay (a rollback makes that model the warm start)."""
    runs = [home.run(day) for day in range(100, 104)]
    steps = retention.plan(str(home.root), "ranker", keep_versions=3, window=1)

    assert sorted(steps.kept_versions) == [r["version"] for r in runs[1:]]
    for record in runs[1:3]:  # outside the window, still served
        assert home.model_dir(record) not in _removed(steps, retention.OUTPUT)
        assert record["model"] in steps.kept_artifacts and record["blessing"] in steps.kept_artifacts
        assert record["examples"] in steps.delete_artifacts  # its data is not needed any more
    assert runs[0]["model"] in steps.delete_artifacts


def test_the_newest_blessed_version_stays_even_outside_the_newest_k(home):
    """A version whose blessing was revoked (recovery, a push that never finished) is not what the
    next run warm-starts from: the newest blessed one (older) stays beside it."""
    runs = [home.run(day) for day in range(100, 104)]
    newest = home.artifact(runs[3]["blessing"])
    newest.custom_properties["blessed"].int_value = 0
    home.store.put_artifacts([newest])

    steps = retention.plan(str(home.root), "ranker", keep_versions=1, window=1)

    assert sorted(steps.kept_versions) == [runs[2]["version"], runs[3]["version"]]
    assert any("newest blessed" in why for why in steps.kept_versions[runs[2]["version"]])
    assert runs[2]["model"] in steps.kept_artifacts  # run 3 is outside the window: the model is kept on purpose
    assert home.model_dir(runs[2]) not in _removed(steps, retention.OUTPUT)


def test_apply_marks_artifacts_deleted_removes_their_folders_and_lineage_stays_readable(home):
    runs = [home.run(day) for day in range(100, 104)]
    before = retention.home_bytes(str(home.root))
    steps = retention.plan(str(home.root), "ranker", keep_versions=2, window=2)

    record = retention.apply(steps)

    assert record["status"] == "done" and record["errors"] == []
    assert record["removed_versions"] == [runs[0]["version"], runs[1]["version"]]
    assert record["bytes_freed"] == steps.bytes_freed and record["home_bytes"] == before - steps.bytes_freed
    assert home.versions() == [runs[2]["version"], runs[3]["version"]]
    assert not os.path.exists(home.model_dir(runs[0])) and os.path.isdir(home.model_dir(runs[2]))
    old = home.artifact(runs[0]["model"])
    assert old.state == Artifact.DELETED and "older than the window" in old.custom_properties[DELETED_REASON_KEY].string_value
    assert home.artifact(runs[2]["model"]).state == Artifact.LIVE
    lineage = Lineage.open(home.layout.metadata_path)
    nodes = lineage.run_nodes(runs[0]["run"])  # an old run's lineage still reads, outputs and all
    assert nodes["Trainer"].outputs["model"][0].id == runs[0]["model"]
    assert lineage.latest_blessed_model()[0].id == runs[3]["model"]
    # Nothing is left to do: a second pass plans nothing, and the window's examples are still there.
    again = retention.plan(str(home.root), "ranker", keep_versions=2, window=2)
    assert again.removals == [] and again.delete_artifacts == {}
    assert os.path.isdir(home.artifact(runs[2]["examples"]).uri)


def test_a_served_version_leaves_the_base_path_in_one_rename_before_any_file_is_deleted(home, monkeypatch):
    """A model server polling serving/ranker/ must see a version whole or not at all."""
    [home.run(day) for day in range(100, 103)]
    serving = home.layout.serving_dir("ranker")
    deleted_under = []
    real_rmtree = shutil.rmtree

    def watching_rmtree(path, *args, **kwargs):
        deleted_under.append(os.path.dirname(os.path.abspath(path)))
        return real_rmtree(path, *args, **kwargs)

    monkeypatch.setattr(retention.shutil, "rmtree", watching_rmtree)
    record = retention.collect(str(home.root), "ranker", keep_versions=1, window=1)

    assert len(record["removed_versions"]) == 2
    assert serving not in deleted_under  # nothing deleted in place inside the base path
    assert home.layout.trash_dir in deleted_under and os.listdir(home.layout.trash_dir) == []


def test_retired_versions_older_than_every_kept_version_go_and_leftover_trash_is_emptied(home):
    [home.run(day) for day in range(100, 104)]
    retired = home.layout.retired_dir("ranker")
    for name in ("1005", "1035-1796590000", "9999"):
        os.makedirs(os.path.join(retired, name))
    os.makedirs(os.path.join(home.layout.trash_dir, "version-ranker-7-1-2", "variables"))
    steps = retention.plan(str(home.root), "ranker", keep_versions=2, window=2)  # keeps 1030, 1040

    assert {os.path.basename(p) for p in _removed(steps, retention.RETIRED)} == {"1005"}
    assert _removed(steps, retention.TRASH) == {os.path.join(home.layout.trash_dir, "version-ranker-7-1-2")}


def test_unfinished_versions_and_push_leftovers_are_never_touched(home):
    [home.run(day) for day in range(100, 103)]
    serving = home.layout.serving_dir("ranker")
    os.makedirs(os.path.join(serving, "5"))  # numbered, no saved_model.pb: not a finished version
    os.makedirs(os.path.join(serving, ".tmp-2000-77"))
    steps = retention.plan(str(home.root), "ranker", keep_versions=1, window=1)
    removed = {os.path.basename(p) for p in _removed(steps, retention.VERSION)}
    assert removed == {"1010", "1020"}


def test_an_unpublished_output_of_a_killed_execution_in_an_old_run_is_removed(home):
    runs = [home.run(day) for day in range(100, 103)]
    trainer = Lineage.open(home.layout.metadata_path).run_nodes(runs[0]["run"])["Trainer"].execution.id
    orphan = os.path.join(home.layout.pipeline_root, "Trainer", "checkpoint", str(trainer))
    os.makedirs(orphan)
    steps = retention.plan(str(home.root), "ranker", keep_versions=1, window=1)
    assert orphan in _removed(steps, retention.OUTPUT)


def test_cleaned_copies_leave_with_their_span_and_bad_rows_stay(home):
    runs = [home.run(day) for day in range(100, 103)]
    for record in runs:
        os.makedirs(home.layout.quarantine_dir(os.path.join("cleaned", record["date"])))
        os.makedirs(home.layout.quarantine_dir(record["date"]))
    steps = retention.plan(str(home.root), "ranker", keep_versions=1, window=2)
    assert _removed(steps, retention.CLEANED) == {home.layout.quarantine_dir(os.path.join("cleaned", runs[0]["date"]))}
    assert all(r.kind != retention.CLEANED or "cleaned" in r.path for r in steps.removals)


def test_the_window_defaults_to_the_newest_runs(home):
    [home.run(day, window=3) for day in range(100, 105)]
    steps = retention.plan(str(home.root), "ranker", keep_versions=5)
    assert steps.window == 3 and len(steps.window_spans) == 3


def test_nothing_to_judge_before_any_run_and_a_refusal_names_the_fix(tmp_path):
    empty = tmp_path / "home"
    empty.mkdir()
    steps = retention.plan(str(empty), "ranker", keep_versions=2)
    assert steps.removals == [] and steps.window is None and "no run has built one yet" in "\n".join(steps.lines())
    with pytest.raises(retention.RetentionError, match="at least 1"):
        retention.plan(str(empty), "ranker", keep_versions=0)
    with pytest.raises(retention.RetentionError, match="pass the --home"):
        retention.plan(str(tmp_path / "nowhere"), "ranker")


def test_after_run_never_raises_and_records_a_failure(home):
    [home.run(day) for day in range(100, 103)]
    with open(home.layout.metadata_path, "wb") as handle:
        handle.write(b"not a database")
    record = retention.after_run(str(home.root), "ranker", keep_versions=1, window=1)
    assert record["status"] == "failed" and record["error"]
    assert read_runs(home.layout.gc_log)[-1]["status"] == "failed"
    assert not os.path.exists(home.layout.runs_log)  # runs.jsonl stays one record per run
    assert len(home.versions()) == 3  # nothing removed on a failed plan
    assert retention.after_run(str(home.root), "ranker", keep_versions=0, window=1) is None
