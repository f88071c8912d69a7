"""Collect cells as row chunks are read, and release each shard once all its cells are in.

Only cells of shards still to answer are kept, and a shard leaves as soon as it is
complete, so memory holds the shards in progress, not the file.
"""

from __future__ import annotations

from serving.bulk.answer import ReadyShard
from serving.bulk.cells import CellChunk
from serving.bulk.plan import ShardPlan
from tokenizer_ext import RankedCells


class ShardAssembler:
    """Turns a stream of `CellChunk`s into `ReadyShard`s.

    Parameters
    ----------
    plan
        The run's shards.
    skip
        Indices of shards already committed: their cells are not kept.
    """

    def __init__(self, plan: ShardPlan, skip: set[int]) -> None:
        self.plan = plan
        self.owner = plan.shard_of_row()
        self.missing = {s.index: s.n_cells for s in plan.shards if s.index not in skip}
        self.cells: dict[int, tuple[CellChunk, int]] = {}

    @property
    def pending(self) -> bool:
        """Whether some shard still waits for cells."""
        return bool(self.missing)

    def add(self, chunk: CellChunk) -> list[ReadyShard]:
        """Keep the chunk's cells that pending shards need; return the shards completed."""
        arrived: dict[int, int] = {}
        owners = self.owner[chunk.start : chunk.stop].tolist()
        for offset, index in enumerate(owners):
            if index in self.missing:
                self.cells[chunk.start + offset] = (chunk, offset)
                arrived[index] = arrived.get(index, 0) + 1
        ready = []
        for index in sorted(arrived):
            self.missing[index] -= arrived[index]
            if self.missing[index] == 0:
                del self.missing[index]
                ready.append(self._release(index))
        return ready

    def _release(self, index: int) -> ReadyShard:
        shard = self.plan.shards[index]
        cells = [self.cells.pop(row) for row in shard.rows.tolist()]
        names = [str(chunk.names[offset]) for chunk, offset in cells]
        # the shard's rows, gathered chunk by chunk (a shard spans one or a few chunks)
        parts, first = [], 0
        for last in range(1, len(cells) + 1):
            if last == len(cells) or cells[last][0] is not cells[first][0]:
                offsets = [offset for _, offset in cells[first:last]]
                parts.append(cells[first][0].ranked.select(offsets))
                first = last
        vocabulary = cells[0][0].vocabulary
        return ReadyShard(shard, names, RankedCells.concatenate(parts), vocabulary)
