"""``c2s embed`` over the fake stack: obsm['X_c2s'], empty cells, parity with the gateway."""

from __future__ import annotations

import anndata as ad
import numpy as np
import pytest

from serving.bulk import ExecutionConfig
from serving.bulk.embed import UNS_KEY, EmbedConfig, embed_file
from serving.engine import EngineConfig
from tests.jobs.conftest import small_adata
from tokenizer_ext import cell_sentences

N_GENES = 6


def embed_config(path, out, tokenizer_dir, **settings) -> EmbedConfig:
    execution = ExecutionConfig(
        mode="local", engine=EngineConfig(model=str(tokenizer_dir)), model_dir=tokenizer_dir
    )
    return EmbedConfig(input=path, out=out, n_genes=N_GENES, execution=execution, **settings)


@pytest.fixture
def adata_with_an_empty_cell(tmp_path):
    adata = small_adata(30, layout="dense")
    adata.X[4, :] = 0
    path = tmp_path / "input.h5ad"
    adata.write_h5ad(path)
    return adata, path


async def test_embeddings_land_in_obsm_and_equal_the_gateways(
    adata_with_an_empty_cell, tmp_path, fake_stages, fake_client, pythia_tokenizer_dir
):
    adata, path = adata_with_an_empty_cell
    config = embed_config(
        path, tmp_path / "embedded.h5ad", pythia_tokenizer_dir, skip_empty_cells=True
    )
    result = await embed_file(config, fake_stages)
    written = ad.read_h5ad(config.out)
    vectors = written.obsm["X_c2s"]
    assert vectors.shape == (30, 16) and vectors.dtype == np.float32
    assert np.isnan(vectors[4]).all() and not np.isnan(np.delete(vectors, 4, axis=0)).any()
    assert np.array_equal(vectors, result.embeddings, equal_nan=True)
    assert written.uns[UNS_KEY]["n_genes"] == N_GENES
    assert written.obs.equals(adata.obs) and result.summary["empty_cells"] == 1
    sentences = cell_sentences(adata, top_k=N_GENES)
    cells = [s for i, s in enumerate(sentences) if i != 4]
    response = await fake_client.post(
        "/v1/embeddings", json={"model": "c2s-demo-pythia", "input": cells, "n_genes": N_GENES}
    )
    served = np.asarray([d["embedding"] for d in response.json()["data"]], dtype=np.float32)
    assert np.array_equal(served, np.delete(vectors, 4, axis=0))


async def test_empty_cells_fail_unless_skipped(
    adata_with_an_empty_cell, tmp_path, fake_stages, pythia_tokenizer_dir
):
    from serving.bulk import InputError

    _, path = adata_with_an_empty_cell
    with pytest.raises(InputError, match="express no gene"):
        await embed_file(embed_config(path, tmp_path / "o.h5ad", pythia_tokenizer_dir), fake_stages)


def test_embed_cli_refuses_a_remote_gateway(tmp_path, pythia_tokenizer_dir):
    import asyncio

    from serving.bulk.embed import AnnotateError, embed

    execution = ExecutionConfig(mode="endpoint", endpoint="http://127.0.0.1:1")
    path = tmp_path / "input.h5ad"
    small_adata(5).write_h5ad(path)
    config = EmbedConfig(input=path, out=tmp_path / "o.h5ad", execution=execution)
    with pytest.raises(AnnotateError, match="POST /v1/embeddings"):
        asyncio.run(embed(config))
