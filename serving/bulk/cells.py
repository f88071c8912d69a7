"""The input's cells, read and ranked in row chunks, and gathered into shards.

The whole file is ranked in row order with one tie-break RNG, as C2S does, so a cell's
sentence never depends on the chunk size or on which shards a resumed run still needs.
`ShardAssembler` keeps only the cells of shards still to answer and releases each shard
as soon as all its cells are in, so memory holds the shards in progress, not the file.
"""

from __future__ import annotations

import functools
from collections.abc import Iterator
from dataclasses import dataclass

import numpy as np

from serving.bulk.config import ReadingConfig
from serving.bulk.plan import Shard, ShardPlan
from tokenizer_ext import GeneVocabulary, RankedCells, iter_ranked_chunks
from tokenizer_ext.sentences import ranked_to_sentences

#: the most bytes one chunk of a dense matrix may take (sparse chunks are smaller)
READ_BYTES = 32 * 1024 * 1024


@dataclass(frozen=True)
class CellChunk:
    """Consecutive rows of the input, ranked and cut to the prompt's genes.

    Attributes
    ----------
    start, stop
        The row range.
    names
        ``obs_names`` of the rows.
    ranked
        Each row's word indices in ``vocabulary``, most expressed first (none for a cell
        without expressed genes).
    vocabulary
        The input's genes.
    """

    start: int
    stop: int
    names: np.ndarray
    ranked: RankedCells
    vocabulary: GeneVocabulary

    @functools.cached_property
    def sentences(self) -> list[str]:
        """One cell sentence per row (empty for a cell without expressed genes), made only
        for the paths that send text (a remote gateway, Ray Serve handles, groups)."""
        return ranked_to_sentences(self.ranked, self.vocabulary)


def rows_per_read(config: ReadingConfig, n_vars: int) -> int:
    """Rows per chunk: ``config.read_rows``, fewer when a dense chunk would be too large."""
    return max(1, min(config.read_rows, READ_BYTES // max(1, 4 * n_vars)))


def iter_cell_chunks(config: ReadingConfig, vocabulary: GeneVocabulary) -> Iterator[CellChunk]:
    """Every row of the input, in order, as `CellChunk`s."""
    chunks = iter_ranked_chunks(
        config.input,
        vocabulary=vocabulary,
        tie_break=config.tie_break,
        seed=config.rank_seed,
        top_k=config.genes_per_cell,
        layer=config.layer,
        use_raw=config.use_raw,
        chunk_size=rows_per_read(config, vocabulary.n_columns),
    )
    for chunk in chunks:
        yield CellChunk(chunk.start, chunk.stop, chunk.obs_names, chunk.ranked, vocabulary)


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
        self.missing = {s.index: s.n_cells for s in plan.shards if s.index not in skip}
        # per pending shard: the chunks holding its cells read so far, and their offsets
        self.cells: dict[int, list[tuple[CellChunk, np.ndarray]]] = {}

    @property
    def pending(self) -> bool:
        """Whether some shard still waits for cells."""
        return bool(self.missing)

    def add(self, chunk: CellChunk) -> list[ReadyShard]:
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
        names = np.concatenate([np.asarray(chunk.names)[offsets] for chunk, offsets in parts])
        if not np.array_equal(rows, shard.rows):  # a group shard lists rows unit by unit
            positions = np.searchsorted(rows, shard.rows)
            cells, names = cells.select(positions), names[positions]
        vocabulary = parts[0][0].vocabulary
        return ReadyShard(shard, [str(name) for name in names.tolist()], cells, vocabulary)
