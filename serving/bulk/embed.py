"""``c2s embed``: every cell of an ``.h5ad`` embedded, written to ``obsm['X_c2s']``.

The input is checked and read exactly as ``c2s annotate`` reads it (`inspect_input`,
`iter_cells`: the same matrix choice, gene symbols and C2S ranking), and each cell is
embedded as `serving.core.embeddings` defines it, over the stages of the execution mode: the
prompt builder and a pooling engine in this process, or a Ray Serve application's
``PromptBuilder`` and ``Embedder`` deployments. The output is a copy of the input with the
vectors in ``obsm`` and the run's provenance in ``uns['c2s_embedding']``; the matrices are
never loaded.
"""

from __future__ import annotations

import asyncio
import shutil
import time
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
from pydantic import Field

from serving.bulk.backends import DECODER, ENGINE, PROMPT_BUILDER
from serving.bulk.config import ExecutionConfig, ReadingConfig
from serving.bulk.errors import AnnotateError
from serving.bulk.input_file import InputFile, inspect_input, iter_cells
from serving.bulk.progress import NullProgress, ProgressListener
from serving.bulk.store import replacing
from serving.core.embeddings import (
    EmbeddingPipeline,
    LocalEmbeddingPipeline,
    embedding,
    embedding_job,
)
from serving.core.pipeline import fan_out
from serving.core.tasks.inputs import DEFAULT_GENES_SINGLE, MAX_GENES
from tokenizer_ext import ranked_to_sentences

#: the ``uns`` key of the provenance record
UNS_KEY = "c2s_embedding"
#: the deployment name given by `serving.ray_serve.deployments.build_app`
EMBEDDER = "Embedder"


class EmbedConfig(ReadingConfig):
    """One ``c2s embed`` run; its input is read as `ReadingConfig` says (skipped empty
    cells get a row of NaN).

    Attributes
    ----------
    out
        The ``.h5ad`` to write: the input with ``obsm[key_added]``.
    n_genes
        Genes per cell in the embedded prompt (C2S's 200 by default).
    template_index
        The cell type prediction prompt variant (C2S embeds with 0).
    key_added
        The ``obsm`` key of the vectors.
    execution
        ``local`` (a pooling engine in this process) or ``ray`` (a Serve application
        with an ``Embedder`` deployment); ``request_cells`` cells per build/embed call.
    """

    out: Path
    n_genes: int = Field(default=DEFAULT_GENES_SINGLE, ge=1, le=MAX_GENES)
    template_index: int = Field(default=0, ge=0)
    key_added: str = Field(default="X_c2s", min_length=1)
    execution: ExecutionConfig


@dataclass(frozen=True)
class EmbedResult:
    """A finished run: the file written, the vectors and what the run did."""

    out: Path
    embeddings: np.ndarray
    summary: dict[str, Any]


async def embed_file(
    config: EmbedConfig,
    stages: EmbeddingPipeline,
    *,
    progress: ProgressListener | None = None,
    source: InputFile | None = None,
) -> EmbedResult:
    """Embed every cell of ``config.input`` over ``stages`` and write ``config.out``."""
    started = time.perf_counter()
    source = source or inspect_input(config)
    organism = source.vocabulary.organism
    progress = progress or NullProgress()
    progress.start(source.n_obs, 0)
    blocks: list[tuple[np.ndarray, list[np.ndarray]]] = []
    tokens = 0
    chunks = iter_cells(config, source.vocabulary)
    try:
        while (chunk := await asyncio.to_thread(next, chunks, None)) is not None:
            sentences = ranked_to_sentences(chunk.ranked, chunk.vocabulary)
            live = np.flatnonzero([bool(s) for s in sentences])
            jobs = [
                embedding_job(sentences[i], config.n_genes, organism, config.template_index)
                for i in live
            ]
            embedded = await fan_out(
                stages, jobs, embedding(stages), chunk_size=config.execution.request_cells
            )
            tokens += sum(e.prompt_tokens for e in embedded)
            blocks.append((chunk.start + live, [e.values for e in embedded]))
            progress.advance(chunk.stop - chunk.start)
    finally:
        progress.stop()
        chunks.close()
    embeddings = _assemble(source.n_obs, blocks)
    summary = {
        "n_cells": source.n_obs,
        "empty_cells": len(source.values.empty_rows),
        "dimensions": int(embeddings.shape[1]),
        "prompt_tokens": tokens,
        "seconds": round(time.perf_counter() - started, 3),
        "cells_per_s": source.n_obs / max(time.perf_counter() - started, 1e-9),
    }
    write_embedded(config, embeddings, _provenance(config, organism, summary))
    return EmbedResult(Path(config.out), embeddings, summary)


