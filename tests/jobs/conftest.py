"""Fixtures of the bulk job's tests: datasets on disk and the fake serving stack."""

from __future__ import annotations

from pathlib import Path

import anndata as ad
import numpy as np
import pandas as pd
import pytest
import scipy.sparse as sp

from tests.jobs.fakes import fake_stages

SYMBOLS = ("CD74", "HLA-DRA", "CD79A", "MS4A1", "CD3D", "CD3E", "IL7R", "LYZ", "S100A9", "NKG7")


@pytest.fixture(scope="session")
def pbmc_adata():
    import scanpy as sc

    return sc.datasets.pbmc68k_reduced()


@pytest.fixture(scope="session")
def pbmc_path(pbmc_adata, tmp_path_factory) -> Path:
    """scanpy's pbmc68k_reduced on disk (700 cells; ``.raw`` is log-normalised)."""
    path = tmp_path_factory.mktemp("pbmc") / "pbmc68k_reduced.h5ad"
    pbmc_adata.write_h5ad(path)
    return path


@pytest.fixture(scope="session")
def stages(pythia_tokenizer_dir):
    """The fake stack with scripted answers, shared by the tests that need no other."""
    return fake_stages(tokenizer_dir=pythia_tokenizer_dir)


def small_adata(
    n_cells: int = 40,
    genes: tuple[str, ...] = SYMBOLS,
    *,
    seed: int = 0,
    layout: str = "csr",
) -> ad.AnnData:
    """Random log-normalised-like cells over ``genes``, with ``sample``/``label`` columns."""
    rng = np.random.default_rng(seed)
    values = rng.gamma(1.0, 1.0, size=(n_cells, len(genes))).astype(np.float32)
    values[rng.random(values.shape) < 0.3] = 0
    values[:, 0] += 0.01  # no empty cell unless a test makes one
    matrix = {"dense": values, "csr": sp.csr_matrix(values), "csc": sp.csc_matrix(values)}[layout]
    obs = pd.DataFrame(
        {
            "sample": [f"s{i % 3}" for i in range(n_cells)],
            "label": [("B cell", "T cell")[i % 2] for i in range(n_cells)],
        },
        index=[f"cell{i}" for i in range(n_cells)],
    )
    return ad.AnnData(matrix, obs=obs, var=pd.DataFrame(index=list(genes)))


@pytest.fixture
def write_h5ad(tmp_path):
    """``write_h5ad(adata, name="input.h5ad")`` -> its path in the test's folder."""

    def write(adata: ad.AnnData, name: str = "input.h5ad") -> Path:
        path = tmp_path / name
        adata.write_h5ad(path)
        return path

    return write
