"""`EmbeddingService`: OpenAI's ``POST /v1/embeddings`` over the serving stages.

A cell's embedding is the mean of the model's last hidden state over the tokens of the
prompt C2S embeds: the cell type prediction prompt of the cell's first ``n_genes`` genes.
Prompts come from the prompt builder, as for every task, so the bulk command
(``c2s embed``) and this route give the same ids, and so the same embedding, for a cell.
"""

from __future__ import annotations

import asyncio
import base64
from collections.abc import Mapping
from typing import Any

import numpy as np

from serving.config import GatewayConfig
from serving.engine import Embedding
from serving.errors import InvalidRequest
from serving.gateway.errors import UnknownModel
from serving.pipeline import Stages, chunked
from serving.protocol import EmbeddingData, EmbeddingRequest, EmbeddingResponse, Usage
from serving.stages import PromptJob

#: the prompt C2S embeds a cell with
EMBEDDING_TASK = "cell_type_prediction"


def embedding_job(
    cell: str | Mapping[str, Any],
    n_genes: int | None = None,
    organism: str | None = None,
    template: int = 0,
) -> PromptJob:
    """The prompt job that embeds one cell (a sentence or ``{"genes", "values"}``)."""
    inputs: dict[str, Any] = {"cell": cell}
    if n_genes is not None:
        inputs["n_genes"] = n_genes
    if organism is not None:
        inputs["organism"] = organism
    return PromptJob(task=EMBEDDING_TASK, inputs=inputs, template=template)


def encode_vector(values: np.ndarray, encoding_format: str) -> list[float] | str:
    """A vector as OpenAI sends it: floats, or base64 of little-endian float32."""
    if encoding_format == "base64":
        return base64.b64encode(np.asarray(values, dtype="<f4").tobytes()).decode("ascii")
    return [float(v) for v in values]


class EmbeddingService:
    """Cell embeddings in OpenAI's shape.

    ``model`` is the base model name or ``<base>/cell_type_prediction``; inputs are
    built and embedded in chunks of ``batch_chunk_size`` cells, concurrently.
    """

    def __init__(self, config: GatewayConfig, stages: Stages) -> None:
        self.config = config
        self.stages = stages

    def check_model(self, model: str) -> None:
        base = self.config.model_name
        if model not in (base, f"{base}/{EMBEDDING_TASK}"):
            raise UnknownModel(
                f"The model {model!r} does not serve embeddings. Use {base!r} (cells are "
                f"embedded with the {EMBEDDING_TASK} prompt)."
            )

    async def embed(self, request: EmbeddingRequest) -> EmbeddingResponse:
        self.check_model(request.model)
        cells = [request.input] if isinstance(request.input, str) else request.input
        template = request.template_index or 0
        jobs = [embedding_job(c, request.n_genes, request.organism, template) for c in cells]
        chunks = chunked(jobs, self.config.batch_chunk_size)
        embedded = await asyncio.gather(*(self._embed_chunk(chunk, at) for at, chunk in chunks))
        vectors: list[Embedding] = [e for chunk in embedded for e in chunk]
        data = [
            EmbeddingData(
                index=i, embedding=encode_vector(self._sized(e, request), request.encoding_format)
            )
            for i, e in enumerate(vectors)
        ]
        tokens = sum(e.prompt_tokens for e in vectors)
        return EmbeddingResponse(
            model=request.model,
            data=data,
            usage=Usage(prompt_tokens=tokens, total_tokens=tokens),
        )

    async def _embed_chunk(self, jobs, offset: int) -> list[Embedding]:
        prompts = await self.stages.build(jobs, offset)
        return await self.stages.embed(prompts)

    @staticmethod
    def _sized(embedding: Embedding, request: EmbeddingRequest) -> np.ndarray:
        size = len(embedding.values)
        if request.dimensions is not None and request.dimensions != size:
            raise InvalidRequest(
                f"This model's embeddings have {size} dimensions; it cannot return "
                f"{request.dimensions}.",
                param="dimensions",
            )
        return embedding.values
