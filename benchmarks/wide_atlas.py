"""A generated wide atlas: CELLxGENE-like width (25,000 genes, 2,500 expressed per cell).

Written in row blocks straight into an ``.h5ad`` (CSR ``X``), so a million cells never sit
in memory at once. Values are log1p of small counts, like a normalised atlas; gene
symbols are upper-case letters and digits, so no two collide after upper-casing.
Tests use it at small sizes.
"""

from __future__ import annotations

import functools
from pathlib import Path

import anndata as ad
import h5py
import numpy as np
import pandas as pd
import scipy.sparse as sp

N_GENES = 25_000
EXPRESSED = 2_500
BLOCK_CELLS = 5_000


def gene_symbols(n_genes: int) -> list[str]:
    """Distinct upper-case symbols (``G0A1``-style), stable across runs."""
    rng = np.random.default_rng(12345)
    letters = np.array(list("ABCDEFGHIJKLMNOPQRSTUVWXYZ"))
    prefixes = rng.choice(letters, size=(n_genes, 3))
    return [f"{''.join(p)}{i}" for i, p in enumerate(prefixes)]


def cell_block(rng: np.random.Generator, cells: int, n_genes: int, expressed: int) -> sp.csr_matrix:
    """``cells`` rows with ``expressed`` distinct columns each, sorted; ties in value occur."""
    keys = rng.random((cells, n_genes), dtype=np.float32)
    cols = np.sort(np.argpartition(keys, expressed, axis=1)[:, :expressed], axis=1)
    counts = rng.geometric(0.3, size=cells * expressed).astype(np.float32)
    indptr = np.arange(0, cells * expressed + 1, expressed, dtype=np.int64)
    return sp.csr_matrix((np.log1p(counts), cols.ravel(), indptr), shape=(cells, n_genes))


def banked_block(rng: np.random.Generator, cells: int, bank: sp.csr_matrix) -> sp.csr_matrix:
    """``cells`` rows whose expressed columns are those of random rows of ``bank``, with
    fresh values: O(expressed) per row rather than O(n_genes), for million-cell atlases."""
    expressed = int(bank.indptr[1])
    picks = rng.integers(0, bank.shape[0], size=cells)
    cols = bank.indices.reshape(bank.shape[0], expressed)[picks].ravel()
    counts = rng.geometric(0.3, size=cells * expressed).astype(np.float32)
    indptr = np.arange(0, cells * expressed + 1, expressed, dtype=np.int64)
    return sp.csr_matrix((np.log1p(counts), cols, indptr), shape=(cells, bank.shape[1]))


def write_wide_atlas(
    path: Path,
    cells: int,
    *,
    n_genes: int = N_GENES,
    expressed: int = EXPRESSED,
    seed: int = 0,
    bank_cells: int = 0,
) -> Path:
    """Write the atlas to ``path`` (kept when it exists with the right shape).

    With ``bank_cells``, every row takes the expressed columns of one of ``bank_cells``
    generated rows (`banked_block`): the same per-cell statistics, generated at disk speed.
    """
    path = Path(path)
    if path.exists():
        with h5py.File(path, "r") as f:
            if tuple(f["X"].attrs["shape"]) == (cells, n_genes):
                return path
    path.parent.mkdir(parents=True, exist_ok=True)
    rng = np.random.default_rng(seed)
    obs = pd.DataFrame(index=[f"cell{i}" for i in range(cells)])
    var = pd.DataFrame(index=gene_symbols(n_genes))
    if bank_cells:
        bank = cell_block(rng, bank_cells, n_genes, expressed)
        make_block = functools.partial(banked_block, rng, bank=bank)
    else:
        make_block = functools.partial(cell_block, rng, n_genes=n_genes, expressed=expressed)
    first = min(cells, BLOCK_CELLS)
    ad.AnnData(make_block(first), obs=obs.iloc[:first], var=var).write_h5ad(path)
    _append_rows(path, make_block, cells - first)
    if cells > first:
        with h5py.File(path, "a") as f:
            del f["obs"]
            ad.io.write_elem(f, "obs", obs)
    return path


def _append_rows(path: Path, make_block, cells: int) -> None:
    with h5py.File(path, "a") as f:
        # 64-bit row pointers: a million cells hold more entries than an int32 counts
        indptr = f["X/indptr"][...].astype(np.int64)
        del f["X/indptr"]
        f["X"].create_dataset("indptr", data=indptr, maxshape=(None,), chunks=True)
        matrix = ad.io.sparse_dataset(f["X"])
        while cells > 0:
            block = min(cells, BLOCK_CELLS)
            matrix.append(make_block(block))
            cells -= block
