"""The fan-out of one request: build -> generate -> decode, over any wiring of stages.

`Pipeline` is what the gateway and the bulk job need from the serving core. `LocalPipeline`
wires the plain classes in one process; `serving.ray_serve.ray_pipeline.RayPipeline` wires
Ray Serve handles. `fan_out` is the one fan-out of a batch (chunk, build, answer, gather in order)
for generation (`generation`), label sets (`serving.core.label_sets.label_set_answer`),
embeddings (`serving.core.embeddings.embedding`) and the bulk job's runner.
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Awaitable, Callable, Sequence
from dataclasses import dataclass
from typing import Protocol, TypeVar, runtime_checkable

from serving.core.errors import InvalidRequest
from serving.core.requests import (
    DecodedResult,
    DecodeRequest,
    PreparedPrompt,
    PromptRequest,
    RankedPromptRequest,
)
from serving.core.stages import BuildStage, DecodeStage
from serving.engine import (
    Completion,
    Embedder,
    Embedding,
    Engine,
    EngineLimits,
    GeneratedSequence,
    GenerationParams,
    SequenceDelta,
    StepOutput,
)

T = TypeVar("T")


class Pipeline(Protocol):
    """The serving core as the gateway and the bulk job see it."""

    async def build(
        self, jobs: Sequence[PromptRequest], offset: int = 0
    ) -> list[PreparedPrompt]: ...

    async def complete(self, prompt: PreparedPrompt, params: GenerationParams) -> Completion: ...

    async def complete_many(
        self, requests: Sequence[tuple[PreparedPrompt, GenerationParams]]
    ) -> list[Completion]:
        """`complete` of every request of a batch, in order; over Ray, in one call."""
        ...

    def stream(
        self, prompt: PreparedPrompt, params: GenerationParams
    ) -> AsyncIterator[StepOutput]: ...

    async def decode(self, jobs: Sequence[DecodeRequest]) -> list[DecodedResult]: ...

    async def health(self) -> None: ...

    async def limits(self) -> EngineLimits: ...

    async def engine_load(self) -> int: ...

    async def encode(self, texts: Sequence[str]) -> list[tuple[int, ...]]: ...

    async def embed(self, prompts: Sequence[PreparedPrompt]) -> list[Embedding]: ...


@runtime_checkable
class RankedStages(Protocol):
    """Pipeline that build one-cell prompts from ranked genes (in-process: `LocalPipeline`)."""

    async def build_ranked(
        self, request: RankedPromptRequest, offset: int = 0
    ) -> list[PreparedPrompt]: ...


class EmbeddingsUnavailable(InvalidRequest):
    """The stages were wired without an embedding engine."""

    param = "model"

    def __init__(self) -> None:
        super().__init__(
            "This server runs no embedding engine: start it with embeddings enabled "
            "(AppConfig.embeddings, or c2s serve --embeddings)."
        )


#: one request of a batch sent to an engine: a prompt's token ids and its sampling
EngineRequest = tuple[Sequence[int], GenerationParams]


async def complete_all(engine: Engine, requests: Sequence[EngineRequest]) -> list[Completion]:
    """Every request of a batch run to the end, concurrently so the engine batches them;
    completions in request order. The first failure fails the batch, as one
    ``asyncio.gather`` of single calls would; cancelling the caller aborts them all."""
    return list(await asyncio.gather(*(engine.complete(ids, params) for ids, params in requests)))


class InProcessEngineCalls:
    """A pipeline's engine calls, answered by an engine in this process.

    `LocalPipeline` is one; `serving.ray_serve.ray_pipeline.RayPipeline` uses one where
    the engine runs in the ingress replica (``AppConfig.ingress = "engine"``).
    """

    def __init__(self, engine: Engine) -> None:
        self.engine = engine

    async def complete(self, prompt: PreparedPrompt, params: GenerationParams) -> Completion:
        return await self.engine.complete(prompt.token_ids, params)

    async def complete_many(
        self, requests: Sequence[tuple[PreparedPrompt, GenerationParams]]
    ) -> list[Completion]:
        return await complete_all(self.engine, [(p.token_ids, params) for p, params in requests])

    def stream(self, prompt: PreparedPrompt, params: GenerationParams) -> AsyncIterator[StepOutput]:
        return self.engine.generate(prompt.token_ids, params)

    async def health(self) -> None:
        await self.engine.health()

    async def limits(self) -> EngineLimits:
        return self.engine.limits

    async def engine_load(self) -> int:
        return self.engine.num_unfinished_requests()


class LocalPipeline(InProcessEngineCalls):
    """All stages in this process: the plain classes, called directly.

    ``embedder`` is the optional pooling engine behind `embed`.
    """

    def __init__(
        self,
        builder: BuildStage,
        engine: Engine,
        decoder: DecodeStage,
        embedder: Embedder | None = None,
    ) -> None:
        super().__init__(engine)
        self.builder = builder
        self.decoder = decoder
        self.embedder = embedder

    async def build(self, jobs: Sequence[PromptRequest], offset: int = 0) -> list[PreparedPrompt]:
        return self.builder.build(jobs, offset)

    async def build_ranked(
        self, request: RankedPromptRequest, offset: int = 0
    ) -> list[PreparedPrompt]:
        return self.builder.build_ranked(request, offset)

    async def decode(self, jobs: Sequence[DecodeRequest]) -> list[DecodedResult]:
        return self.decoder.decode(jobs)

    async def encode(self, texts: Sequence[str]) -> list[tuple[int, ...]]:
        return self.builder.encode_texts(texts)

    async def embed(self, prompts: Sequence[PreparedPrompt]) -> list[Embedding]:
        if self.embedder is None:
            raise EmbeddingsUnavailable()
        return list(await asyncio.gather(*(self.embedder.embed(p.token_ids) for p in prompts)))


@dataclass(frozen=True, slots=True)
class BatchItem:
    """One answered input of a batch."""

    prompt: PreparedPrompt
    completion: Completion
    answers: tuple[DecodedResult, ...]


def logprob_token_ids(output: GeneratedSequence | SequenceDelta) -> tuple[int, ...]:
    """Every token id a logprobs answer must show as text: chosen and alternatives."""
    ids = set(output.token_ids)
    for step in output.logprobs or ():
        ids.update(step.top)
    return tuple(sorted(ids))


async def decode_completions(
    stages: Pipeline,
    prompts: Sequence[PreparedPrompt],
    completions: Sequence[Completion],
    logprob_tokens: bool = False,
    reconstruct_expression: bool = False,
) -> list[tuple[DecodedResult, ...]]:
    """Every choice of every completion parsed in one decode call: each prompt's answers."""
    jobs = [
        DecodeRequest(
            p.task,
            out.text,
            logprob_token_ids(out) if logprob_tokens else (),
            reconstruct_expression,
        )
        for p, c in zip(prompts, completions, strict=True)
        for out in c.outputs
    ]
    answers = iter(await stages.decode(jobs))
    return [tuple(next(answers) for _ in c.outputs) for c in completions]


