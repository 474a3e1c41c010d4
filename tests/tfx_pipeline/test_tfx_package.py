"""TFX builds no sdist of itself for Beam work that stays in this process, and still does for a cluster."""
from __future__ import annotations

import pytest
from tfx.utils import dependency_utils

from tfx_pipeline import tfx_package
from tfx_pipeline.beam import pipeline_args


@pytest.fixture
def builds(monkeypatch):
    built: list[str] = []
    monkeypatch.setattr(dependency_utils, "build_ephemeral_package",
                        lambda: built.append("sdist") or "/tmp/tfx_ephemeral-1.16.0.tar.gz")
    monkeypatch.setattr(dependency_utils, "make_beam_dependency_flags", dependency_utils.make_beam_dependency_flags)
    tfx_package.skip_sdist_for_in_process_beam()
    return built


def test_in_process_direct_runner_arguments_pass_unchanged_without_a_build(builds):
    args = pipeline_args("direct")
    assert dependency_utils.make_beam_dependency_flags(list(args)) == args
    assert builds == []


def test_a_cluster_runner_still_gets_tfx_as_an_extra_package(builds):
    args = ["--runner=FlinkRunner", "--flink_master=host:8081"]
    assert dependency_utils.make_beam_dependency_flags(args) == [
        *args, "--extra_package=/tmp/tfx_ephemeral-1.16.0.tar.gz"]
    assert builds == ["sdist"]


def test_installing_twice_wraps_once(builds):
    wrapped = dependency_utils.make_beam_dependency_flags
    tfx_package.skip_sdist_for_in_process_beam()
    assert dependency_utils.make_beam_dependency_flags is wrapped
