"""Row-chunk access to one expression matrix of an AnnData or ``.h5ad`` file.

In-memory matrices (dense, CSR, CSC), layers, ``.raw`` and backed files all look
the same to the rest of the package: a :class:`ExpressionSource` that hands out
CSR row chunks. A file path is opened with h5py and only the rows of the current
chunk are read, so the matrix is never loaded whole.
"""

from __future__ import annotations

import os
import warnings
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import scipy.sparse as sp

ExpressionInput = Any  # anndata.AnnData or a path to an .h5ad file


@dataclass
class ExpressionSource:
    """Cells x genes matrix readable in row chunks.

    Attributes
    ----------
    matrix : array-like
        ``numpy.ndarray``, scipy sparse matrix, ``h5py.Dataset`` or anndata sparse
        dataset; anything supporting ``matrix[start:stop]``.
    obs_names : numpy.ndarray
        Cell names, one per row.
    var_names : list of str
        Gene names, one per column, as stored (not upper-cased).
    """

    matrix: Any
    obs_names: np.ndarray
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
        var_names = list(_read_index(file["raw/var" if use_raw else "var"]))
    except BaseException:
        file.close()
        raise
    return ExpressionSource(_row_sliceable(matrix), obs_names, var_names, _file=file)


def _read_index(group) -> np.ndarray:
    import anndata.io

    index_key = group.attrs.get("_index", "_index")
    return np.asarray(anndata.io.read_elem(group[index_key])).astype(str)


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
        stop = max(start, stop)
        indptr = self._indptr[start : stop + 1].astype(np.int64)
        first, last = int(indptr[0]), int(indptr[-1])
        return sp.csr_matrix(
            (self._data[first:last], self._indices[first:last], indptr - first),
            shape=(stop - start, self.shape[1]),
        )


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
