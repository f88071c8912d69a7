"""Row-chunk access to one expression matrix of an AnnData or ``.h5ad`` file, and its
cells read and ranked chunk by chunk.

In-memory matrices (dense, CSR, CSC), layers, ``.raw`` and backed files all look
the same to the rest of the package: a :class:`ExpressionSource` that hands out
CSR row chunks. A file path is opened with h5py and only the rows of the current
chunk are read, so the matrix is never loaded whole. :func:`iter_ranked_chunks` ranks
each chunk as it is read (:func:`tokenizer_ext.ranking.rank_csr`).
"""

from __future__ import annotations

import os
import warnings
from collections.abc import Iterator, Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import scipy.sparse as sp

from tokenizer_ext.ranking import RankedCells, TieBreak, rank_csr
from tokenizer_ext.vocab import GeneVocabulary

ExpressionInput = Any  # anndata.AnnData or a path to an .h5ad file
DEFAULT_CHUNK_SIZE = 4096


@dataclass
class ExpressionSource:
    """Cells x genes matrix readable in row chunks.

    Attributes
    ----------
    matrix : array-like
        ``numpy.ndarray``, scipy sparse matrix, ``h5py.Dataset`` or anndata sparse
        dataset; anything supporting ``matrix[start:stop]``.
    obs_names : numpy.ndarray or FileIndex
        Cell names, one per row (sliced by row range).
    var_names : list of str
        Gene names, one per column, as stored (not upper-cased).
    """

    matrix: Any
    obs_names: np.ndarray | FileIndex
    var_names: list[str]
    _file: Any = field(default=None, repr=False)

    @property
    def n_obs(self) -> int:
        """Number of cells."""
        return int(self.matrix.shape[0])

    def read_rows(self, start: int, stop: int) -> sp.csr_matrix:
        """Rows ``start:stop`` as CSR, zeros of dense input dropped as C2S drops them."""
        chunk = self.matrix[start:stop]
        if sp.issparse(chunk):
            return sp.csr_matrix(chunk)
        chunk = np.asarray(chunk)
        if chunk.dtype == np.float16:  # scipy.sparse has no float16; float32 holds it exactly
            chunk = chunk.astype(np.float32)
        return sp.csr_matrix(chunk)

    def read_values(self, start: int, stop: int) -> RowValues:
        """The stored values of rows ``start:stop`` and their row pointers, without the
        column indices: what checks of the values need, at half a backed file's reads."""
        if isinstance(self.matrix, BackedCsrRows):
            return self.matrix.values(start, stop)
        chunk = self.read_rows(start, stop)
        return RowValues(chunk.data, chunk.indptr)

    def close(self) -> None:
        """Close the file opened for a path input."""
        if self._file is not None:
            self._file.close()
            self._file = None

    def __enter__(self) -> ExpressionSource:
        return self

    def __exit__(self, *exc) -> None:
        self.close()


def open_expression(
    data: ExpressionInput, *, layer: str | None = None, use_raw: bool = False
) -> ExpressionSource:
    """Open the matrix C2S would read: ``X``, a layer, or ``.raw.X``.

    Parameters
    ----------
    data : anndata.AnnData or str or os.PathLike
        In-memory or backed AnnData, or a path to an ``.h5ad`` file.
    layer : str, optional
        Name of a layer to use instead of ``X``.
    use_raw : bool
        Use ``.raw.X`` (and ``.raw.var_names``).

    Returns
    -------
    ExpressionSource
        Close it (or use it as a context manager) when ``data`` was a path.
    """
    if layer is not None and use_raw:
        raise ValueError("pass either layer or use_raw, not both")
    if isinstance(data, str | os.PathLike):
        return _open_h5ad(os.fspath(data), layer=layer, use_raw=use_raw)
    return _open_anndata(data, layer=layer, use_raw=use_raw)


