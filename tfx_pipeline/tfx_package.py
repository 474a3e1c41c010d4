"""No TFX sdist for Beam work that stays in this process.

Every Beam-powered TFX executor (CsvExampleGen, StatisticsGen, Evaluator) passes its
`beam_pipeline_args` through `tfx.utils.dependency_utils.make_beam_dependency_flags`, which, unless
the arguments already name a package or worker image, copies TFX's whole install into a fresh
`tempfile.mkdtemp()` and builds it as an sdist for remote workers to install. Nothing removes it:
measured on this project's machine, three builds of about 1 s and 49 MB each per `freshrank run`,
so an hourly `watch` left 3.5 GB a day in /tmp and a `make test` about 10 GB. Workers of the
in-process DirectRunner run in the executor's own process and never install it, so there the
step is skipped; every other runner keeps TFX's behaviour (it needs the package, or a worker image).
"""
from __future__ import annotations

import functools

from tfx_pipeline import beam


def skip_sdist_for_in_process_beam() -> None:
    """Wraps TFX's dependency step (once per process) to leave in-process Beam arguments alone."""
    from tfx.utils import dependency_utils

    original = dependency_utils.make_beam_dependency_flags
    if getattr(original, "skips_in_process", False):
        return

    @functools.wraps(original)
    def make_beam_dependency_flags(beam_pipeline_args: list[str]) -> list[str]:
        if beam.runs_in_process(beam_pipeline_args):
            return beam_pipeline_args
        return original(beam_pipeline_args)

    make_beam_dependency_flags.skips_in_process = True
    dependency_utils.make_beam_dependency_flags = make_beam_dependency_flags