def _assemble(n_obs: int, blocks: list[tuple[np.ndarray, list[np.ndarray]]]) -> np.ndarray:
    """One float32 row per cell; cells without a sentence stay NaN."""
    dims = next((len(v[0]) for _, v in blocks if v), None)
    if dims is None:
        raise AnnotateError("No cell of the input expresses a gene: nothing to embed.")
    embeddings = np.full((n_obs, dims), np.nan, dtype=np.float32)
    for rows, vectors in blocks:
        if len(rows):
            embeddings[rows] = np.stack(vectors)
    return embeddings


def _provenance(config: EmbedConfig, organism: str, summary: dict[str, Any]) -> dict[str, Any]:
    from importlib.metadata import version

    return {
        "software": f"c2s-serving {version('c2s-serving')}",
        "created_at": time.strftime("%Y-%m-%dT%H:%M:%S%z"),
        "method": "mean of the last hidden state over the prompt's tokens (vLLM pooling)",
        "prompt": "cell_type_prediction",
        "template_index": config.template_index,
        "n_genes": config.n_genes,
        "organism": organism,
        "target": config.execution.target,
        "matrix": config.matrix_name,
        "tie_break": config.tie_break,
        "dimensions": summary["dimensions"],
        "config_json": config.model_dump_json(),
    }


def write_embedded(config: EmbedConfig, embeddings: np.ndarray, provenance: dict) -> None:
    """Copy the input to ``config.out`` (atomically) with ``obsm[key_added]`` and ``uns``."""
    import anndata.io
    import h5py

    out = Path(config.out)
    out.parent.mkdir(parents=True, exist_ok=True)
    with replacing(out) as temp:
        shutil.copyfile(config.input, temp)
        with h5py.File(temp, "r+") as file:
            obsm = file["obsm"] if "obsm" in file else file.create_group("obsm")
            if config.key_added in obsm:
                del obsm[config.key_added]
            anndata.io.write_elem(obsm, config.key_added, embeddings)
            uns = file["uns"] if "uns" in file else file.create_group("uns")
            if UNS_KEY in uns:
                del uns[UNS_KEY]
            anndata.io.write_elem(uns, UNS_KEY, provenance)


@asynccontextmanager
async def open_embedding_stages(execution: ExecutionConfig) -> AsyncIterator[EmbeddingPipeline]:
    """The stages of ``execution``: a pooling engine started here (closed on exit), or a
    Ray Serve application's deployments."""
    if execution.mode == "endpoint":
        raise AnnotateError(
            "c2s embed runs in-process or on a Ray Serve application (--ray-address); a "
            "remote gateway serves the same embeddings at POST /v1/embeddings."
        )
    if execution.mode == "ray":
        yield _ray_stages(execution)
        return
    from serving.core.stages import BuildStage
    from serving.engine import start_vllm_embedder
    from serving.engine.checkpoint import local_model_dir

    engine = execution.engine
    assert engine is not None  # ExecutionConfig checks it
    model_dir = execution.model_dir or Path(local_model_dir(engine.tokenizer_path))
    embedder = await start_vllm_embedder(engine)
    try:
        builder = BuildStage.from_model(model_dir, max_model_len=embedder.limits.max_model_len)
        yield LocalEmbeddingPipeline(builder, embedder)
    finally:
        embedder.shutdown()


def _ray_stages(execution: ExecutionConfig) -> EmbeddingPipeline:
    import ray
    from ray import serve

    from serving.ray_serve.deployments import RayPipeline

    if not ray.is_initialized():
        ray.init(address=execution.ray_address or "auto", log_to_driver=False)

    def handle(name: str):
        return serve.get_deployment_handle(name, app_name=execution.ray_app)

    return RayPipeline(handle(ENGINE), handle(PROMPT_BUILDER), handle(DECODER), handle(EMBEDDER))


async def embed(config: EmbedConfig, progress: ProgressListener | None = None) -> EmbedResult:
    """Run ``config`` end to end; the input is checked before any engine starts."""
    source = inspect_input(config)
    async with open_embedding_stages(config.execution) as stages:
        return await embed_file(config, stages, progress=progress, source=source)
