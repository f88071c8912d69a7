"""The work of a distributed run: row ranges of pending shards, and where C2S's RNG is at
each range's first row.

A single-cell plan's shards are consecutive rows, so consecutive pending shards form one
row range that one task reads in one pass. C2S ranks the whole file with one
``RandomState`` (`tokenizer_ext.ranking`), so a task that starts at row ``a`` needs the
state a whole-file run has there: `rng_states` replays the rows before ``a`` from their
numbers of stored entries alone (the CSR ``indptr``), which costs a shuffle per row and no
ranking.
"""

from __future__ import annotations

from collections.abc import Iterable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from serving.bulk.plan import Shard, ShardPlan
from tokenizer_ext import advance_c2s_rng, open_expression

#: rows whose stored-entry counts are read at a time while replaying the RNG
COUNT_BLOCK_ROWS = 65_536


@dataclass(frozen=True)
class RowRange:
    """Consecutive shards that one task reads and answers.

    Attributes
    ----------
    shards
        The shards, in row order, with no gap between them.
    rng_state
        ``RandomState.get_state()`` at ``start`` for the ``c2s`` tie-break, else ``None``.
    template_draws
        The per-row template draws of rows ``start:stop``, when variants are drawn.
    """

    shards: tuple[Shard, ...]
    rng_state: Any = None
    template_draws: np.ndarray | None = None

    @property
    def start(self) -> int:
        return int(self.shards[0].rows[0])

    @property
    def stop(self) -> int:
        return int(self.shards[-1].rows[-1]) + 1

    @property
    def n_cells(self) -> int:
        return self.stop - self.start


def pending_ranges(plan: ShardPlan, done: set[int], shards_per_range: int) -> Iterator[RowRange]:
    """The plan's uncommitted shards as ranges of at most ``shards_per_range`` shards, made
    as they are asked for: a shard's row arrays cost 16 bytes a cell, which a driver must
    not hold for a whole atlas."""
    if plan.group_size is not None:
        raise ValueError("row ranges need a single-cell plan (consecutive rows per shard)")
    run: list[Shard] = []
    for shard in plan.shards:
        if shard.index in done:
            if run:
                yield RowRange(tuple(run))
            run = []
            continue
        run.append(shard)
        if len(run) == shards_per_range:
            yield RowRange(tuple(run))
            run = []
    if run:
        yield RowRange(tuple(run))


def rng_states(
    path: Path, starts: Iterable[int], seed: int, *, layer: str | None, use_raw: bool
) -> Iterator[Any]:
    """The ``c2s`` tie-break's ``RandomState`` state at each of ``starts`` (ascending)."""
    rng = np.random.RandomState(seed)
    position = 0
    with open_expression(path, layer=layer, use_raw=use_raw) as source:
        for start in starts:
            if start < position:
                raise ValueError("range starts must ascend")
            for a in range(position, start, COUNT_BLOCK_ROWS):
                advance_c2s_rng(rng, stored_counts(source, a, min(start, a + COUNT_BLOCK_ROWS)))
            position = start
            yield rng.get_state()


def stored_counts(source, start: int, stop: int) -> np.ndarray:
    """Stored entries of rows ``start:stop``, as `rank_csr` sees them.

    A backed CSR matrix answers from its ``indptr`` without reading values; anything
    else (dense, CSC) is read as the ranking reads it, zeros of dense rows dropped.
    """
    indptr = _backed_indptr(source.matrix)
    if indptr is not None:
        return np.diff(np.asarray(indptr[start : stop + 1], dtype=np.int64))
    return np.diff(source.read_rows(start, stop).indptr)


def _backed_indptr(matrix):
    group = getattr(matrix, "group", None)  # anndata's backed sparse dataset
    if getattr(matrix, "format", None) == "csr" and group is not None and "indptr" in group:
        return group["indptr"]
    return None