def chunked(items: Sequence, size: int) -> list[tuple[int, Sequence]]:
    """``(offset, chunk)`` pairs covering ``items`` in order."""
    return [(i, items[i : i + size]) for i in range(0, len(items), size)]


class Builds(Protocol):
    """What `fan_out` needs of the stages: building chunks of jobs."""

    async def build(
        self, jobs: Sequence[PromptRequest], offset: int = 0
    ) -> list[PreparedPrompt]: ...


#: answers one built chunk: its jobs and their prompts in, one result per job out
ChunkHandler = Callable[[Sequence[PromptRequest], list[PreparedPrompt]], Awaitable[list[T]]]


async def fan_out(
    stages: Builds,
    jobs: Sequence[PromptRequest],
    answer: ChunkHandler[T],
    *,
    chunk_size: int,
    build_first: bool = True,
) -> list[T]:
    """The fan-out of the serving core: chunks of ``jobs`` are built and answered
    concurrently, so builder and decoder replicas work in parallel while the engine
    batches continuously; results come back in input order.

    With ``build_first`` every chunk is built (and so validated) before any is answered:
    an invalid item fails the whole call without spending engine time, as a request must.
    Without it each chunk is answered as soon as it is built, so a bulk job's first cells
    reach the engine while the rest are being built.
    """
    chunks = chunked(jobs, chunk_size)
    if build_first:
        built = await asyncio.gather(*(stages.build(chunk, offset) for offset, chunk in chunks))
        done = await asyncio.gather(
            *(answer(chunk, prompts) for (_, chunk), prompts in zip(chunks, built, strict=True))
        )
    else:

        async def build_and_answer(offset: int, chunk: Sequence[PromptRequest]) -> list[T]:
            return await answer(chunk, await stages.build(chunk, offset))

        done = await asyncio.gather(*(build_and_answer(o, c) for o, c in chunks))
    return [item for part in done for item in part]


def generation(
    stages: Pipeline,
    params_for: Callable[[PreparedPrompt], GenerationParams],
    *,
    logprob_tokens: bool = False,
    reconstruct_expression: bool = False,
) -> ChunkHandler[BatchItem]:
    """`fan_out`'s answer for plain generation: every prompt of a chunk generated with
    ``params_for(prompt)``, then the chunk's answers parsed in one decode call."""

    async def answer(
        jobs: Sequence[PromptRequest], prompts: list[PreparedPrompt]
    ) -> list[BatchItem]:
        # one engine call per chunk: over Ray a call costs milliseconds of CPU, a cell ~one
        completions = await stages.complete_many([(p, params_for(p)) for p in prompts])
        answers = await decode_completions(
            stages, prompts, completions, logprob_tokens, reconstruct_expression
        )
        return [BatchItem(p, c, a) for p, c, a in zip(prompts, completions, answers, strict=True)]

    return answer
