"""The narrow interface every engine implements (the vLLM adapter, test fakes)."""

from __future__ import annotations

from collections.abc import AsyncIterator, Sequence
from typing import Protocol, runtime_checkable

from serving.engine.outputs import Completion, Embedding, EngineLimits, StepOutput
from serving.engine.params import GenerationParams


@runtime_checkable
class Engine(Protocol):
    """Token ids in, tokens out. Never tokenises prompts itself."""

    @property
    def limits(self) -> EngineLimits: ...

    def generate(
        self, prompt_ids: Sequence[int], params: GenerationParams, request_id: str | None = None
    ) -> AsyncIterator[StepOutput]:
        """Stream a request; closing or cancelling the iterator aborts it."""
        ...

    async def complete(
        self, prompt_ids: Sequence[int], params: GenerationParams, request_id: str | None = None
    ) -> Completion:
        """Run a request to the end; cancelling the caller aborts it."""
        ...

    async def health(self) -> None:
        """Return if the engine can serve; raise ``EngineUnavailable`` otherwise."""
        ...

    def num_unfinished_requests(self) -> int: ...

    def shutdown(self) -> None: ...


@runtime_checkable
class Embedder(Protocol):
    """Token ids in, one embedding out (a pooling engine beside the generating one)."""

    @property
    def limits(self) -> EngineLimits: ...

    async def embed(self, prompt_ids: Sequence[int], request_id: str | None = None) -> Embedding:
        """The embedding of one prompt; cancelling the caller aborts it."""
        ...

    async def health(self) -> None: ...

    def shutdown(self) -> None: ...
