"""TF Serving's config files for the Pusher's model directory: `models.config` and batching parameters.

`models.config` is a `ModelServerConfig` text proto (tensorflow_serving/config) with one model:
its name, its base path (as the server sees it: a host path, `/models/NAME` inside a container,
or gs://...), a version policy and version labels. The labels name pushed versions: `stable` is
the newest complete one, `previous` the one before (for a rollback or an A/B split), and more can
be given (`canary=1764380123`). TF Serving only accepts a label for a version it has loaded, so
the labels always point at versions the policy keeps; after each push, export again and let the
server re-read the file (`--model_config_file_poll_wait_seconds`).

`batching_parameters.txt` is a `BatchingParameters` text proto for `--enable_batching`.
"""
from __future__ import annotations

import dataclasses
import os
import re

import tensorflow as tf
from google.protobuf import text_format
from tensorflow_serving.config import file_system_storage_path_source_pb2 as storage_path_pb2
from tensorflow_serving.config import model_server_config_pb2

from serving.versions import finished_versions
from tfx_pipeline.home import Home

MODELS_CONFIG = "models.config"
BATCHING_CONFIG = "batching_parameters.txt"
POLICIES = ("latest", "specific", "all")
STABLE, PREVIOUS = "stable", "previous"
_LABEL = re.compile(r"^[A-Za-z][A-Za-z0-9_-]*$")


@dataclasses.dataclass
class Batching:
    """TF Serving's BatchingParameters; defaults suit one result page (tens of candidates) per request."""

    max_batch_size: int = 128
    batch_timeout_micros: int = 2000
    max_enqueued_batches: int = 100
    num_batch_threads: int = 4
    allowed_batch_sizes: tuple[int, ...] = ()

    def validate(self) -> None:
        if min(self.max_batch_size, self.max_enqueued_batches, self.num_batch_threads) < 1:
            raise ValueError("max_batch_size, max_enqueued_batches and num_batch_threads must be >= 1")
        if self.batch_timeout_micros < 0:
            raise ValueError("batch_timeout_micros must be >= 0")
        sizes = list(self.allowed_batch_sizes)
        if sizes:
            # TF Serving's own rule: strictly increasing, and the last one is max_batch_size.
            if any(b <= a for a, b in zip(sizes, sizes[1:], strict=False)) or sizes[0] < 1:
                raise ValueError(f"allowed batch sizes must be positive and increasing, got {sizes}")
            if sizes[-1] != self.max_batch_size:
                raise ValueError(
                    f"the last allowed batch size ({sizes[-1]}) must equal max_batch_size ({self.max_batch_size})"
                )

    def to_text(self) -> str:
        self.validate()
        lines = [
            f"max_batch_size {{ value: {self.max_batch_size} }}",
            f"batch_timeout_micros {{ value: {self.batch_timeout_micros} }}",
            f"max_enqueued_batches {{ value: {self.max_enqueued_batches} }}",
            f"num_batch_threads {{ value: {self.num_batch_threads} }}",
        ]
        lines += [f"allowed_batch_sizes: {size}" for size in self.allowed_batch_sizes]
        return "\n".join(lines) + "\n"


@dataclasses.dataclass
class Exported:
    models_config: str
    batching_config: str
    base_path: str
    versions: list[int]  # complete pushed versions found, oldest first
    policy: str
    served: list[int] | None  # the versions a `specific` policy pins (None: chosen by the server)
    labels: dict[str, int]
    config: model_server_config_pb2.ModelServerConfig


def pushed_versions(model_dir: str) -> list[int]:
    """Complete versions under a TF Serving model directory, oldest first.

    Locally the Pusher renames a finished copy into place (tfx_pipeline/push.py), but on object
    stores such as gs:// it copies file by file with saved_model.pb last, so a version folder
    without saved_model.pb is still being written and is left out.
    """
    if not tf.io.gfile.isdir(model_dir):
        return []
    return finished_versions(model_dir, tf.io.gfile.listdir, tf.io.gfile.exists)


