"""Which version directories a base path holds, and which of them a version policy wants.

Mirrors FileSystemStoragePathSource: a child directory is a version only if its whole name is
an integer ("00000123" is version 123); everything else is skipped. One deliberate addition,
for the Pusher's non-atomic copies (tensorflow/serving#631, #1086): a version directory is only
reported once its `saved_model.pb` (or `.pbtxt`) exists. The Pusher writes that file last, so a
half-copied version is never loaded; it is picked up by the poll after the copy completes.
"""
from __future__ import annotations

import logging
import os
import re
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

_VERSION_NAME = re.compile(r"^[0-9]+$")
_MAX_VERSION = 2**63 - 1
SAVED_MODEL_FILES = ("saved_model.pb", "saved_model.pbtxt")

log = logging.getLogger("serving.versions")


@dataclass
class ScanResult:
    """Complete versions (number -> directory) and directories still being written."""

    versions: dict[int, str] = field(default_factory=dict)
    incomplete: dict[int, str] = field(default_factory=dict)
    base_path_exists: bool = True


def parse_version(name: str) -> int | None:
    """Version number of a directory name, or None when it is not a version directory."""
    if not _VERSION_NAME.match(name):
        return None
    number = int(name)
    return number if number <= _MAX_VERSION else None


def is_complete(version_dir: str, isfile: Callable[[str], bool] = os.path.isfile) -> bool:
    return any(isfile(os.path.join(version_dir, f)) for f in SAVED_MODEL_FILES)


def finished_versions(base_path: str, listdir: Callable[[str], list[str]] = os.listdir,
                      isfile: Callable[[str], bool] = os.path.isfile) -> list[int]:
    """The finished versions under a base path, oldest first: the one rule the server, the pusher,
    rollback and the serving-config export share (a version-named directory whose saved_model.pb
    or .pbtxt exists). `listdir` and `isfile` may be another filesystem's (tf.io.gfile for gs://);
    this module itself imports no TensorFlow."""
    try:
        names = listdir(base_path)
    except (FileNotFoundError, NotADirectoryError):
        return []
    found = set()
    for name in names:
        name = name.rstrip("/")  # object stores list folders with a trailing slash
        number = parse_version(name)
        if number is not None and is_complete(os.path.join(base_path, name), isfile):
            found.add(number)
    return sorted(found)


def scan_base_path(base_path: str) -> ScanResult:
    """Lists the version directories directly under base_path."""
    result = ScanResult()
    try:
        entries = list(os.scandir(base_path))
    except FileNotFoundError:
        result.base_path_exists = False
        return result
    except NotADirectoryError:
        result.base_path_exists = False
        return result
    for entry in entries:
        number = parse_version(entry.name)
        if number is None:
            continue
        try:
            if not entry.is_dir():
                continue
        except OSError:
            continue
        # Two names for one number ("7" and "007"): keep the first in sorted order, as a
        # deterministic choice; TF Serving's behaviour is unspecified here.
        path = entry.path
        target = result.versions if is_complete(path) else result.incomplete
        if number in target and target[number] <= path:
            continue
        target[number] = path
    for number in list(result.incomplete):
        if number in result.versions:
            del result.incomplete[number]
    return result


def aspired_versions(available: set[int] | dict[int, Any], policy: Any) -> set[int]:
    """Applies a ServableVersionPolicy (latest{N} by default, all, specific) to versions."""
    numbers = sorted(available, reverse=True)
    choice = policy.WhichOneof("policy_choice") if policy is not None else None
    if choice == "all":
        return set(numbers)
    if choice == "specific":
        wanted = set(policy.specific.versions)
        return {n for n in numbers if n in wanted}
    num_versions = 1
    if choice == "latest" and policy.latest.num_versions > 0:
        num_versions = policy.latest.num_versions
    return set(numbers[:num_versions])