def _open_anndata(adata, *, layer: str | None, use_raw: bool) -> ExpressionSource:
    obs_names = np.asarray(adata.obs_names)
    if use_raw:
        if adata.raw is None:
            raise ValueError("use_raw=True but adata.raw is None")
        var_names = list(adata.raw.var_names)
        matrix = _backed_element(adata, "raw/X") if adata.isbacked else adata.raw.X
    elif layer is not None:
        if layer not in adata.layers:
            raise KeyError(f"layer {layer!r} not in adata.layers {list(adata.layers)}")
        var_names, matrix = list(adata.var_names), adata.layers[layer]
    else:
        var_names, matrix = list(adata.var_names), adata.X
    return ExpressionSource(_row_sliceable(matrix), obs_names, var_names)


def _backed_element(adata, key: str):
    import anndata.io

    element = adata.file._file[key]
    return element if hasattr(element, "dtype") else anndata.io.sparse_dataset(element)


def _open_h5ad(path: str, *, layer: str | None, use_raw: bool) -> ExpressionSource:
    import anndata.io
    import h5py

    file = h5py.File(path, "r")
    try:
        key = "raw/X" if use_raw else (f"layers/{layer}" if layer is not None else "X")
        if key not in file:
            raise KeyError(f"{key!r} not found in {path}")
        element = file[key]
        matrix = (
            element if isinstance(element, h5py.Dataset) else anndata.io.sparse_dataset(element)
        )
        obs_names = _read_index(file["obs"])
        var_names = _read_index(file["raw/var" if use_raw else "var"])
        var_names = list(var_names[:] if isinstance(var_names, FileIndex) else var_names)
    except BaseException:
        file.close()
        raise
    return ExpressionSource(_row_sliceable(matrix), obs_names, var_names, _file=file)


class FileIndex:
    """An ``.h5ad`` index read slice by slice, so a million cell names never sit in memory."""

    def __init__(self, dataset) -> None:
        self._strings = dataset.asstr()
        self._length = len(dataset)

    def __len__(self) -> int:
        return self._length

    def __getitem__(self, rows: slice) -> np.ndarray:
        return np.asarray(self._strings[rows], dtype=str)


def _read_index(group) -> np.ndarray | FileIndex:
    import anndata.io
    import h5py

    element = group[group.attrs.get("_index", "_index")]
    if isinstance(element, h5py.Dataset) and h5py.check_string_dtype(element.dtype):
        return FileIndex(element)
    return np.asarray(anndata.io.read_elem(element)).astype(str)


@dataclass(frozen=True)
class RowValues:
    """Stored values of consecutive rows, CSR-style: ``data`` and ``indptr`` (from 0)."""

    data: np.ndarray
    indptr: np.ndarray


class BackedCsrRows:
    """Row slices of a backed CSR matrix, read straight from its three HDF5 arrays.

    anndata's sparse dataset parses package metadata on every slice (a scipy version
    check, about 20 ms); a bulk job reads thousands of chunks.
    """

    format = "csr"

    def __init__(self, dataset) -> None:
        group = dataset.group
        self.shape = tuple(dataset.shape)
        self.dtype = dataset.dtype
        self._data, self._indices, self._indptr = group["data"], group["indices"], group["indptr"]

    def __getitem__(self, rows: slice) -> sp.csr_matrix:
        start, stop, step = rows.indices(self.shape[0])
        if step != 1:
            raise IndexError("BackedCsrRows reads contiguous row ranges")
        values = self.values(start, stop)
        first = int(self._indptr[start]) if stop > start else 0
        indices = self._indices[first : first + len(values.data)]
        return sp.csr_matrix(
            (values.data, indices, values.indptr), shape=(len(values.indptr) - 1, self.shape[1])
        )

    def values(self, start: int, stop: int) -> RowValues:
        """Rows ``start:stop``'s values and row pointers (rebased to 0)."""
        stop = max(start, min(stop, self.shape[0]))
        indptr = self._indptr[start : stop + 1].astype(np.int64)
        first, last = int(indptr[0]), int(indptr[-1])
        return RowValues(self._data[first:last], indptr - first)


def _row_sliceable(matrix):
    if getattr(matrix, "format", None) == "csr" and hasattr(matrix, "group"):
        return BackedCsrRows(matrix)
    if sp.issparse(matrix) and matrix.format == "csc":
        # Row slices of CSC touch every column; one conversion is cheaper (C2S does it too).
        return matrix.tocsr()
    if sp.issparse(matrix) and matrix.format != "csr":
        return sp.csr_matrix(matrix)
    fmt = getattr(matrix, "format", None)
    if fmt == "csc":
        warnings.warn(
            "backed CSC matrix: every row chunk reads whole columns; store the file as CSR "
            "for chunked reading",
            stacklevel=3,
        )
    return matrix


