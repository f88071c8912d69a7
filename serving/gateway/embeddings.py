"""`EmbeddingService`: OpenAI's ``POST /v1/embeddings`` over the serving stages.

What a cell's embedding is, and how cells are embedded, is `serving.core.embeddings`'s; this
module adds OpenAI's shapes (float or base64 vectors, usage) and model names.
"""

from __future__ import annotations

import base64

import numpy as np

from serving.core.embeddings import EMBEDDING_TASK, embedding, embedding_job
from serving.core.errors import InvalidRequest
from serving.core.pipeline import Pipeline, fan_out
from serving.core.protocol import EmbeddingData, EmbeddingRequest, EmbeddingResponse, Usage
from serving.engine import Embedding
from serving.gateway.errors import UnknownModel
from serving.ray_serve.config import GatewayConfig


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

    def __init__(self, config: GatewayConfig, stages: Pipeline) -> None:
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
        vectors = await fan_out(
            self.stages, jobs, embedding(self.stages), chunk_size=self.config.batch_chunk_size
        )
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
