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

from dataclasses import dataclass
from typing import Literal

import numpy as np
import scipy.sparse as sp

from tokenizer_ext.errors import ExpressionValueError

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
        return RankedCells(self.words[keep], _offsets_from_lengths(new_lengths))

    def select(self, rows) -> RankedCells:
        """A subset of cells, in the given order."""
        rows = np.asarray(rows, dtype=np.int64)
        starts, stops = self.offsets[rows], self.offsets[rows + 1]
        lengths = stops - starts
        gather = np.repeat(starts - _exclusive_cumsum(lengths), lengths) + np.arange(lengths.sum())
        return RankedCells(self.words[gather], _offsets_from_lengths(lengths))

    @staticmethod
    def concatenate(parts: list[RankedCells]) -> RankedCells:
        """Stack the cells of several parts."""
        if not parts:
            return RankedCells(np.empty(0, np.int32), np.zeros(1, np.int64))
        lengths = np.concatenate([p.lengths for p in parts])
        words = np.concatenate([p.words for p in parts])
        return RankedCells(words, _offsets_from_lengths(lengths))


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
    _check_values(matrix.data)
    if not matrix.has_sorted_indices:
        matrix = sp.csr_matrix(matrix, copy=True)
        matrix.sort_indices()
    if tie_break == "c2s":
        if rng is None:
            raise ValueError("tie_break='c2s' needs the shared RandomState")
        columns, lengths = _rank_c2s(matrix, rng)
    elif tie_break == "stable":
        columns, lengths = _rank_stable(matrix)
    else:
        raise ValueError(f"tie_break must be one of {TIE_BREAKS}, got {tie_break!r}")
    words = column_to_word[columns].astype(np.int32, copy=False)
    ranked = RankedCells(words, _offsets_from_lengths(lengths))
    if _has_merged_columns(column_to_word):
        ranked = _keep_first_occurrence(ranked)
    return ranked.truncate(top_k)


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


def _rank_c2s(matrix: sp.csr_matrix, rng: np.random.RandomState) -> tuple[np.ndarray, np.ndarray]:
    """Columns in C2S order, explicit zeros dropped after the shuffle consumed them.

    Expects sorted indices.
    """
    stored = np.diff(matrix.indptr)
    # RandomState.permutation(n) == arange(n) then shuffle: what sklearn's resample does.
    shuffled_pos = np.concatenate(
        [rng.permutation(n) for n in stored.tolist()] or [np.empty(0, np.int64)]
    )
    row_start = np.repeat(matrix.indptr[:-1].astype(np.int64), stored)
    source = row_start + shuffled_pos
    order = _sort_rows_by_descending_value(matrix.data[source], stored)
    source = source[order]
    return _drop_zeros(matrix.indices[source], matrix.data[source], stored)


def _rank_stable(matrix: sp.csr_matrix) -> tuple[np.ndarray, np.ndarray]:
    """Columns by descending value, ties by ascending column (expects sorted indices)."""
    stored = np.diff(matrix.indptr)
    indices, data = matrix.indices, matrix.data
    order = _sort_rows_by_descending_value(data, stored)
    return _drop_zeros(indices[order], data[order], stored)


def _drop_zeros(
    columns: np.ndarray, values: np.ndarray, stored: np.ndarray
) -> tuple[np.ndarray, np.ndarray]:
    nonzero = values != 0
    if nonzero.all():
        return columns, stored
    row_of = np.repeat(np.arange(len(stored)), stored)
    lengths = np.bincount(row_of[nonzero], minlength=len(stored))
    return columns[nonzero], lengths


def _sort_rows_by_descending_value(values: np.ndarray, lengths: np.ndarray) -> np.ndarray:
    """Permutation sorting each row segment by descending value, ties by position.

    Rows, values and positions are packed into one ``uint64`` key, so a single
    unstable ``np.sort`` replaces a Python loop of per-row stable argsorts. Rows
    are processed in blocks small enough for the row number to fit the key.
    """
    offsets = _offsets_from_lengths(lengths)
    value_key, value_bits = _ascending_value_key(values)
    pos_bits = max(int(lengths.max(initial=1) - 1).bit_length(), 1)
    row_bits = 64 - value_bits - pos_bits
    if row_bits < 1:
        return _lexsort_rows(value_key, offsets)
    block_rows = 1 << row_bits
    parts = [
        _packed_sort_block(value_key, offsets[start : start + block_rows + 1], value_bits, pos_bits)
        for start in range(0, max(len(lengths), 1), block_rows)
    ]
    return np.concatenate(parts)


def _packed_sort_block(
    value_key: np.ndarray, offsets: np.ndarray, value_bits: int, pos_bits: int
) -> np.ndarray:
    first, last = int(offsets[0]), int(offsets[-1])
    local = offsets - first
    lengths = np.diff(local)
    row_of = np.repeat(np.arange(len(lengths), dtype=np.uint64), lengths)
    descending = np.uint64((1 << value_bits) - 1) - value_key[first:last]
    positions = _position_in_row(local).astype(np.uint64)
    key = (row_of << np.uint64(value_bits + pos_bits)) | (descending << np.uint64(pos_bits))
    key |= positions
    key.sort()
    sorted_pos = (key & np.uint64((1 << pos_bits) - 1)).astype(np.int64)
    sorted_row = (key >> np.uint64(value_bits + pos_bits)).astype(np.int64)
    return offsets[:-1][sorted_row] + sorted_pos


def _lexsort_rows(value_key: np.ndarray, offsets: np.ndarray) -> np.ndarray:
    lengths = np.diff(offsets)
    row_of = np.repeat(np.arange(len(lengths)), lengths)
    positions = _position_in_row(offsets)
    return np.lexsort((positions, value_key.max(initial=0) - value_key, row_of))


def _ascending_value_key(values: np.ndarray) -> tuple[np.ndarray, int]:
    """``uint64`` keys ordered like the (non-negative) values, and their bit width."""
    if values.dtype == np.float16:
        values = values.astype(np.float32)
    if values.dtype == np.float32:
        # Non-negative IEEE floats order like their bit patterns.
        return values.view(np.uint32).astype(np.uint64), 32
    if values.dtype.kind in "iu" and (values.size == 0 or values.max() < 2**32):
        return values.astype(np.uint64), 32
    as_f32 = values.astype(np.float32)
    if np.array_equal(as_f32, values):
        return as_f32.view(np.uint32).astype(np.uint64), 32
    distinct, dense_rank = np.unique(values, return_inverse=True)
    return dense_rank.astype(np.uint64), max(len(distinct).bit_length(), 1)


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
    return RankedCells(ranked.words[keep], _offsets_from_lengths(lengths))


def _offsets_from_lengths(lengths: np.ndarray) -> np.ndarray:
    offsets = np.zeros(len(lengths) + 1, dtype=np.int64)
    np.cumsum(lengths, out=offsets[1:])
    return offsets


def _exclusive_cumsum(lengths: np.ndarray) -> np.ndarray:
    return _offsets_from_lengths(lengths)[:-1]


def _position_in_row(offsets: np.ndarray) -> np.ndarray:
    lengths = np.diff(offsets)
    return np.arange(offsets[-1], dtype=np.int64) - np.repeat(offsets[:-1], lengths)
