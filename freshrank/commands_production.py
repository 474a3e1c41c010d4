"""Commands that take freshrank past one machine: compile, submit, export-serving-config, tensorboard.

Registered on the `freshrank` group in freshrank/cli.py. Exit codes as there: 0 success,
1 failure, 2 usage error.
"""
from __future__ import annotations

import json
import os
import sys

import click

from freshrank import cli_options as options
from freshrank.env import configure, import_tensorflow
from tfx_pipeline.home import Home

configure()



def _read_json(path: str | None, what: str):
    if not path:
        return None
    try:
        with open(path, encoding="utf-8") as handle:
            return json.load(handle)
    except (OSError, json.JSONDecodeError) as error:
        raise click.UsageError(f"{what} {path}: {error}") from None


@click.command("compile")
@click.option("--target", type=click.Choice(["kubeflow"]), default="kubeflow", show_default=True,
              help="Orchestrator: Kubeflow Pipelines (V2 engine); the same file runs on Vertex AI Pipelines.")
@click.option("--image", required=True, help="Pipeline image every step runs (built from the Dockerfile).")
@click.option("--data", "data_root", required=True,
              help="Landing directory as the cluster sees it (gs://bucket/landing, or a mounted path).")
@click.option("--home", required=True,
              help="State directory as the cluster sees it: pipeline outputs, span index, serving models.")
@click.option("--out", default="pipeline.json", show_default=True, type=click.Path(dir_okay=False),
              help="Output: .json = PipelineJob (Vertex, `freshrank submit`), .yaml = PipelineSpec (kfp upload).")
@click.option("--span", callback=options.parse_span,
              help="Default of the span_range runtime parameter, YYYY-MM-DD or YYYY-MM-DDTHH (default: newest span).")
@click.option("--pipeline-name", default="freshrank", show_default=True)
@options.pipeline_options(local=False)
@options.train_options(local_paths=False)
@click.option("--trainer-cpu", type=click.FloatRange(min=0.0, min_open=True), help="vCPUs for the Trainer step.")
@click.option("--trainer-memory-gb", type=click.FloatRange(min=0.0, min_open=True), help="Memory (GB) for the Trainer step.")
@click.option("--trainer-accelerator", metavar="TYPE[:COUNT]",
              help="Accelerators for the Trainer step: NVIDIA_TESLA_T4:2 (Vertex) or nvidia.com/gpu:2 (KFP).")
@click.option("--vertex-training", type=click.Path(exists=True, dir_okay=False),
              help="JSON {project, region, worker_pool_specs}: run the Trainer as a Vertex AI custom job "
                   "(several workers / TPUs; TF_CONFIG set by Vertex).")
def compile_command(target, image, data_root, home, out, span, pipeline_name, trainer_cpu, trainer_memory_gb,
                    trainer_accelerator, vertex_training, **flags) -> None:
    """Compile the pipeline for Kubeflow Pipelines / Vertex AI; span and window stay runtime parameters."""
    from tfx_pipeline.config import KUBEFLOW, PipelineConfig

    import_tensorflow()
    train = options.train_config_from(flags)
    settings = options.pipeline_settings(flags, worker_image=image)
    try:
        from tfx_pipeline.kubeflow import TrainerResources, compile_pipeline, parse_accelerator

        accelerator, count = parse_accelerator(trainer_accelerator)
        resources = TrainerResources(trainer_cpu, trainer_memory_gb, accelerator, count)
        config = PipelineConfig(
            data_root=data_root, home=home, span=span, pipeline_name=pipeline_name, train=train,
            orchestrator=KUBEFLOW, vertex_training=_read_json(vertex_training, "--vertex-training"), **settings,
        )
        job = compile_pipeline(config, image, out, trainer_resources=resources)
    except ValueError as error:
        raise click.UsageError(str(error)) from None
    tasks = sorted(job["pipelineSpec"]["root"]["dag"]["tasks"])
    parameters = job["pipelineSpec"]["root"]["inputDefinitions"]["parameters"]
    defaults = {name: spec.get("defaultValue") for name, spec in parameters.items()}
    click.echo(f"compiled {len(tasks)} steps for {target} on {image}: {', '.join(tasks)}", err=True)
    click.echo(f"runtime parameters (defaults): {json.dumps(defaults, sort_keys=True)}", err=True)
    click.echo(out if "://" in out else os.path.abspath(out))


