"""A deterministic in-process embedder for contract tests of the embedding routes."""

from __future__ import annotations

import uuid
from collections.abc import Sequence

import numpy as np

from serving.core.errors import EngineUnavailable, PromptTooLong
from serving.engine import Embedding, EngineLimits


class FakeEmbedder:
    """Embeds a prompt as the mean of fixed random vectors of its token ids.

    Like the real pooling engine, the result depends only on the prompt's ids.
    """

    def __init__(self, dimensions: int = 16, max_model_len: int = 8192) -> None:
        self.dimensions = dimensions
        self.limits = EngineLimits("fake", max_model_len, 50304, 0, 256, None, "none", "none")
        self.dead = False
        self.calls = 0

    def _token_vector(self, token: int) -> np.ndarray:
        return np.random.default_rng(token).standard_normal(self.dimensions).astype(np.float32)

    async def embed(self, prompt_ids: Sequence[int], request_id: str | None = None) -> Embedding:
        if len(prompt_ids) >= self.limits.max_model_len:
            raise PromptTooLong(len(prompt_ids), self.limits.max_model_len)
        if self.dead:
            raise EngineUnavailable("The fake embedder is dead.")
        self.calls += 1
        values = np.mean([self._token_vector(t) for t in prompt_ids], axis=0, dtype=np.float32)
        return Embedding(request_id or uuid.uuid4().hex, len(prompt_ids), values)

    async def health(self) -> None:
        if self.dead:
            raise EngineUnavailable("The fake embedder is dead.")

    def shutdown(self) -> None:
        self.dead = True
