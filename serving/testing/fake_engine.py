"""A deterministic in-process engine for contract tests of the layers above the engine."""

from __future__ import annotations

import asyncio
import itertools
import uuid
from collections.abc import AsyncIterator, Callable, Sequence
from pathlib import Path

import tokenizers

from serving.core.errors import EngineUnavailable, PromptTooLong
from serving.engine import (
    Completion,
    EngineLimits,
    GeneratedSequence,
    GenerationParams,
    SequenceDelta,
    StepOutput,
    TokenLogprob,
)
from tokenizer_ext import TextEncoder
from tokenizer_ext.cell_text import multi_cell_text, split_multi_cell_text

#: what `scripted` answers: cell types, and the tissue of a group
LABELS = ("B cell", "T cell", "Monocyte", "NK cell")
TISSUE = "peripheral blood"

Reply = Callable[[Sequence[int]], str]


def scripted(decode: Callable[[Sequence[int]], str]) -> Reply:
    """Labels drawn from the prompt ids: one per cell for multi-cell prompts, a tissue
    when the prompt's cue asks for one."""

    def reply(ids: Sequence[int]) -> str:
        text = decode(list(ids))
        n_cells = len(split_multi_cell_text(text))
        if n_cells and "tissue" in text.rsplit("\n", 1)[-1].lower():
            return f" {TISSUE}."
        seed = sum(ids)
        if n_cells:
            blocks = multi_cell_text(
                [LABELS[(seed + i) % len(LABELS)] for i in range(1, n_cells + 1)]
            )
            return f" {blocks}."
        return f" {LABELS[seed % len(LABELS)]}."

    return reply


def instant_engine(tokenizer_dir: Path) -> FakeEngine:
    """A `FakeEngine` with `scripted` answers over a model's tokenizer: an engine that
    costs nothing, for measuring and testing the layers above it."""
    from serving.core.stages import BuildStage

    encoder = BuildStage.from_model(tokenizer_dir).builder.encoder
    return FakeEngine(scripted(scripted_text(encoder)), encoder.encode, encoder.decode)


def scripted_text(encoder: TextEncoder) -> Callable[[Sequence[int]], str]:
    """Prompt text for `scripted` at a fifth of a full decode's cost: each token's own
    text, joined. For a byte-level decoder this keeps every ASCII character in order and
    differs only where a character is split over tokens (U+FFFD), so the ASCII headers
    and cues `scripted` reads, and its answers, are those of the full decode. Other
    decoders get the full decode."""
    tokenizer = encoder.tokenizer
    if not isinstance(tokenizer.decoder, tokenizers.decoders.ByteLevel):
        return encoder.decode
    size = tokenizer.get_vocab_size(with_added_tokens=True)
    pieces = tokenizer.decode_batch([[i] for i in range(size)], skip_special_tokens=True)
    return lambda ids: "".join(map(pieces.__getitem__, ids))


def hashed_logprob(context: Sequence[int], token: int) -> float:
    """A deterministic stand-in for log P(token | context), in [-10, 0)."""
    return -1e-2 * (1 + hash((len(context), sum(context), tuple(context[-3:]), token)) % 1000)