@click.command("submit")
@click.argument("package", type=click.Path(exists=True, dir_okay=False))
@click.option("--kfp-host", help="Kubeflow Pipelines API endpoint, e.g. http://localhost:8080.")
@click.option("--namespace", help="Kubeflow namespace (multi-user installs).")
@click.option("--experiment", default="freshrank", show_default=True, help="KFP experiment.")
@click.option("--vertex-project", help="Google Cloud project for Vertex AI Pipelines.")
@click.option("--vertex-region", help="Vertex AI region, e.g. europe-west4.")
@click.option("--service-account", help="Vertex: service account the steps run as.")
@click.option("--pipeline-root", help="Vertex: override the compiled pipeline root (gs://...).")
@click.option("--span", callback=options.parse_span, help="Run this span (YYYY-MM-DD, or YYYY-MM-DDTHH in an hourly pipeline).")
@click.option("--newest", is_flag=True, help="Run the newest span (overrides a span compiled in).")
@click.option("--window", type=click.IntRange(min=1), help="Train on the newest N validated spans.")
@click.option("--run-name", help="Run / job display name (default: freshrank-<span or newest>).")
@click.option("--dry-run", is_flag=True, help="Print the target and the parameter values; submit nothing.")
def submit_command(package, kfp_host, namespace, experiment, vertex_project, vertex_region, service_account,
                   pipeline_root, span, newest, window, run_name, dry_run) -> None:
    """Start one run of a compiled pipeline on Kubeflow Pipelines or Vertex AI Pipelines."""
    from tfx_pipeline import kubeflow

    if bool(kfp_host) == bool(vertex_project or vertex_region):
        raise click.UsageError("give either --kfp-host, or --vertex-project and --vertex-region")
    if vertex_project and not vertex_region or vertex_region and not vertex_project:
        raise click.UsageError("Vertex AI needs both --vertex-project and --vertex-region")
    try:
        params = kubeflow.run_parameters(span=span, newest=newest, window=window)
    except ValueError as error:
        raise click.UsageError(str(error)) from None
    run_name = run_name or f"freshrank-{span.isoformat() if span else 'newest' if newest else 'default'}"
    target = {"kfp_host": kfp_host} if kfp_host else {"vertex_project": vertex_project, "vertex_region": vertex_region}
    plan = {"package": os.path.abspath(package), **target, "run_name": run_name, "parameter_values": params}
    if dry_run:
        click.echo(json.dumps(plan, sort_keys=True))
        return
    try:
        if kfp_host:
            ref = kubeflow.submit_kfp(package, kfp_host, params, experiment, run_name, namespace)
        else:
            ref = kubeflow.submit_vertex(package, vertex_project, vertex_region, params, pipeline_root,
                                         service_account, run_name)
    except Exception as error:  # noqa: BLE001 - the client's message is what the user needs
        click.echo(f"error: submitting {package} failed: {type(error).__name__}: {error}", err=True)
        sys.exit(1)
    click.echo(json.dumps({**plan, "run": ref}, sort_keys=True))


@click.command("export-serving-config")
@click.option("--home", required=True, help="freshrank home whose serving/<model>/ the Pusher fills.")
@options.model_name_option
@click.option("--out", "out_dir", help="Directory for models.config and batching_parameters.txt "
              "(default: HOME/serving_config).")
@click.option("--base-path", help="Model base path as the server sees it (default: HOME/serving/<model>; "
              "/models/<model> in the tensorflow/serving container).")
@click.option("--version-policy", type=click.Choice(["latest", "specific", "all"]), default="latest",
              show_default=True, help="latest: the newest --keep versions; specific: exactly those and the labelled.")
@click.option("--keep", default=2, show_default=True, type=click.IntRange(min=1),
              help="Versions served side by side (stable and previous).")
@click.option("--label", "labels", multiple=True, metavar="NAME=VERSION",
              help="Extra version label (repeatable); stable and previous are set from the pushed versions.")
@click.option("--max-batch-size", default=128, show_default=True, type=click.IntRange(min=1))
@click.option("--batch-timeout-micros", default=2000, show_default=True, type=click.IntRange(min=0))
@click.option("--max-enqueued-batches", default=100, show_default=True, type=click.IntRange(min=1))
@click.option("--num-batch-threads", default=4, show_default=True, type=click.IntRange(min=1),
              help="Usually the server's CPU count.")
@click.option("--allowed-batch-sizes", help="Comma-separated, increasing, ending at --max-batch-size.")
def export_serving_config_command(home, model_name, out_dir, base_path, version_policy, keep, labels,
                                  max_batch_size, batch_timeout_micros, max_enqueued_batches,
                                  num_batch_threads, allowed_batch_sizes) -> None:
    """Write TF Serving's models.config and batching parameters for the pushed models."""
    from freshrank import serving_config

    try:
        sizes = tuple(int(s) for s in allowed_batch_sizes.split(",")) if allowed_batch_sizes else ()
        batching = serving_config.Batching(max_batch_size, batch_timeout_micros, max_enqueued_batches,
                                           num_batch_threads, sizes)
        exported = serving_config.export(
            home, model_name, out_dir, base_path, keep, version_policy,
            serving_config.parse_labels(labels), batching,
        )
    except ValueError as error:
        raise click.UsageError(str(error)) from None
    if not exported.versions:
        click.echo(f"warning: no pushed version under {Home(home).serving_dir(model_name)} yet; "
                   "the server will wait for the first push", err=True)
    click.echo(json.dumps({
        "models_config": exported.models_config, "batching_parameters": exported.batching_config,
        "model_name": model_name, "base_path": exported.base_path, "version_policy": exported.policy,
        "versions": exported.versions, "served": exported.served, "labels": exported.labels,
    }, sort_keys=True))


@click.command("tensorboard")
@click.option("--home", required=True, type=click.Path(exists=True, file_okay=False),
              help="freshrank home (runs.jsonl, metadata.sqlite, pipeline/Trainer/model_run/).")
@click.option("--port", default=6006, show_default=True, type=click.IntRange(0, 65535))
@click.option("--host", default="localhost", show_default=True, help="Interface to bind (0.0.0.0: all).")
@click.option("--print-only", is_flag=True, help="Print the runs and the TensorBoard command; serve nothing.")
def tensorboard_command(home, port, host, print_only) -> None:
    """Serve the Trainer logs of every run, one TensorBoard run per span, to compare updates."""
    from freshrank import tensorboard_cmd

    runs = tensorboard_cmd.trainer_runs(home)
    if not runs:
        raise click.UsageError(f"no Trainer logs found in {home} (runs.jsonl / metadata.sqlite); "
                               "run `freshrank run` first")
    names = tensorboard_cmd.run_names(runs)
    spec = tensorboard_cmd.logdir_spec(names)
    argv = tensorboard_cmd.tensorboard_argv(spec, port, host)
    if print_only:
        click.echo(json.dumps({"runs": names, "argv": argv}, sort_keys=True))
        return
    for name, logdir in names.items():
        click.echo(f"{name}: {logdir}", err=True)
    tensorboard_cmd.make_program(spec, port, host).main()
