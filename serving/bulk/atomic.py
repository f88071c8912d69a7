"""Crash-safe file writes: write a temporary file, fsync it, then ``os.replace`` it.

A reader (or a resumed run) sees either the old file or the whole new one, never a part,
whatever moment the process is killed at; the folder is fsynced so the rename is durable.
"""

from __future__ import annotations

import json
import os
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

#: temporary files carry this marker; a run removes leftovers of killed runs
TEMP_MARKER = ".tmp-"


def temp_path(path: Path) -> Path:
    """A temporary sibling of ``path``, unique to this process."""
    return path.with_name(f".{path.name}{TEMP_MARKER}{os.getpid()}")


def fsync_dir(folder: Path) -> None:
    fd = os.open(folder, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


def fsync_file(path: Path) -> None:
    with open(path, "rb+") as file:
        os.fsync(file.fileno())


@contextmanager
def replacing(path: Path) -> Iterator[Path]:
    """Yield a temporary path to write; on success it becomes ``path`` atomically."""
    temp = temp_path(path)
    try:
        yield temp
        fsync_file(temp)
        os.replace(temp, path)
        fsync_dir(path.parent)
    finally:
        temp.unlink(missing_ok=True)


def write_bytes(path: Path, data: bytes) -> None:
    """Write ``data`` to ``path`` atomically."""
    with replacing(path) as temp:
        temp.write_bytes(data)


def write_json(path: Path, value: Any, *, indent: int | None = 2) -> None:
    """Write ``value`` as JSON to ``path`` atomically.

    ``indent=None`` for a file rewritten often: indenting takes the json module's Python
    encoder, whose closures are reference cycles that only the cyclic collector frees
    (a bulk run, which runs it rarely, held one encoder per committed shard).
    """
    write_bytes(path, (json.dumps(value, indent=indent, sort_keys=False) + "\n").encode())


def remove_leftovers(folder: Path) -> int:
    """Delete temporary files that a killed run left in ``folder``; return how many."""
    if not folder.is_dir():
        return 0
    leftovers = [p for p in folder.iterdir() if TEMP_MARKER in p.name]
    for path in leftovers:
        path.unlink(missing_ok=True)
    return len(leftovers)
