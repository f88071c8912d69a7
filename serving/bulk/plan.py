"""The shard plan: which cells go to which prompt, and which prompts to which shard.

A *unit* is what one prompt covers: one cell, or a group of cells in a multi-cell run.
A *shard* is a run of units committed together as one Parquet file; it is the unit of
resumption. The plan depends only on the input and the settings, so a resumed run makes
the same plan and skips the shards already committed.
"""

from __future__ import annotations

import functools
import math
from collections.abc import Collection, Sequence
from dataclasses import dataclass

import numpy as np


@dataclass(frozen=True)
class Shard:
    """Units of cells committed together.

    Attributes
    ----------
    index
        Position in the plan; names the shard's file.
    rows
        Input rows of every unit, unit after unit.
    bounds
        Offsets of the units into ``rows`` (``n_units + 1`` of them).
    unit_names
        A name per unit (the group's), or ``None`` for single cells.
    """

    index: int
    rows: np.ndarray
    bounds: np.ndarray
    unit_names: tuple[str, ...] | None = None

    @property
    def n_cells(self) -> int:
        return len(self.rows)

    def units(self) -> list[np.ndarray]:
        """The rows of each unit."""
        return [self.rows[a:b] for a, b in zip(self.bounds[:-1], self.bounds[1:], strict=True)]


class ConsecutiveShards(Sequence[Shard]):
    """The shards of a single-cell plan, each made when asked: shard ``i`` holds rows
    ``i * shard_cells`` onwards, so a plan of a million cells holds no array per cell."""

    def __init__(self, n_cells: int, shard_cells: int) -> None:
        self.n_cells = n_cells
        self.shard_cells = shard_cells

    def __len__(self) -> int:
        return math.ceil(self.n_cells / self.shard_cells)

    def __getitem__(self, index):
        if isinstance(index, slice):
            return [self[i] for i in range(*index.indices(len(self)))]
        if index < 0:
            index += len(self)
        if not 0 <= index < len(self):
            raise IndexError(f"shard {index} of {len(self)}")
        start = index * self.shard_cells
        rows = np.arange(start, min(start + self.shard_cells, self.n_cells), dtype=np.int64)
        return Shard(index, rows, np.arange(len(rows) + 1, dtype=np.int64))

    def cells_in(self, indices: Collection[int]) -> int:
        """Cells of the shards ``indices`` (distinct; the last shard may be short)."""
        last = len(self) - 1
        missing = (last + 1) * self.shard_cells - self.n_cells if last in indices else 0
        return len(indices) * self.shard_cells - missing


@dataclass(frozen=True)
class ShardPlan:
    """Every shard of a run; together they hold every input row exactly once."""

    shards: Sequence[Shard]
    n_cells: int
    group_size: int | None = None

    def cells_in(self, indices: Collection[int]) -> int:
        """Cells of the shards ``indices`` (distinct), without making their row arrays."""
        if isinstance(self.shards, ConsecutiveShards):
            return self.shards.cells_in(indices)
        return sum(self.shards[i].n_cells for i in indices)

    def owners(self, start: int, stop: int) -> np.ndarray:
        """The shard index of each input row ``start:stop`` (-1 for a row in none)."""
        if isinstance(self.shards, ConsecutiveShards):
            return np.arange(start, stop, dtype=np.int64) // self.shards.shard_cells
        return self._owner[start:stop]

    @functools.cached_property
    def _owner(self) -> np.ndarray:
        owner = np.full(self.n_cells, -1, dtype=np.int32)  # group runs: 4 bytes a cell
        for shard in self.shards:
            owner[shard.rows] = shard.index
        return owner


def single_cell_plan(n_cells: int, shard_cells: int) -> ShardPlan:
    """Consecutive rows, one cell per unit, ``shard_cells`` cells per shard."""
    return ShardPlan(ConsecutiveShards(n_cells, shard_cells), n_cells)


def split_evenly(rows: np.ndarray, max_size: int) -> list[np.ndarray]:
    """``rows`` in the fewest consecutive parts of at most ``max_size``, sizes within one."""
    n_parts = max(1, math.ceil(len(rows) / max_size))
    return [part for part in np.array_split(rows, n_parts) if len(part)]


def group_units(
    groups: Sequence[str], group_size: int, skip_rows: np.ndarray
) -> list[tuple[str, np.ndarray]]:
    """Named groups of at most ``group_size`` cells that share a value of ``groups``.

    The cells of one value are taken in row order and split evenly, so that a group is
    complete soon after its last row is read. Rows in ``skip_rows`` (empty cells) become
    units of their own, named ``""``.
    """
    import pandas as pd

    codes, values = pd.factorize(pd.Series(np.asarray(groups, dtype=object)))
    kept = np.setdiff1d(np.arange(len(codes)), skip_rows)
    # a stable sort by value keeps row order within a value, values by first appearance
    kept = kept[np.argsort(codes[kept], kind="stable")]
    blocks = np.split(kept, np.flatnonzero(np.diff(codes[kept])) + 1) if len(kept) else []
    units = []
    for block in blocks:
        value = values[codes[block[0]]]
        for j, part in enumerate(split_evenly(block, group_size)):
            units.append((f"{value}#{j}", part))
    units += [("", np.array([r], dtype=np.int64)) for r in np.sort(skip_rows)]
    return units


def group_plan(
    groups: Sequence[str], group_size: int, shard_cells: int, skip_rows: np.ndarray
) -> ShardPlan:
    """Groups of cells (`group_units`) ordered by their last row, packed into shards of
    about ``shard_cells`` cells (whole groups only)."""
    units = sorted(group_units(groups, group_size, skip_rows), key=lambda u: int(u[1][-1]))
    shards: list[Shard] = []
    batch: list[tuple[str, np.ndarray]] = []
    cells = 0
    for unit in units:
        batch.append(unit)
        cells += len(unit[1])
        if cells >= shard_cells:
            shards.append(_shard(len(shards), batch))
            batch, cells = [], 0
    if batch:
        shards.append(_shard(len(shards), batch))
    return ShardPlan(tuple(shards), len(groups), group_size)


def _shard(index: int, units: list[tuple[str, np.ndarray]]) -> Shard:
    sizes = [len(rows) for _, rows in units]
    bounds = np.concatenate([[0], np.cumsum(sizes)]).astype(np.int64)
    rows = np.concatenate([rows for _, rows in units]).astype(np.int64)
    return Shard(index, rows, bounds, tuple(name for name, _ in units))
