"""`RayPipeline`: the serving core's `Pipeline` over Ray Serve deployment handles.

The engine side is a `RemoteEngine` (the ``Engine`` deployment's handle) or the core's
`InProcessEngineCalls` (``AppConfig.ingress = "engine"``: the engine in the ingress replica's
own process); both answer the same calls, so the pipeline does not care which.
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Sequence
from typing import Any

from ray.serve.handle import DeploymentHandle

from serving.core.errors import C2SError, EngineUnavailable
from serving.core.pipeline import EmbeddingsUnavailable, InProcessEngineCalls
from serving.core.requests import DecodedResult, DecodeRequest, PreparedPrompt, PromptRequest
from serving.core.stages import BuildStage, DecodeStage
from serving.engine import (
    Completion,
    Embedding,
    EngineLimits,
    GenerationParams,
    StepOutput,
)


def _core_error(exc: BaseException) -> BaseException:
    """The core's own error inside a Ray error, so the gateway maps it as usual."""
    seen = exc
    while seen is not None:
        if isinstance(seen, C2SError) and type(seen).__module__.startswith("serving"):
            return seen
        seen = getattr(seen, "cause", None) or seen.__cause__
    return exc


def _translated(exc: Exception, *, engine: bool) -> BaseException:
    """What a failed handle call means to the gateway: the core's error, or for the
    engine, unavailability (its replica died or is restarting)."""
    error = _core_error(exc)
    if error is not exc or isinstance(exc, C2SError):
        return error
    if engine:
        return EngineUnavailable(f"The engine replica is unavailable: {exc}")
    return exc


async def _awaited(response: Any, *, engine: bool = False) -> Any:
    """A handle call's result, the call cancelled when its caller is (awaiting a handle
    call and cancelling the awaiting task does not cancel the remote call)."""
    try:
        return await response
    except asyncio.CancelledError:
        response.cancel()
        raise
    except Exception as exc:
        raise _translated(exc, engine=engine) from None


class RemoteEngine:
    """The ``Engine`` deployment over its handle, with `InProcessEngineCalls`'s calls:
    each call one Ray call."""

    def __init__(self, handle: DeploymentHandle) -> None:
        self.handle = handle

    async def complete(self, prompt: PreparedPrompt, params: GenerationParams) -> Completion:
        return await _awaited(self.handle.complete.remote(prompt.token_ids, params), engine=True)

    async def complete_many(
        self, requests: Sequence[tuple[PreparedPrompt, GenerationParams]]
    ) -> list[Completion]:
        calls = [(prompt.token_ids, params) for prompt, params in requests]
        return await _awaited(self.handle.complete_many.remote(calls), engine=True)

    async def stream(
        self, prompt: PreparedPrompt, params: GenerationParams
    ) -> AsyncIterator[StepOutput]:
        steps = self.handle.options(stream=True).generate.remote(prompt.token_ids, params)
        finished = False
        try:
            async for step in steps:
                finished = step.finished
                yield step
        except Exception as exc:
            raise _translated(exc, engine=True) from None
        finally:
            if not finished:
                steps.cancel()

    async def health(self) -> None:
        await _awaited(self.handle.health.remote(), engine=True)

    async def limits(self) -> EngineLimits:
        return await _awaited(self.handle.limits.remote(), engine=True)

    async def engine_load(self) -> int:
        return await _awaited(self.handle.num_unfinished_requests.remote(), engine=True)


class RayPipeline:
    """`serving.core.pipeline.Pipeline` over deployment handles.

    ``engine`` is the ``Engine`` deployment's handle, or `InProcessEngineCalls` where the
    engine runs in this process. With ``inline`` (the plain build and decode stages in
    this process), chunks of at most ``inline_max_items`` are built and parsed here
    instead of on the replicas: one small request then makes at most one Ray call, to the
    engine. Batches still fan out.
    """

    def __init__(
        self,
        engine: DeploymentHandle | InProcessEngineCalls,
        builder: DeploymentHandle,
        decoder: DeploymentHandle,
        embedder: DeploymentHandle | None = None,
        *,
        inline: tuple[BuildStage, DecodeStage] | None = None,
        inline_max_items: int = 0,
    ) -> None:
        self.engine = engine if isinstance(engine, InProcessEngineCalls) else RemoteEngine(engine)
        self.builder, self.decoder, self.embedder = builder, decoder, embedder
        self.inline = inline
        self.inline_max_items = inline_max_items if inline is not None else 0

    async def build(self, jobs: Sequence[PromptRequest], offset: int = 0) -> list[PreparedPrompt]:
        if len(jobs) <= self.inline_max_items:
            return self.inline[0].build(jobs, offset)
        return await _awaited(self.builder.build.remote(list(jobs), offset))

    async def complete(self, prompt: PreparedPrompt, params: GenerationParams) -> Completion:
        return await self.engine.complete(prompt, params)

    async def complete_many(
        self, requests: Sequence[tuple[PreparedPrompt, GenerationParams]]
    ) -> list[Completion]:
        return await self.engine.complete_many(requests)

    def stream(self, prompt: PreparedPrompt, params: GenerationParams) -> AsyncIterator[StepOutput]:
        return self.engine.stream(prompt, params)

    async def decode(self, jobs: Sequence[DecodeRequest]) -> list[DecodedResult]:
        if len(jobs) <= self.inline_max_items:
            return self.inline[1].decode(jobs)
        return await _awaited(self.decoder.decode.remote(list(jobs)))

    async def health(self) -> None:
        await self.engine.health()

    async def limits(self) -> EngineLimits:
        return await self.engine.limits()

    async def engine_load(self) -> int:
        return await self.engine.engine_load()

    async def encode(self, texts: Sequence[str]) -> list[tuple[int, ...]]:
        if self.inline is not None:  # tokenising a few answer texts: cheaper than a hop
            return self.inline[0].encode_texts(texts)
        return await _awaited(self.builder.encode_texts.remote(list(texts)))

    async def embed(self, prompts: Sequence[PreparedPrompt]) -> list[Embedding]:
        if self.embedder is None:
            raise EmbeddingsUnavailable()
        response = self.embedder.embed.remote([p.token_ids for p in prompts])
        return await _awaited(response, engine=True)
