"""The span index's file format: `<index_dir>/<span number, six digits>.json`, one validated span each.

SpanWindow writes and reads it (through tf.io.gfile, so a gs:// home works) and retention reads it
to know which spans are still in the window; this module imports no TensorFlow, so `freshrank gc`
starts without it. The filesystem calls are passed in, as `serving/versions.finished_versions` does.
"""
from __future__ import annotations

import json
import os
from collections.abc import Callable
from typing import IO

SUFFIX = ".json"


def entry_path(directory: str, span: int) -> str:
    return os.path.join(directory, f"{span:06d}{SUFFIX}")


def read_entries(directory: str, listdir: Callable[[str], list[str]] = os.listdir,
                 open_file: Callable[[str], IO[str]] = lambda path: open(path, encoding="utf-8"),
                 ) -> list[tuple[str, dict]]:
    """(path, entry) of every span in the index, oldest span first; no index yet: none."""
    try:
        names = listdir(directory)
    except (FileNotFoundError, NotADirectoryError):
        return []
    entries = []
    for name in names:
        if name.endswith(SUFFIX):
            path = os.path.join(directory, name)
            with open_file(path) as handle:
                entries.append((path, json.load(handle)))
    return sorted(entries, key=lambda pair: pair[1]["span"])