def parse_labels(items: list[str] | tuple[str, ...]) -> dict[str, int]:
    """['canary=1764380123', ...] -> {'canary': 1764380123}."""
    labels: dict[str, int] = {}
    for item in items:
        name, sep, version = item.partition("=")
        if not sep or not _LABEL.match(name) or not version.isdigit():
            raise ValueError(f"bad label {item!r}: want NAME=VERSION (NAME a word, VERSION a pushed version)")
        labels[name] = int(version)
    return labels


def build_model_server_config(
    model_name: str,
    base_path: str,
    versions: list[int],
    keep: int = 2,
    policy: str = "latest",
    extra_labels: dict[str, int] | None = None,
) -> tuple[model_server_config_pb2.ModelServerConfig, dict[str, int], list[int] | None]:
    """The ModelServerConfig, its labels and (for `specific`) the versions it pins."""
    if policy not in POLICIES:
        raise ValueError(f"version policy must be one of {POLICIES}, got {policy!r}")
    if keep < 1:
        raise ValueError(f"keep must be >= 1, got {keep}")
    if not base_path.startswith("/") and "://" not in base_path:
        raise ValueError(f"base path {base_path!r} must be absolute or a URI (TF Serving rejects relative ones)")
    newest = versions[-keep:]
    labels: dict[str, int] = {}
    if newest:
        labels[STABLE] = newest[-1]
    if len(newest) >= 2:
        labels[PREVIOUS] = newest[-2]
    for name, version in (extra_labels or {}).items():
        if version not in versions:
            raise ValueError(f"label {name}={version}: version {version} is not a complete pushed version "
                             f"({versions or 'none yet'})")
        labels[name] = version

    config = model_server_config_pb2.ModelServerConfig()
    model = config.model_config_list.config.add()
    model.name = model_name
    model.base_path = base_path
    model.model_platform = "tensorflow"
    served: list[int] | None = None
    if policy == "latest":
        model.model_version_policy.latest.num_versions = keep
        outside = sorted(v for v in labels.values() if v not in newest)
        if outside:
            raise ValueError(f"labelled version(s) {outside} are older than the {keep} newest the 'latest' "
                             f"policy serves; raise --keep or use --version-policy specific")
    elif policy == "specific":
        served = sorted(set(newest) | set(labels.values()))
        if not served:
            raise ValueError("a 'specific' version policy needs at least one pushed version")
        model.model_version_policy.specific.versions.extend(served)
    else:
        model.model_version_policy.all.CopyFrom(storage_path_pb2.FileSystemStoragePathSourceConfig.ServableVersionPolicy.All())
    for name, version in sorted(labels.items()):
        model.version_labels[name] = version
    return config, labels, served


def export(
    home: str,
    model_name: str = "ranker",
    out_dir: str | None = None,
    base_path: str | None = None,
    keep: int = 2,
    policy: str = "latest",
    extra_labels: dict[str, int] | None = None,
    batching: Batching | None = None,
) -> Exported:
    """Writes OUT_DIR/models.config and OUT_DIR/batching_parameters.txt for HOME's pushed models."""
    home = home if "://" in home else os.path.abspath(home)
    model_dir = Home(home).serving_dir(model_name)
    versions = pushed_versions(model_dir)
    config, labels, served = build_model_server_config(
        model_name, base_path or model_dir, versions, keep, policy, extra_labels
    )
    out_dir = out_dir or os.path.join(home, "serving_config")
    if "://" not in out_dir:
        out_dir = os.path.abspath(out_dir)
    tf.io.gfile.makedirs(out_dir)
    models_path = os.path.join(out_dir, MODELS_CONFIG)
    batching_path = os.path.join(out_dir, BATCHING_CONFIG)
    _write(models_path, text_format.MessageToString(config))
    _write(batching_path, (batching or Batching()).to_text())
    return Exported(models_path, batching_path, base_path or model_dir, versions, policy, served, labels, config)


def _write(path: str, text: str) -> None:
    # Write then rename: a polling TF Serving never reads half a file.
    tmp = path + ".tmp"
    with tf.io.gfile.GFile(tmp, "w") as f:
        f.write(text)
    tf.io.gfile.rename(tmp, path, overwrite=True)
