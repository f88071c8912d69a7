"""The input's ranked row chunks (`serving.bulk.input_file.iter_cells`) gathered into shards.

`ShardAssembler` keeps only the cells of shards still to answer and releases each shard
as soon as all its cells are in, so memory holds the shards in progress, not the file.
"""

from __future__ import annotations

import functools
from dataclasses import dataclass

import numpy as np

from serving.bulk.plan import Shard, ShardPlan
from tokenizer_ext import GeneVocabulary, RankedCells, RankedChunk
from tokenizer_ext.sentences import ranked_to_sentences


@dataclass(frozen=True)
class ReadyShard:
    """A shard whose cells are all read: names and ranked cells aligned with ``shard.rows``."""

    shard: Shard
    names: list[str]
    cells: RankedCells
    vocabulary: GeneVocabulary

    @functools.cached_property
    def sentences(self) -> list[str]:
        """The cells as sentences (empty for a cell without expressed genes)."""
        return ranked_to_sentences(self.cells, self.vocabulary)


class ShardAssembler:
    """Turns a stream of `RankedChunk`s into `ReadyShard`s.

    Parameters
    ----------
    plan
        The run's shards.
    skip
        Indices of shards already committed: their cells are not kept.
    """

    def __init__(self, plan: ShardPlan, skip: set[int]) -> None:
        self.plan = plan
        self.missing = {s.index: s.n_cells for s in plan.shards if s.index not in skip}
        # per pending shard: the chunks holding its cells read so far, and their offsets
        self.cells: dict[int, list[tuple[RankedChunk, np.ndarray]]] = {}

    @property
    def pending(self) -> bool:
        """Whether some shard still waits for cells."""
        return bool(self.missing)

    def add(self, chunk: RankedChunk) -> list[ReadyShard]:
        """Keep the chunk's cells that pending shards need; return the shards completed."""
        owners = self.plan.owners(chunk.start, chunk.stop)
        by_shard = np.argsort(owners, kind="stable")  # each shard's offsets stay ascending
        cuts = np.flatnonzero(np.diff(owners[by_shard])) + 1
        ready = []
        for offsets in np.split(by_shard, cuts) if len(by_shard) else ():
            index = int(owners[offsets[0]])
            if index not in self.missing:
                continue
            self.cells.setdefault(index, []).append((chunk, offsets))
            self.missing[index] -= len(offsets)
            if self.missing[index] == 0:
                del self.missing[index]
                ready.append(self._release(index))
        return ready

    def _release(self, index: int) -> ReadyShard:
        shard = self.plan.shards[index]
        parts = self.cells.pop(index)
        rows = np.concatenate([chunk.start + offsets for chunk, offsets in parts])
        cells = RankedCells.concatenate([chunk.ranked.select(offsets) for chunk, offsets in parts])
        names = np.concatenate([np.asarray(chunk.obs_names)[offsets] for chunk, offsets in parts])
        if not np.array_equal(rows, shard.rows):  # a group shard lists rows unit by unit
            positions = np.searchsorted(rows, shard.rows)
            cells, names = cells.select(positions), names[positions]
        vocabulary = parts[0][0].vocabulary
        return ReadyShard(shard, [str(name) for name in names.tolist()], cells, vocabulary)
