"""The input's cells as cell sentences, read and ranked in row chunks.

The whole file is ranked in row order with one tie-break RNG, as C2S does, so a cell's
sentence never depends on the chunk size or on which shards a resumed run still needs.
"""

from __future__ import annotations

import functools
from collections.abc import Iterator
from dataclasses import dataclass

import numpy as np

from serving.bulk.config import ReadingConfig
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
