"""The server-sent event stream of one streamed completion or chat completion."""

from __future__ import annotations

import time
import uuid
from collections.abc import AsyncIterator
from typing import Any

from serving.core.pipeline import Pipeline, logprob_token_ids
from serving.core.protocol import (
    ChatChunkChoice,
    ChatCompletionChunk,
    ChatCompletionRequest,
    ChatDelta,
    CompletionChoice,
    CompletionRequest,
    CompletionResponse,
    Usage,
)
from serving.core.requests import DecodeRequest, PreparedPrompt
from serving.engine import GenerationParams, StepOutput
from serving.gateway.metrics import GatewayMetrics
from serving.gateway.openai_shapes import (
    chat_chunk,
    chat_logprobs,
    completion_logprobs,
    sse_event,
)


async def stream_events(
    stages: Pipeline,
    metrics: GatewayMetrics,
    request: CompletionRequest | ChatCompletionRequest,
    prompt: PreparedPrompt,
    params: GenerationParams,
) -> AsyncIterator[str]:
    """Server-sent events of one generation: deltas, each choice's typed result at its
    end, usage (when asked), then ``[DONE]``."""
    chat = isinstance(request, ChatCompletionRequest)
    stream_id = f"{'chatcmpl' if chat else 'cmpl'}-{uuid.uuid4().hex}"
    created = int(time.time())
    texts: dict[int, str] = {}
    completion_tokens = 0
    if chat:
        yield sse_event(
            chat_chunk(
                stream_id,
                created,
                request.model,
                [
                    ChatChunkChoice(index=i, delta=ChatDelta(role="assistant", content=""))
                    for i in range(params.n)
                ],
            )
        )
    async for step in stages.stream(prompt, params):
        chunk, added = await _stream_chunk(
            stages, request, prompt, params, step, stream_id, created, texts
        )
        completion_tokens += added
        if chunk is not None:
            yield sse_event(chunk)
    if request.include_usage:
        usage = Usage(
            prompt_tokens=prompt.prompt_tokens,
            completion_tokens=completion_tokens,
            total_tokens=prompt.prompt_tokens + completion_tokens,
        )
        empty: dict[str, Any] = {
            "id": stream_id,
            "created": created,
            "model": request.model,
            "choices": [],
            "usage": usage,
        }
        yield sse_event(ChatCompletionChunk(**empty) if chat else CompletionResponse(**empty))
    metrics.count_tokens(prompt.task or "raw", prompt.prompt_tokens, completion_tokens)
    yield "data: [DONE]\n\n"


async def _stream_chunk(
    stages: Pipeline, request, prompt, params, step: StepOutput, stream_id, created, texts
):
    """The chunk of one engine step (``None`` when it holds no delta) and its tokens."""
    chat = isinstance(request, ChatCompletionRequest)
    decode_jobs = []
    for delta in step.deltas:
        texts[delta.index] = texts.get(delta.index, "") + delta.text
        full = texts[delta.index] if delta.finish_reason is not None else ""
        task = prompt.task if delta.finish_reason is not None else None
        ids = logprob_token_ids(delta) if params.logprobs is not None else ()
        decode_jobs.append(DecodeRequest(task, full, ids))
    answers = (
        await stages.decode(decode_jobs)
        if (params.logprobs is not None or any(d.finish_reason for d in step.deltas))
        else [None] * len(step.deltas)
    )
    added = sum(len(d.token_ids) for d in step.deltas)
    if not step.deltas:
        return None, 0
    choices = [
        _chunk_choice(chat, d, a, params.logprobs is not None)
        for d, a in zip(step.deltas, answers, strict=True)
    ]
    if chat:
        return chat_chunk(stream_id, created, request.model, choices), added
    return CompletionResponse(
        id=stream_id, created=created, model=request.model, choices=choices
    ), added


def _chunk_choice(chat: bool, delta, answer, with_logprobs: bool):
    """One streamed choice; the answer's typed result and logprobs once it is decoded."""
    decoded = answer is not None
    shared = {
        "index": delta.index,
        "finish_reason": delta.finish_reason,
        "result": answer.result if decoded else None,
    }
    if chat:
        logprobs = chat_logprobs(delta, answer.tokens) if decoded and with_logprobs else None
        return ChatChunkChoice(delta=ChatDelta(content=delta.text), logprobs=logprobs, **shared)
    logprobs = completion_logprobs(delta, answer.tokens) if decoded and with_logprobs else None
    return CompletionChoice(text=delta.text, logprobs=logprobs, **shared)
