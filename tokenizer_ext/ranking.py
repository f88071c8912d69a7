"""Rank the expressed genes of each cell, the way C2S orders a cell sentence.

Two tie-breaks are offered:

``"c2s"``
    Byte-identical to C2S (``generate_vocabulary`` then ``generate_sentences``, as
    ``CSData`` runs them): one ``RandomState(seed)`` for the whole matrix, each
    row's stored entries, in column order, permuted with ``RandomState.shuffle``
    (what ``sklearn.utils.shuffle`` calls), then a stable sort by descending value.
    Column order, because ``generate_vocabulary``'s ``adata.X > 0`` sorts a CSR
    matrix's indices in place before the sentences are made.
``"stable"``
    Deterministic and vectorised: equal values keep ascending column order. It
    differs from ``"c2s"`` only by permutations inside groups of equal values.
"""

from __future__ import annotations

import itertools
import sys
from dataclasses import dataclass
from typing import Literal

import numpy as np
import scipy.sparse as sp

from tokenizer_ext.errors import ExpressionValueError
from tokenizer_ext.row_order import (
    SORT_BLOCK_ELEMENTS,
    entries_by_key,
    offsets_from_lengths,
    ranked_entries,
    value_keys,
)

TieBreak = Literal["c2s", "stable"]
TIE_BREAKS: tuple[str, ...] = ("c2s", "stable")


@dataclass(frozen=True)
class RankedCells:
    """Word indices of each cell's expressed genes, highest expression first.

    Rows are ragged and stored flat, like CSR.

    Attributes
    ----------
    words : numpy.ndarray
        ``int32`` vocabulary word indices of all rows, concatenated.
    offsets : numpy.ndarray
        ``int64`` array of ``n_cells + 1`` row boundaries into ``words``.
    """

    words: np.ndarray
    offsets: np.ndarray

    def __len__(self) -> int:
        return len(self.offsets) - 1

    @property
    def lengths(self) -> np.ndarray:
        """Number of expressed genes in each cell."""
        return np.diff(self.offsets)

    def row(self, i: int) -> np.ndarray:
        """Word indices of cell ``i``."""
        return self.words[self.offsets[i] : self.offsets[i + 1]]

    def truncate(self, top_k: int | None) -> RankedCells:
        """Keep the first ``top_k`` genes of every cell (all when ``None``)."""
        if top_k is None or (len(self) and self.lengths.max(initial=0) <= top_k):
            return self
        if top_k < 0:
            raise ValueError(f"top_k must be >= 0, got {top_k}")
        keep = _position_in_row(self.offsets) < top_k
        new_lengths = np.minimum(self.lengths, top_k)
        return RankedCells(self.words[keep], offsets_from_lengths(new_lengths))

    def select(self, rows) -> RankedCells:
        """A subset of cells, in the given order."""
        rows = np.asarray(rows, dtype=np.int64)
        starts, stops = self.offsets[rows], self.offsets[rows + 1]
        lengths = stops - starts
        gather = np.repeat(starts - offsets_from_lengths(lengths)[:-1], lengths) + np.arange(
            lengths.sum()
        )
        return RankedCells(self.words[gather], offsets_from_lengths(lengths))

    @staticmethod
    def concatenate(parts: list[RankedCells]) -> RankedCells:
        """Stack the cells of several parts."""
        if not parts:
            return RankedCells(np.empty(0, np.int32), np.zeros(1, np.int64))
        lengths = np.concatenate([p.lengths for p in parts])
        words = np.concatenate([p.words for p in parts])
        return RankedCells(words, offsets_from_lengths(lengths))


def rank_csr(
    matrix: sp.csr_matrix,
    column_to_word: np.ndarray,
    *,
    tie_break: TieBreak = "stable",
    rng: np.random.RandomState | None = None,
    top_k: int | None = None,
) -> RankedCells:
    """Rank the stored non-zero entries of every row of a CSR matrix.

    Parameters
    ----------
    matrix : scipy.sparse.csr_matrix
        Cells x genes, non-negative; indices need not be sorted (it is not modified).
    column_to_word : numpy.ndarray
        Word index of every column (:attr:`GeneVocabulary.column_to_word`).
    tie_break : {"c2s", "stable"}
        See the module docstring.
    rng : numpy.random.RandomState, optional
        Required for ``"c2s"``; consumed exactly as C2S consumes the global RNG, so a
        caller iterating chunks passes the same instance to every chunk.
    top_k : int, optional
        Keep only the first ``top_k`` genes of each cell.

    Returns
    -------
    RankedCells
    """
    merged = _has_merged_columns(column_to_word)
    # With merged columns a word's duplicates go first, so cut to top_k only afterwards.
    cut = None if merged else top_k
    if tie_break not in TIE_BREAKS:
        raise ValueError(f"tie_break must be one of {TIE_BREAKS}, got {tie_break!r}")
    if tie_break == "c2s" and rng is None:
        raise ValueError("tie_break='c2s' needs the shared RandomState")
    matrix = _with_sorted_indices(matrix)
    indptr = matrix.indptr.astype(np.int64, copy=False)
    words, lengths = [], []
    # Blocks of rows in order (the RNG runs through them as through the whole matrix),
    # small enough that every temporary stays in cache and in the heap, not in fresh
    # pages of its own.
    for first, last in _row_blocks(indptr, SORT_BLOCK_ELEMENTS):
        a, b = int(indptr[first]), int(indptr[last])
        data, indices = matrix.data[a:b], matrix.indices[a:b]
        _check_values(data)
        block_indptr = indptr[first : last + 1] - a
        if tie_break == "c2s":
            columns, kept = _rank_c2s(data, indices, block_indptr, rng, cut)
        else:
            columns, kept = ranked_entries(data, block_indptr, cut)
            columns = indices[columns]
        words.append(column_to_word[columns].astype(np.int32, copy=False))
        lengths.append(kept)
    if not words:
        return RankedCells(np.empty(0, np.int32), np.zeros(1, np.int64))
    ranked = RankedCells(np.concatenate(words), offsets_from_lengths(np.concatenate(lengths)))
    if merged:
        ranked = _keep_first_occurrence(ranked).truncate(top_k)
    return ranked


