"""Beam options for the data components: the in-process DirectRunner here, a cluster runner at scale.

TFX hands the pipeline's `beam_pipeline_args` to every Beam-powered component (CsvExampleGen,
StatisticsGen, Evaluator): under LocalDagRunner through each node's
BeamExecutableSpec, under Kubeflow as the container arguments of each step. This module turns
`--beam-runner NAME` plus pass-through `--beam-arg=--option=value` flags into that list, checks
what each runner cannot start without, and says whether the Beam work stays in this process
(the only case where the tensorflow_text ops imported by the launcher reach the Evaluator).

No TFX import here: the CLI validates flags before it loads the stack.
"""
from __future__ import annotations

from collections.abc import Iterable, Sequence

# The local default: one process, so tensorflow_text ops registered by `freshrank run` stay
# registered for the Evaluator (a multi-process DirectRunner has lost them: tensorflow/text#315).
IN_MEMORY_DIRECT = ("--direct_running_mode=in_memory", "--direct_num_workers=1")

RUNNERS = {
    "direct": "DirectRunner",
    "flink": "FlinkRunner",
    "spark": "SparkRunner",
    "dataflow": "DataflowRunner",
    "portable": "PortableRunner",
}

# Options a runner cannot start without (Beam would fail later, inside a component, with less to go on).
REQUIRED = {
    "dataflow": ("project", "region", "temp_location"),
    "portable": ("job_endpoint",),
}

# What each runner needs on a cluster, for messages and --help.
NEEDS = {
    "direct": "nothing (runs in this process)",
    "flink": "--flink_master=HOST:8081 (without it Beam starts an embedded local Flink) and a worker "
             "image: --environment_type=DOCKER --environment_config=IMAGE",
    "spark": "--spark_master_url=spark://HOST:7077 (without it: local[4]) and a worker image: "
             "--environment_type=DOCKER --environment_config=IMAGE",
    "dataflow": "--project, --region, --temp_location=gs://... and --sdk_container_image=IMAGE",
    "portable": "--job_endpoint=HOST:8099 of a Beam job server, and a worker image",
}

_WORKER_IMAGE_OPTIONS = {"sdk_container_image", "environment_type", "environment_config", "worker_harness_container_image"}


class BeamOptionsError(ValueError):
    """A runner or option combination that cannot work; the message says what to pass."""


def option_names(args: Iterable[str]) -> set[str]:
    """Names of the `--name[=value]` options in a Beam argument list."""
    return {arg[2:].split("=", 1)[0] for arg in args if arg.startswith("--")}


def option_value(args: Sequence[str], name: str) -> str | None:
    """The last value given for `--name` (as `--name=value` or `--name value`), like Beam's parser."""
    value = None
    for i, arg in enumerate(args):
        if arg == f"--{name}" and i + 1 < len(args) and not args[i + 1].startswith("--"):
            value = args[i + 1]
        elif arg.startswith(f"--{name}="):
            value = arg.split("=", 1)[1]
    return value


def pipeline_args(runner: str = "direct", extra: Iterable[str] = (), worker_image: str | None = None) -> list[str]:
    """The `beam_pipeline_args` for RUNNER plus pass-through EXTRA options (EXTRA wins on repeats).

    `worker_image`, when given and EXTRA names no worker environment, becomes the image the
    runner's workers use (`--sdk_container_image` on Dataflow, a DOCKER environment elsewhere):
    the freshrank image carries tfx-bsl, TFMA and tensorflow_text, which the workers need.
    """
    name = (runner or "direct").lower()
    if name not in RUNNERS:
        raise BeamOptionsError(f"unknown Beam runner {runner!r}; choose one of {', '.join(RUNNERS)}")
    extra = list(extra)
    for arg in extra:
        if not arg.strip():
            raise BeamOptionsError("empty Beam option")
    given = option_names(extra)
    if "runner" in given:
        raise BeamOptionsError("choose the runner with --beam-runner, not --beam-arg=--runner=...")
    if name == "direct":
        return [*IN_MEMORY_DIRECT, *extra]
    args = [f"--runner={RUNNERS[name]}"]
    if worker_image and not given & _WORKER_IMAGE_OPTIONS:
        if name == "dataflow":
            args.append(f"--sdk_container_image={worker_image}")
        else:
            args += ["--environment_type=DOCKER", f"--environment_config={worker_image}"]
    missing = [option for option in REQUIRED.get(name, ()) if option not in given]
    if missing:
        flags = " ".join(f"--beam-arg=--{option}=..." for option in missing)
        raise BeamOptionsError(f"the {name} runner needs {', '.join('--' + m for m in missing)}: pass {flags}")
    return args + extra


def runner_of(args: Sequence[str]) -> str:
    """The Beam runner class name the arguments select (Beam's default is the DirectRunner)."""
    return option_value(args, "runner") or "DirectRunner"


def runs_in_process(args: Sequence[str]) -> bool:
    """True when every Beam transform runs inside the component's own process.

    Only then do imports made by the launcher (tensorflow_text's op registrations, which the
    Evaluator needs to load the ranker) reach the code that loads the model.
    """
    if runner_of(args).lower() not in ("directrunner", "direct", "bundlebasedirectrunner"):
        return False
    mode = option_value(args, "direct_running_mode") or "in_memory"
    return mode in ("in_memory", "multi_threading")
