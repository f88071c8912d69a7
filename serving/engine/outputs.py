"""What an engine returns: streamed deltas, finished completions and its limits."""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np


@dataclass(frozen=True, slots=True)
class TokenLogprob:
    """The chosen token's log-probability and the top alternatives at that step."""

    token_id: int
    logprob: float
    top: dict[int, float] = field(default_factory=dict)


@dataclass(frozen=True, slots=True)
class SequenceDelta:
    """New output of one choice since the previous step of a stream."""

    index: int
    text: str
    token_ids: tuple[int, ...]
    finish_reason: str | None = None
    logprobs: tuple[TokenLogprob, ...] | None = None


@dataclass(frozen=True, slots=True)
class StepOutput:
    """One step of a streamed request: the deltas of the choices that advanced."""

    request_id: str
    prompt_tokens: int
    deltas: tuple[SequenceDelta, ...]
    finished: bool


@dataclass(frozen=True, slots=True)
class GeneratedSequence:
    """One finished choice of a completion."""

    index: int
    text: str
    token_ids: tuple[int, ...]
    finish_reason: str | None
    logprobs: tuple[TokenLogprob, ...] | None = None


@dataclass(frozen=True, slots=True)
class Completion:
    """A finished request with all its choices, in index order."""

    request_id: str
    prompt_tokens: int
    outputs: tuple[GeneratedSequence, ...]

    @property
    def completion_tokens(self) -> int:
        return sum(len(o.token_ids) for o in self.outputs)

    @property
    def text(self) -> str:
        return self.outputs[0].text


@dataclass(frozen=True, slots=True)
class EngineLimits:
    """What callers must respect, reported by a started engine."""

    model: str
    max_model_len: int
    vocab_size: int
    eos_token_id: int | None
    max_num_seqs: int
    kv_cache_tokens: int | None
    dtype: str
    device: str
    #: tokens per KV cache block; prefix caching reuses whole blocks only
    kv_block_size: int | None = None


@dataclass(frozen=True, slots=True, eq=False)
class Embedding:
    """One prompt's embedding: the mean of the model's last hidden state over its tokens.

    ``values`` is a float32 vector of the model's hidden size.
    """

    request_id: str
    prompt_tokens: int
    values: np.ndarray
