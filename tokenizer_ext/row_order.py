"""Each CSR row's entries by descending value, cut to the top k: the sort under ranking.

Values become ``uint32`` keys that order like them (`value_keys`). Only the entries that
can be in a row's top k are sorted: those at or above the row's k-th largest key, found by
a partition (O(row)). Key and entry index are packed into one ``uint64`` and rows laid out
in padded 2-D blocks sorted along their rows: one vectorised sort per block instead of a
Python loop of per-row argsorts. Ties go to the lower entry index.
"""

from __future__ import annotations

import numpy as np

from tokenizer_ext.errors import ExpressionValueError

#: elements of one padded block of rows; callers also rank this many entries at a time,
#: so that 1 MiB of ``uint32`` keys (2 MiB packed) stays below glibc's mmap threshold
SORT_BLOCK_ELEMENTS = 1 << 18


def ranked_entries(
    values: np.ndarray, indptr: np.ndarray, top_k: int | None
) -> tuple[np.ndarray, np.ndarray]:
    """Each CSR row's non-zero entries by descending value, ties by ascending entry.

    Returns
    -------
    order : numpy.ndarray
        ``int64`` entry indices, rows concatenated, each row cut to ``top_k``.
    lengths : numpy.ndarray
        Entries kept per row.
    """
    keys, key_bits = value_keys(values)
    return entries_by_key(keys, key_bits, indptr, top_k)


def entries_by_key(
    keys: np.ndarray, key_bits: int, indptr: np.ndarray, top_k: int | None
) -> tuple[np.ndarray, np.ndarray]:
    """`ranked_entries` of keys from `value_keys` (``0`` for a zero value)."""
    indptr = np.asarray(indptr, dtype=np.int64)
    lengths = np.diff(indptr)
    floor = _kth_largest_keys(keys, indptr, top_k)
    width = int(lengths.max(initial=0))
    if floor is not None and width and int(lengths.min()) == width:
        # rows of one length (a generated or filtered atlas): compared and counted in 2-D
        grid = keys.reshape(len(lengths), width) >= floor[:, None]
        entries, counts = np.flatnonzero(grid), np.count_nonzero(grid, axis=1)
    else:
        candidate = keys != 0 if floor is None else keys >= np.repeat(floor, lengths)
        entries = np.flatnonzero(candidate)
        rows = np.searchsorted(indptr, entries, side="right") - 1
        counts = np.bincount(rows, minlength=len(lengths))
    entry_bits = max(int(len(keys) - 1).bit_length(), 1)
    if key_bits + entry_bits > 64:
        raise ExpressionValueError("too many distinct values and entries to rank in one key")
    packed = np.uint64((1 << key_bits) - 1) - keys[entries].astype(np.uint64)
    packed <<= np.uint64(entry_bits)
    packed |= entries.astype(np.uint64)
    packed, kept = _sort_padded_rows(packed, counts, top_k)
    packed &= np.uint64((1 << entry_bits) - 1)
    return packed.astype(np.int64), kept


