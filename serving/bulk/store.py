"""The run's files on disk: every one written whole or not at all, and the Parquet shard
store (shards, the run's manifest and its progress record) in the output folder.

A write goes to a temporary file, is fsynced, then ``os.replace``d: a reader (or a resumed
run) sees the old file or the whole new one, whatever moment the process is killed at,
and the folder is fsynced so the rename is durable.

Layout of ``out/``::

    manifest.json           what the run is (input fingerprint, settings, plan size)
    progress.json           committed shards and cells, rewritten as shards commit
    shards/part-000012.parquet

A shard file exists only once its rows were written whole, so the shard files themselves
are the source of truth: a run killed between a shard's commit and its progress record
loses nothing, and the record is rebuilt from them.
"""

from __future__ import annotations

import json
import os
import time
from collections.abc import Collection, Iterator, Mapping
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq

from serving.bulk.errors import ResumeMismatch
from serving.bulk.plan import ShardPlan
from serving.bulk.rows import ROW_SCHEMA

MANIFEST, PROGRESS, SHARDS = "manifest.json", "progress.json", "shards"
#: files of a run, removed by ``overwrite`` (outputs are replaced when rewritten)
RUN_FILES = (MANIFEST, PROGRESS)
#: least seconds between two rewrites of the progress record; the first and the finished
#: one are always written. Each record lists every committed shard, and a run of millions
#: of cells commits thousands: one record per commit would cost time squared in shards.
PROGRESS_INTERVAL_S = 0.5


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


def parquet_bytes(table: pa.Table) -> bytes:
    """A shard's table as the bytes of its Parquet file (the same wherever it is made)."""
    sink = pa.BufferOutputStream()
    pq.write_table(table, sink)
    return sink.getvalue().to_pybytes()


def shard_name(index: int) -> str:
    return f"part-{index:06d}.parquet"


class ShardStore:
    """The output folder of one run.

    Parameters
    ----------
    out
        The folder (created when missing).
    """

    def __init__(self, out: Path) -> None:
        self.out = Path(out)
        self.shards_dir = self.out / SHARDS
        self._progress_at = -float("inf")

    def open_run(self, manifest: Mapping[str, Any], *, overwrite: bool) -> None:
        """Start or resume the run that ``manifest`` describes.

        Raises
        ------
        ResumeMismatch
            When the folder holds a run of another input or with other settings.
        """
        self.shards_dir.mkdir(parents=True, exist_ok=True)
        if overwrite:
            self._clear()
        path = self.out / MANIFEST
        if path.exists():
            _check_same_run(json.loads(path.read_text("utf-8")), manifest, self.out)
        else:
            write_json(path, dict(manifest))
        remove_leftovers(self.shards_dir)
        remove_leftovers(self.out)

    def _clear(self) -> None:
        for path in self.shards_dir.iterdir():
            path.unlink()
        for name in RUN_FILES:
            (self.out / name).unlink(missing_ok=True)

    def committed(self, plan: ShardPlan) -> set[int]:
        """Indices of the plan's shards whose files are complete."""
        return {s.index for s in plan.shards if self._complete(s.index, s.n_cells)}

    def _complete(self, index: int, n_cells: int) -> bool:
        path = self.shards_dir / shard_name(index)
        if not path.exists():
            return False
        try:
            return pq.read_metadata(path).num_rows == n_cells
        except (OSError, pa.ArrowException):  # not written by a commit: redo it
            return False

    def commit(self, index: int, table: pa.Table | bytes) -> None:
        """Write shard ``index`` atomically (a table, or its `parquet_bytes`)."""
        data = table if isinstance(table, bytes) else parquet_bytes(table)
        write_bytes(self.shards_dir / shard_name(index), data)

    def record_progress(self, done: Collection[int], plan: ShardPlan) -> None:
        """Rewrite the progress record (for people and monitors; the shards decide), at
        most every `PROGRESS_INTERVAL_S`, and always once every shard is done."""
        now = time.monotonic()
        if len(done) < len(plan.shards) and now - self._progress_at < PROGRESS_INTERVAL_S:
            return
        self._progress_at = now
        done = sorted(done)
        cells = plan.cells_in(done)
        write_json(
            self.out / PROGRESS,
            {
                "n_shards": len(plan.shards),
                "n_cells": plan.n_cells,
                "done_shards": len(done),
                "done_cells": cells,
                "finished": len(done) == len(plan.shards),
                "updated_at": time.strftime("%Y-%m-%dT%H:%M:%S%z"),
                "shards": done,
            },
            indent=None,  # rewritten as shards commit: see `write_json`
        )

    def read_rows(self, plan: ShardPlan) -> pa.Table:
        """Every committed row, ordered by input row."""
        tables = [pq.read_table(self.shards_dir / shard_name(s.index)) for s in plan.shards]
        table = pa.concat_tables(tables) if tables else ROW_SCHEMA.empty_table()
        return table.sort_by("row")

    def iter_ordered_rows(self, plan: ShardPlan, batch_rows: int) -> Iterator[pa.Table]:
        """Every committed row, ordered by input row, in tables of about ``batch_rows``.

        When the shards hold consecutive rows (single-cell runs), they are read one after
        another and only one batch is in memory; a group run's shards interleave rows, so
        they are read whole and sorted.
        """
        if not _in_row_order(plan):
            for batch in self.read_rows(plan).to_batches(max_chunksize=batch_rows):
                yield pa.Table.from_batches([batch])
            return
        pending, held = [], 0
        for shard in plan.shards:
            pending.append(pq.read_table(self.shards_dir / shard_name(shard.index)))
            held += pending[-1].num_rows
            if held >= batch_rows:
                yield pa.concat_tables(pending)
                pending, held = [], 0
        if pending:
            yield pa.concat_tables(pending)


def _in_row_order(plan: ShardPlan) -> bool:
    """Whether the shards, one after another, hold rows 0, 1, 2... in order."""
    start = 0
    for shard in plan.shards:
        rows = shard.rows
        if len(rows) and (rows[0] != start or rows[-1] != start + len(rows) - 1):
            return False
        if len(rows) > 1 and not bool(np.all(np.diff(rows) == 1)):
            return False
        start += len(rows)
    return True


def _check_same_run(found: Mapping[str, Any], wanted: Mapping[str, Any], out: Path) -> None:
    wanted = json.loads(json.dumps(wanted))  # compare as stored: tuples become lists
    differing = sorted(k for k in set(found) | set(wanted) if found.get(k) != wanted.get(k))
    if differing:
        shown = "; ".join(f"{k}: {found.get(k)!r} -> {wanted.get(k)!r}" for k in differing[:6])
        raise ResumeMismatch(
            f"{out} holds a run with other settings or another input ({shown}). "
            "Use another --out, or --overwrite to discard it."
        )