class FakeEngine:
    """Answers every prompt with ``reply(prompt_ids)``, one token per step.

    ``encode``/``decode`` are the model tokenizer's, so token counts are real;
    ``step_delay_s`` makes requests last long enough to test load and cancellation.
    ``next_logprob(context, token)`` answers ``logprob_token_ids`` and gives the
    log-probabilities of ``forced_token_ids`` (label scoring).
    """

    def __init__(
        self,
        reply: Callable[[Sequence[int]], str],
        encode: Callable[[str], list[int]],
        decode: Callable[[Sequence[int]], str],
        *,
        max_model_len: int = 8192,
        step_delay_s: float = 0.0,
        next_logprob: Callable[[Sequence[int], int], float] = hashed_logprob,
    ) -> None:
        self.reply, self.encode, self.decode = reply, encode, decode
        self.next_logprob = next_logprob
        self.step_delay_s = step_delay_s
        self.running: set[str] = set()
        self.dead = False
        self.limits = EngineLimits("fake", max_model_len, 50304, 0, 256, None, "none", "none")
        self._reply_ids: dict[str, list[int]] = {}
        self._texts: dict[tuple[int, ...], str] = {}  # decoded answers of `complete`
        self._completed = itertools.count()

    async def generate(
        self, prompt_ids: Sequence[int], params: GenerationParams, request_id: str | None = None
    ) -> AsyncIterator[StepOutput]:
        tokens = self._answer_tokens(prompt_ids, params)
        request_id = request_id or uuid.uuid4().hex
        self.running.add(request_id)
        try:
            for i, token in enumerate(tokens):
                await asyncio.sleep(self.step_delay_s)
                last = i == len(tokens) - 1
                reason = self._reason(len(tokens), params) if last else None
                logprobs = self._logprobs([*prompt_ids, *tokens[:i]], token, params)
                deltas = tuple(
                    SequenceDelta(n, self.decode([token]), (token,), reason, logprobs)
                    for n in range(params.n)
                )
                yield StepOutput(request_id, len(prompt_ids), deltas, last)
        finally:
            self.running.discard(request_id)

    def _answer_tokens(self, prompt_ids: Sequence[int], params: GenerationParams) -> list[int]:
        if len(prompt_ids) >= self.limits.max_model_len:
            raise PromptTooLong(len(prompt_ids), self.limits.max_model_len)
        if self.dead:
            raise EngineUnavailable("The fake engine is dead.")
        if params.forced_token_ids:
            return list(params.forced_token_ids)[: params.max_tokens]
        text = self.reply(prompt_ids)
        ids = self._reply_ids.get(text)
        if ids is None:
            if len(self._reply_ids) >= 4096:
                self._reply_ids.clear()
            ids = self._reply_ids[text] = self.encode(text)
        return list(ids[: params.max_tokens])

    def _reason(self, n_tokens: int, params: GenerationParams) -> str:
        return "stop" if params.max_tokens is None or n_tokens < params.max_tokens else "length"

    def _logprobs(
        self, context: Sequence[int], token: int, params: GenerationParams
    ) -> tuple[TokenLogprob, ...] | None:
        if not (params.logprob_token_ids or params.forced_token_ids):
            return None
        top = {t: self.next_logprob(context, t) for t in (token, *params.logprob_token_ids)}
        return (TokenLogprob(token, top[token], top),)

    async def complete(
        self, prompt_ids: Sequence[int], params: GenerationParams, request_id: str | None = None
    ) -> Completion:
        if not self.step_delay_s:
            return self._complete_at_once(prompt_ids, params, request_id)
        ids: dict[int, list[int]] = {}
        reasons: dict[int, str | None] = {}
        logprobs: dict[int, list[TokenLogprob]] = {}
        rid = request_id or ""
        async for step in self.generate(prompt_ids, params, request_id):
            rid = step.request_id
            for d in step.deltas:
                ids.setdefault(d.index, []).extend(d.token_ids)
                reasons[d.index] = d.finish_reason
                logprobs.setdefault(d.index, []).extend(d.logprobs or ())
        outputs = tuple(
            GeneratedSequence(
                i, self.decode(ids[i]), tuple(ids[i]), reasons[i], tuple(logprobs[i]) or None
            )
            for i in sorted(ids)
        )
        return Completion(rid, len(prompt_ids), outputs)

    def _complete_at_once(
        self, prompt_ids: Sequence[int], params: GenerationParams, request_id: str | None
    ) -> Completion:
        """What the step loop of `complete` returns, without a loop turn per token: an
        instant engine whose cost is not what a bulk benchmark measures."""
        tokens = self._answer_tokens(prompt_ids, params)
        if not tokens:
            return Completion(request_id or "", len(prompt_ids), ())
        logprobs = None
        if params.logprob_token_ids or params.forced_token_ids:
            context = list(prompt_ids)
            logprobs = tuple(
                self._logprobs([*context, *tokens[:i]], token, params)[0]
                for i, token in enumerate(tokens)
            )
        tokens = tuple(tokens)
        text = self._texts.get(tokens)
        if text is None:
            if len(self._texts) >= 4096:
                self._texts.clear()
            text = self._texts[tokens] = self.decode(tokens)
        reason = self._reason(len(tokens), params)
        outputs = tuple(
            GeneratedSequence(n, text, tokens, reason, logprobs) for n in range(params.n)
        )
        # a counter, not a uuid4 (7 us): unique within the engine, as vLLM needs
        request_id = request_id or f"fake-{next(self._completed)}"
        return Completion(request_id, len(prompt_ids), outputs)

    async def health(self) -> None:
        if self.dead:
            raise EngineUnavailable("The fake engine is dead.")

    def num_unfinished_requests(self) -> int:
        return len(self.running)

    def shutdown(self) -> None:
        self.dead = True
