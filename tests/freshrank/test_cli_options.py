"""One source for every shared flag: the commands that run the pipeline offer the same ones, with
the config classes' defaults, and the flags reach the configs."""
from __future__ import annotations

import datetime

import click
import pytest
from click.testing import CliRunner

from freshrank import cli
from tfx_pipeline.config import DEFAULT_WINDOW, PipelineConfig
from trainer.config import TrainConfig

# Flags of `run` that another pipeline command does not take, and why.
NOT_APPLICABLE = {
    "watch": {"--span": "watch runs every pending span itself, oldest first"},
    "compile": {"--max-bad-row-share": "the quarantine runs before a local ExampleGen only; a compiled "
                                       "pipeline's SpanReady refuses a half-landed span instead",
                "--keep-versions": "retention runs after a local run, on the home's sqlite ML Metadata; a compiled "
                                   "pipeline's store belongs to its orchestrator"},
}
# Flags only one command has (its own job), not pipeline or trainer settings.
OWN = {"run": set(), "watch": {"--poll-seconds", "--once", "--gap-alert"},
       "compile": {"--target", "--image", "--out", "--pipeline-name", "--trainer-cpu", "--trainer-memory-gb",
                   "--trainer-accelerator", "--vertex-training"}}


def _flags(command: str) -> dict[str, click.Option]:
    found = {}
    for param in cli.main.commands[command].params:
        if isinstance(param, click.Option):
            found.update({name: param for name in param.opts if name.startswith("--")})
    return found


@pytest.mark.parametrize("command", ["watch", "compile"])
def test_every_pipeline_command_offers_every_flag_of_run(command):
    run, other = _flags("run"), _flags(command)
    missing = set(run) - set(other) - set(NOT_APPLICABLE[command])
    assert not missing, f"`freshrank {command}` lacks {sorted(missing)}"
    assert set(other) - set(run) == OWN[command]
    # A compiled pipeline's paths are as the cluster sees them (gs://...): not checked here.
    cluster_paths = {"--data", "--home", "--init-checkpoint"} if command == "compile" else set()
    for name in set(run) & set(other):  # the same declaration: same default and type
        assert run[name].default == other[name].default, name
        assert type(run[name].type) is type(other[name].type) or name in cluster_paths, name


def test_defaults_are_the_config_classes():
    run = _flags("run")
    assert run["--window"].default == DEFAULT_WINDOW
    assert run["--min-auc"].default == PipelineConfig.min_auc
    assert run["--bless-tolerance"].default == PipelineConfig.bless_tolerance
    assert run["--max-bad-row-share"].default == PipelineConfig.max_bad_row_share
    assert run["--keep-versions"].default == PipelineConfig.keep_versions == cli.main.commands["gc"].params[
        [p.name for p in cli.main.commands["gc"].params].index("keep_versions")].default
    assert f"default {TrainConfig.warm_start_epochs}" in run["--warm-start-epochs"].help
    assert f"default {TrainConfig.epochs}" in run["--epochs"].help


def test_watch_and_compile_pass_every_flag_to_the_configs(tmp_path, monkeypatch):
    from tfx_pipeline import kubeflow, local_runner

    seen: list[PipelineConfig] = []
    monkeypatch.setattr(local_runner, "run_once", lambda config: seen.append(config) or {})
    monkeypatch.setattr("freshrank.watch.watch", lambda data, log, run_span, *a, **k: run_span(
        datetime.date(2026, 11, 1)) and 0)

    def compile_pipeline(config, image, out, trainer_resources=None):
        seen.append(config)
        return {"pipelineSpec": {"root": {"dag": {"tasks": {}}, "inputDefinitions": {"parameters": {}}}}}

    monkeypatch.setattr(kubeflow, "compile_pipeline", compile_pipeline)
    (tmp_path / "data").mkdir()
    flags = ["--window", "3", "--from-scratch", "--model-name", "shop", "--min-auc", "0.6", "--bless-tolerance", "2",
             "--bless-weighting", "none", "--bless-pages", "held-out", "--no-label-position-check", "--beam-runner", "flink",
             "--beam-arg=--flink_master=host:8081", "--epochs", "4", "--warm-start-epochs", "1",
             "--replay-fraction", "0.2", "--update-mode", "partial", "--distribution", "mirrored"]
    watch = ["watch", "--data", str(tmp_path / "data"), "--home", str(tmp_path / "home"), "--once",
             "--max-bad-row-share", "0.01", "--keep-versions", "2"]
    compile_ = ["compile", "--image", "img:1", "--data", "gs://b/data", "--home", "gs://b/home",
                "--out", str(tmp_path / "p.json")]
    for args in (watch, compile_):
        result = CliRunner().invoke(cli.main, args + flags)
        assert result.exit_code == 0, result.output
        config = seen[-1]
        assert (config.window, config.from_scratch, config.model_name, config.min_auc) == (3, True, "shop", 0.6)
        assert (config.bless_tolerance, config.bless_weighting, config.bless_pages, config.label_position_check) \
            == (2.0, "none", "held-out", False)
        assert "--runner=FlinkRunner" in config.beam_pipeline_args
        assert "--flink_master=host:8081" in config.beam_pipeline_args
        train = config.train
        assert (train.epochs, train.warm_start_epochs, train.replay_fraction) == (4, 1, 0.2)
        assert (train.update_mode, train.distribution) == ("partial", "mirrored")
    assert seen[0].max_bad_row_share == 0.01 and seen[0].keep_versions == 2
    assert seen[1].keep_versions == PipelineConfig.keep_versions  # compiled: no local retention


def test_a_bad_setting_is_a_usage_error_before_any_span_runs(tmp_path):
    (tmp_path / "data").mkdir()
    result = CliRunner().invoke(cli.main, ["watch", "--data", str(tmp_path / "data"), "--home", str(tmp_path / "h"),
                                           "--once", "--model-name", "a/b"])
    assert result.exit_code == 2 and "--model-name 'a/b' must be a plain name" in result.output
