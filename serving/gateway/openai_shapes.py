"""Engine outputs in OpenAI's response shapes: usage, logprobs, chunks and SSE events."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from serving.core.protocol import (
    ChatChoiceLogprobs,
    ChatChunkChoice,
    ChatCompletionChunk,
    ChatLogprobEntry,
    CompletionLogprobs,
    Usage,
)
from serving.engine import Completion, GeneratedSequence, SequenceDelta


def usage_of(completion: Completion) -> Usage:
    return Usage(
        prompt_tokens=completion.prompt_tokens,
        completion_tokens=completion.completion_tokens,
        total_tokens=completion.prompt_tokens + completion.completion_tokens,
    )


def completion_logprobs(
    out: GeneratedSequence | SequenceDelta, tokens: Mapping[int, str]
) -> CompletionLogprobs:
    logprobs = CompletionLogprobs()
    offset = 0
    for step in out.logprobs or ():
        text = tokens.get(step.token_id, "")
        logprobs.tokens.append(text)
        logprobs.token_logprobs.append(step.logprob)
        logprobs.top_logprobs.append({tokens.get(t, ""): lp for t, lp in step.top.items()})
        logprobs.text_offset.append(offset)
        offset += len(text)
    return logprobs


def chat_logprobs(
    out: GeneratedSequence | SequenceDelta, tokens: Mapping[int, str]
) -> ChatChoiceLogprobs:
    entries = []
    for step in out.logprobs or ():
        text = tokens.get(step.token_id, "")
        entries.append(
            ChatLogprobEntry(
                token=text,
                logprob=step.logprob,
                bytes=list(text.encode()),
                top_logprobs=[
                    {
                        "token": tokens.get(t, ""),
                        "logprob": lp,
                        "bytes": list(tokens.get(t, "").encode()),
                    }
                    for t, lp in step.top.items()
                ],
            )
        )
    return ChatChoiceLogprobs(content=entries)


def chat_chunk(
    stream_id: str, created: int, model: str, choices: list[ChatChunkChoice]
) -> ChatCompletionChunk:
    return ChatCompletionChunk(id=stream_id, created=created, model=model, choices=choices)


def sse_event(model: Any) -> str:
    return f"data: {model.model_dump_json(exclude_none=False)}\n\n"
