"""Cell embeddings: which prompt embeds a cell, and its answer for `serving.core.pipeline.fan_out`.

C2S embeds a cell as the mean of the model's last hidden state over the tokens of its
cell type prediction prompt (template 0, the cell's first ``n_genes`` genes); unlike
C2S's ``embed_cells``, the mean covers exactly the prompt's tokens (no padding). Prompts
come from the prompt builder and the vectors from a pooling engine (`serving.engine.
Embedder`), so the gateway (``POST /v1/embeddings``) and the bulk command (``c2s
embed``) give a cell the same ids and the same embedding.
"""

from __future__ import annotations

import asyncio
from collections.abc import Mapping, Sequence
from typing import Any, Protocol

from serving.core.pipeline import ChunkHandler
from serving.core.requests import PreparedPrompt, PromptRequest
from serving.core.stages import BuildStage
from serving.engine import Embedder, Embedding

#: the prompt C2S embeds a cell with
EMBEDDING_TASK = "cell_type_prediction"


class EmbeddingPipeline(Protocol):
    """What embedding needs of the serving stages (`serving.core.pipeline.Pipeline` has it)."""

    async def build(
        self, jobs: Sequence[PromptRequest], offset: int = 0
    ) -> list[PreparedPrompt]: ...

    async def embed(self, prompts: Sequence[PreparedPrompt]) -> list[Embedding]: ...


class LocalEmbeddingPipeline:
    """Prompt building and a pooling engine in this process, with no generating engine."""

    def __init__(self, builder: BuildStage, embedder: Embedder) -> None:
        self.builder = builder
        self.embedder = embedder

    async def build(self, jobs: Sequence[PromptRequest], offset: int = 0) -> list[PreparedPrompt]:
        return self.builder.build(jobs, offset)

    async def embed(self, prompts: Sequence[PreparedPrompt]) -> list[Embedding]:
        return list(await asyncio.gather(*(self.embedder.embed(p.token_ids) for p in prompts)))


def embedding_job(
    cell: str | Mapping[str, Any],
    n_genes: int | None = None,
    organism: str | None = None,
    template: int = 0,
) -> PromptRequest:
    """The prompt job that embeds one cell (a sentence or ``{"genes", "values"}``)."""
    inputs: dict[str, Any] = {"cell": cell}
    if n_genes is not None:
        inputs["n_genes"] = n_genes
    if organism is not None:
        inputs["organism"] = organism
    return PromptRequest(task=EMBEDDING_TASK, inputs=inputs, template=template)


def embedding(stages: EmbeddingPipeline) -> ChunkHandler[Embedding]:
    """`serving.core.pipeline.fan_out`'s answer for embeddings: a built chunk's vectors."""

    async def answer(
        jobs: Sequence[PromptRequest], prompts: list[PreparedPrompt]
    ) -> list[Embedding]:
        return await stages.embed(prompts)

    return answer