def _kth_largest_keys(keys: np.ndarray, indptr: np.ndarray, top_k: int | None) -> np.ndarray | None:
    """Each row's smallest key that can make its top ``top_k`` (at least 1, so zero
    entries never do); ``None`` when no row is longer than ``top_k``."""
    lengths = np.diff(indptr)
    if top_k is None or not len(lengths) or int(lengths.max()) <= top_k:
        return None
    if top_k == 0:
        return np.full(len(lengths), np.iinfo(keys.dtype).max, dtype=keys.dtype)
    floor = np.ones(len(lengths), dtype=keys.dtype)
    long_rows = np.flatnonzero(lengths > top_k)
    width = int(lengths.max())
    block = max(1, SORT_BLOCK_ELEMENTS // width)
    for first in range(0, len(long_rows), block):
        rows = long_rows[first : first + block]
        grid = _padded(keys, indptr[rows], lengths[rows])
        kth = np.partition(grid, grid.shape[1] - top_k, axis=1)[:, grid.shape[1] - top_k]
        floor[rows] = np.maximum(kth, 1)
    return floor


def _padded(keys: np.ndarray, starts: np.ndarray, lengths: np.ndarray, fill=0) -> np.ndarray:
    """Rows of ``keys`` (at ``starts``, ``lengths`` long) in a 2-D block padded with
    ``fill`` (a view of ``keys`` when the rows are consecutive and equally long)."""
    width = int(lengths.max())
    if int(lengths.min()) == width and (len(starts) < 2 or bool(np.all(np.diff(starts) == width))):
        first = int(starts[0])
        return keys[first : first + width * len(starts)].reshape(len(starts), width)
    grid = np.full((len(starts), width), fill, dtype=keys.dtype)
    position = np.arange(int(lengths.sum()))  # in the rows, one after another
    before = np.repeat(_exclusive_cumsum(lengths), lengths)
    row = np.repeat(np.arange(len(starts)), lengths)
    grid[row, position - before] = keys[np.repeat(starts, lengths) + position - before]
    return grid


def _sort_padded_rows(
    keys: np.ndarray, lengths: np.ndarray, top_k: int | None
) -> tuple[np.ndarray, np.ndarray]:
    offsets = offsets_from_lengths(lengths)
    kept = lengths if top_k is None else np.minimum(lengths, top_k)
    longest = int(lengths.max(initial=0))
    if longest == 0:
        return keys[:0], kept
    block_rows = max(1, SORT_BLOCK_ELEMENTS // longest)
    parts = []
    for first_row in range(0, len(lengths), block_rows):
        rows = slice(first_row, first_row + block_rows)
        parts.append(_sort_block(keys, offsets[first_row : first_row + block_rows + 1], kept[rows]))
    return np.concatenate(parts), kept


def _sort_block(keys: np.ndarray, offsets: np.ndarray, kept: np.ndarray) -> np.ndarray:
    lengths = np.diff(offsets)
    if int(lengths.max(initial=0)) == 0:
        return keys[:0]
    grid = _padded(keys, offsets[:-1], lengths, fill=np.iinfo(np.uint64).max)
    k = int(kept.max(initial=0))
    if 0 < k < grid.shape[1]:
        # Keys are distinct (the payload is an entry index), so the k smallest, sorted, are
        # exactly the first k of a full sort: a wide row's top-k costs O(width), not a sort.
        grid = np.partition(grid, k - 1, axis=1)[:, :k]
    grid = np.sort(grid, axis=1)
    return grid[:, :k][np.arange(k) < kept[:, None]]


def value_keys(values: np.ndarray) -> tuple[np.ndarray, int]:
    """``uint32`` keys ordered like the (non-negative) values, ``0`` exactly for a zero
    value, and their bit width."""
    if values.dtype == np.float16:
        values = values.astype(np.float32)
    if values.dtype.kind in "iu" and (values.size == 0 or values.max() < 2**32):
        return values.astype(np.uint32), 32
    if values.dtype != np.float32:
        as_f32 = values.astype(np.float32)
        if not np.array_equal(as_f32, values):
            distinct, dense_rank = np.unique(values, return_inverse=True)
            if len(distinct) and distinct[0] != 0:
                dense_rank += 1  # rank 0 stays the zero value's
            return dense_rank.astype(np.uint32), max(int(dense_rank.max(initial=0)).bit_length(), 1)
        values = as_f32
    # Non-negative IEEE floats order like their bit patterns; adding +0 turns -0 into +0.
    return (values + np.float32(0)).view(np.uint32), 32


def offsets_from_lengths(lengths: np.ndarray) -> np.ndarray:
    offsets = np.zeros(len(lengths) + 1, dtype=np.int64)
    np.cumsum(lengths, out=offsets[1:])
    return offsets


def _exclusive_cumsum(lengths: np.ndarray) -> np.ndarray:
    return offsets_from_lengths(lengths)[:-1]