def row_chunks(n_obs: int, chunk_size: int) -> Sequence[tuple[int, int]]:
    """``(start, stop)`` pairs covering ``range(n_obs)`` in chunks of ``chunk_size``."""
    if chunk_size < 1:
        raise ValueError(f"chunk_size must be >= 1, got {chunk_size}")
    return [(s, min(s + chunk_size, n_obs)) for s in range(0, n_obs, chunk_size)]


@dataclass(frozen=True)
class RankedChunk:
    """One row chunk of a matrix, ranked.

    Attributes
    ----------
    start, stop : int
        Row range of the chunk in the whole matrix.
    obs_names : numpy.ndarray
        Names of the chunk's cells.
    ranked : RankedCells
        Word indices of each cell, highest expression first.
    vocabulary : GeneVocabulary
        Vocabulary the word indices refer to.
    """

    start: int
    stop: int
    obs_names: np.ndarray
    ranked: RankedCells
    vocabulary: GeneVocabulary


def iter_ranked_chunks(
    data: ExpressionInput,
    *,
    vocabulary: GeneVocabulary | None = None,
    tie_break: TieBreak = "c2s",
    seed: int = 42,
    top_k: int | None = None,
    layer: str | None = None,
    use_raw: bool = False,
    chunk_size: int = DEFAULT_CHUNK_SIZE,
    rows: tuple[int, int] | None = None,
    rng: np.random.RandomState | None = None,
) -> Iterator[RankedChunk]:
    """Rank the cells of an AnnData or ``.h5ad`` file chunk by chunk.

    Only ``chunk_size`` rows are in memory at a time; with ``tie_break="c2s"`` one
    RNG runs through all chunks, so the result does not depend on ``chunk_size``.

    Parameters
    ----------
    data : anndata.AnnData or path
        In-memory (dense, CSR, CSC) or backed AnnData, or an ``.h5ad`` path.
    vocabulary : GeneVocabulary, optional
        Defaults to ``GeneVocabulary(var_names)`` of the chosen matrix.
    tie_break : {"c2s", "stable"}
        ``"c2s"`` is byte-identical to ``cell2sentence.utils.generate_sentences``;
        ``"stable"`` is faster and breaks ties by column order.
    seed : int
        Seed of the ``"c2s"`` tie-break (C2S's ``random_state``).
    top_k : int, optional
        Keep only the first ``top_k`` genes of each cell.
    layer : str, optional
        Use this layer instead of ``X``.
    use_raw : bool
        Use ``.raw.X`` and ``.raw.var_names``.
    chunk_size : int
        Rows read and ranked at a time.
    rows : (int, int), optional
        Only rows ``start:stop`` (default: all).
    rng : numpy.random.RandomState, optional
        The ``"c2s"`` tie-break's RNG where the ranking of the rows before ``rows`` left
        it (`tokenizer_ext.ranking.advance_c2s_rng`); default: a new one from ``seed``.

    Yields
    ------
    RankedChunk
    """
    with open_expression(data, layer=layer, use_raw=use_raw) as source:
        vocab = vocabulary if vocabulary is not None else GeneVocabulary(source.var_names)
        if vocab.n_columns != len(source.var_names):
            raise ValueError(
                f"vocabulary has {vocab.n_columns} columns, matrix has {len(source.var_names)}"
            )
        if tie_break == "c2s" and rng is None:
            rng = np.random.RandomState(seed)
        first, last = rows if rows is not None else (0, source.n_obs)
        for start, stop in row_chunks(last - first, chunk_size):
            start, stop = first + start, first + stop
            matrix = source.read_rows(start, stop)
            ranked = rank_csr(
                matrix, vocab.column_to_word, tie_break=tie_break, rng=rng, top_k=top_k
            )
            yield RankedChunk(start, stop, source.obs_names[start:stop], ranked, vocab)