def _row_blocks(indptr: np.ndarray, max_entries: int) -> list[tuple[int, int]]:
    """Consecutive row ranges of at most ``max_entries`` stored entries (or one row)."""
    blocks, first, n_rows = [], 0, len(indptr) - 1
    while first < n_rows:
        last = int(np.searchsorted(indptr, indptr[first] + max_entries, side="right")) - 1
        last = min(max(last, first + 1), n_rows)
        blocks.append((first, last))
        first = last
    return blocks


def advance_c2s_rng(rng: np.random.RandomState, stored_counts: np.ndarray) -> None:
    """Consume ``rng`` exactly as `rank_csr` with ``tie_break="c2s"`` does for rows with
    these numbers of stored entries, without ranking them.

    A worker that ranks only rows ``a:b`` of a file replays the rows before ``a`` with
    this to start from the state a whole-file run has at row ``a``: the shuffle of a row
    consumes the RNG according to its length only.
    """
    counts = np.asarray(stored_counts, dtype=np.int64)
    if counts.size == 0:
        return
    scratch = np.empty(int(counts.max()), dtype=np.int64)
    for n in counts.tolist():
        rng.shuffle(scratch[:n])  # what rng.permutation(n) consumes, with no allocation


def _check_values(data: np.ndarray) -> None:
    if data.size == 0:
        return
    if data.dtype.kind == "f" and np.isnan(data).any():
        raise ExpressionValueError("expression contains NaN")
    if data.dtype.kind in "fi" and data.min() < 0:
        raise ExpressionValueError(
            "expression contains negative values (scaled data?); C2S ranks non-negative "
            "normalised expression: use .raw (use_raw=True) or a log-normalised layer"
        )


def _rank_c2s(
    data: np.ndarray,
    indices: np.ndarray,
    indptr: np.ndarray,
    rng: np.random.RandomState,
    top_k: int | None,
) -> tuple[np.ndarray, np.ndarray]:
    """Columns in C2S order, rows in column order; explicit zeros consume the RNG, then
    are dropped."""
    keys, key_bits = value_keys(data)
    # Each entry's value key and column travel together through the shuffle (one uint64,
    # written through two uint32 views), so the shuffled rows are read straight off the
    # views: no permutation array, no gather of values.
    packed = np.empty(len(keys), dtype=np.uint64)
    low, high = (0, 1) if sys.byteorder == "little" else (1, 0)
    shuffled_columns, shuffled_keys = (
        packed.view(np.uint32)[low::2],
        packed.view(np.uint32)[high::2],
    )
    shuffled_columns[:] = indices
    shuffled_keys[:] = keys
    _shuffle_rows(rng, packed, indptr)
    # Ties keep their shuffled order: ascending entry index is ascending position. The
    # keys are copied out of the packed entries first: partitions run faster on them.
    order, lengths = entries_by_key(np.ascontiguousarray(shuffled_keys), key_bits, indptr, top_k)
    return shuffled_columns[order].astype(np.int64), lengths


def _shuffle_rows(rng: np.random.RandomState, entries: np.ndarray, indptr: np.ndarray) -> None:
    """Shuffle each row's slice of ``entries`` in place with ``rng.shuffle``.

    The draws are those of each row's ``rng.permutation(n)`` (what sklearn's resample
    draws, C2S's tie-break): a shuffle's swaps depend on the length only, not on the
    items. Rows of 0 or 1 entries draw nothing.
    """
    bounds = indptr.tolist()
    for start, stop in itertools.pairwise(bounds):
        if stop - start > 1:
            rng.shuffle(entries[start:stop])


def _with_sorted_indices(matrix: sp.csr_matrix) -> sp.csr_matrix:
    """``matrix`` with each row's entries in column order (a sorted copy if needed)."""
    if matrix.has_sorted_indices:
        return matrix
    matrix = sp.csr_matrix(matrix, copy=True)
    matrix.sort_indices()
    return matrix


def _has_merged_columns(column_to_word: np.ndarray) -> bool:
    # Words are numbered by first column, so fewer words than columns means a merge.
    return len(column_to_word) > 0 and int(column_to_word.max()) + 1 < len(column_to_word)


def _keep_first_occurrence(ranked: RankedCells) -> RankedCells:
    """Merged columns: a word keeps its first (highest) position in each row."""
    if ranked.words.size == 0:
        return ranked
    n_words = int(ranked.words.max()) + 1
    row_of = np.repeat(np.arange(len(ranked), dtype=np.int64), ranked.lengths)
    _, first = np.unique(row_of * n_words + ranked.words, return_index=True)
    keep = np.zeros(len(ranked.words), dtype=bool)
    keep[first] = True
    lengths = np.bincount(row_of[keep], minlength=len(ranked))
    return RankedCells(ranked.words[keep], offsets_from_lengths(lengths))


def _position_in_row(offsets: np.ndarray) -> np.ndarray:
    lengths = np.diff(offsets)
    return np.arange(offsets[-1], dtype=np.int64) - np.repeat(offsets[:-1], lengths)
