"""Putting a SavedModel into a TF Serving base path so that a version appears whole.

The filesystem half of components/atomic_pusher.py, free of TFX imports so tools and tests can
use it cheaply. Locally: copy into a hidden `<base>/.tmp-<version>-<pid>/`, then one `os.rename`
to `<base>/<version>`. TF Serving and serving/ only load all-digit directory names, so the
temporary directory is never loaded, and a killed copy leaves only that hidden directory, which
the next push removes.

Test hook: `FRESHRANK_TEST_PAUSE_BEFORE_RENAME_S=<seconds>` sleeps after the copy and before the
rename, so a test can kill a run mid-push for certain (docs/reliability.md).
"""
from __future__ import annotations

import json
import logging
import os
import shutil
import time

from serving.versions import parse_version

log = logging.getLogger("freshrank.push")
TMP_PREFIX = ".tmp-"
PAUSE_ENV = "FRESHRANK_TEST_PAUSE_BEFORE_RENAME_S"
MARKER_PATH = ("assets.extra", "freshrank", "pushed.json")


def next_version(base_directory: str, now: float) -> int:
    """Unix seconds, or one past the newest version directory already in the base directory.

    Unfinished version directories count here (unlike `serving.versions.finished_versions`): a new
    version must never take the number of one still being copied in.
    """
    existing = [v for v in map(parse_version, _listdir(base_directory)) if v is not None]
    return max([int(now), *(v + 1 for v in existing)])


def remove_leftovers(base_directory: str) -> list[str]:
    """Deletes temporary directories a killed push left; returns their names."""
    removed = []
    for name in _listdir(base_directory):
        if name.startswith(TMP_PREFIX):
            path = os.path.join(base_directory, name)
            log.warning("removing %s, left by a push that did not finish", path)
            if os.path.isdir(path):
                shutil.rmtree(path, ignore_errors=True)
            else:
                os.remove(path)
            removed.append(name)
    return removed


def push_atomically(model_dir: str, base_directory: str, version: int, marker: dict | None = None) -> str:
    """Copies model_dir to `<base>/<version>` so the version appears complete in one rename.

    `marker` (the model artifact's id and URI) is written into the copy as
    `assets.extra/freshrank/pushed.json` before the rename: if the run dies after the rename but
    before ML Metadata records the push, recovery still knows which model this version is.
    """
    os.makedirs(base_directory, exist_ok=True)
    remove_leftovers(base_directory)
    final = os.path.join(base_directory, str(version))
    tmp = os.path.join(base_directory, f"{TMP_PREFIX}{version}-{os.getpid()}")
    shutil.copytree(model_dir, tmp)
    if marker is not None:
        os.makedirs(os.path.join(tmp, *MARKER_PATH[:-1]), exist_ok=True)
        with open(os.path.join(tmp, *MARKER_PATH), "w", encoding="utf-8") as handle:
            json.dump({**marker, "version": version}, handle, sort_keys=True)
    pause = float(os.environ.get(PAUSE_ENV, "0") or 0)
    if pause > 0:
        log.warning("%s=%s: pausing before the rename (tests only)", PAUSE_ENV, pause)
        time.sleep(pause)
    os.rename(tmp, final)  # atomic on one filesystem; fails if `final` exists (never overwrites)
    return final


def _listdir(directory: str) -> list[str]:
    try:
        return os.listdir(directory)
    except FileNotFoundError:
        return []


def pushed_model_ids(base_directory: str) -> set[int]:
    """Model artifact ids named by the push markers of the versions in a base path."""
    ids = set()
    for name in _listdir(base_directory):
        path = os.path.join(base_directory, name, *MARKER_PATH)
        if parse_version(name) is not None and os.path.isfile(path):
            with open(path, encoding="utf-8") as handle:
                ids.add(int(json.load(handle)["model_id"]))
    return ids
