"""A backed file is read in row chunks: the job runs under an address-space cap that a
whole load of the matrix would exceed."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import anndata as ad
import numpy as np
import pandas as pd
import pyarrow.parquet as pq
import pytest

from tests.jobs.fakes import job_config

REPO_ROOT = Path(__file__).resolve().parents[2]
N_CELLS, N_GENES = 800, 50_000  # 160 MB of dense float32


def wide_dense(n_cells: int, n_genes: int, seed: int = 0) -> ad.AnnData:
    """Mostly-zero cells stored dense (the worst case for chunked reading)."""
    rng = np.random.default_rng(seed)
    matrix = np.zeros((n_cells, n_genes), dtype=np.float32)
    for row in range(n_cells):
        columns = rng.choice(n_genes, size=60, replace=False)
        matrix[row, columns] = rng.gamma(1.0, 1.0, size=60).astype(np.float32) + 0.01
    var = pd.DataFrame(index=[f"GENE{i}" for i in range(n_genes)])
    obs = pd.DataFrame(index=[f"cell{i}" for i in range(n_cells)])
    return ad.AnnData(matrix, obs=obs, var=var)


@pytest.mark.slow
def test_a_file_larger_than_the_cap_is_annotated(tmp_path):
    big, small = tmp_path / "big.h5ad", tmp_path / "small.h5ad"
    wide_dense(N_CELLS, N_GENES).write_h5ad(big)
    wide_dense(60, 2_000, seed=1).write_h5ad(small)
    out = tmp_path / "out"
    config = job_config(big, out, n_genes=20, shard_cells=200)
    (tmp_path / "config.json").write_text(config.model_dump_json())
    command = [sys.executable, "-m", "tests.jobs.worker", str(tmp_path / "config.json")]
    done = subprocess.run(
        [*command, "--cap-warmup", str(small)],
        cwd=REPO_ROOT,
        capture_output=True,
        text=True,
        timeout=300,
        env={"MALLOC_ARENA_MAX": "2", "PATH": "/usr/bin:/bin"},
    )
    assert done.returncode == 0, done.stdout[-3000:] + done.stderr[-3000:]
    result = json.loads(done.stdout.strip().splitlines()[-1])
    matrix_bytes = N_CELLS * N_GENES * 4
    assert result["cells"] == N_CELLS
    assert result["cap"] is not None and result["whole_load_failed"]
    rows = pq.read_table(out / "predictions.parquet")
    assert rows.column("row").to_pylist() == list(range(N_CELLS))
    assert (out / "annotated.h5ad").stat().st_size >= big.stat().st_size
    assert big.stat().st_size // 2 < matrix_bytes
