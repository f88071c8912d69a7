"""The chunk-level prompt and decode stages that Ray Serve replicates.

`BuildStage` and `DecodeStage` are plain classes over `PromptBuilder` and `Decoder`:
they take and return lists so that one call carries a whole chunk of a batch, and they
serve raw prompts (tokenised here, never in the engine) beside task prompts. The gateway
calls them in-process or as Ray Serve deployments; the bulk job calls the same classes.
"""

from __future__ import annotations

import json
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from serving.decoder import Decoder
from serving.engine.params import GenerationParams
from serving.errors import C2SError, InvalidRequest, PromptTooLong
from serving.prompt_builder import PromptBuilder
from serving.tasks.templates import TemplateChoice
from tokenizer_ext.inverse import RankExpressionFit
from tokenizer_ext.text_encoder import TextEncoder

#: a checkpoint's fitted inverse transform (C2S's slope and intercept), if it has one
EXPRESSION_FIT_FILE = "expression_fit.json"
#: vLLM's OpenAI server defaults for raw completions
RAW_DEFAULTS = GenerationParams(max_tokens=16, temperature=1.0)


@dataclass(frozen=True, slots=True)
class PromptJob:
    """One prompt to build: a task with its inputs, or a raw prompt (text or ids)."""

    task: str | None = None
    inputs: Mapping[str, Any] | None = None
    raw_prompt: str | tuple[int, ...] | None = None
    template: TemplateChoice = 0


@dataclass(frozen=True, slots=True)
class PreparedPrompt:
    """A built prompt: token ids plus the task's default sampling."""

    token_ids: tuple[int, ...]
    params: GenerationParams
    task: str | None = None
    template_index: int | None = None

    @property
    def prompt_tokens(self) -> int:
        return len(self.token_ids)


@dataclass(frozen=True, slots=True)
class DecodeJob:
    """One generated answer to parse, and token ids to render as text (for logprobs)."""

    task: str | None
    text: str
    token_ids: tuple[int, ...] = field(default=())
    reconstruct_expression: bool = False


@dataclass(frozen=True, slots=True)
class DecodedAnswer:
    """A parsed answer (``None`` for raw prompts) and the text of each requested token."""

    result: dict[str, Any] | None
    tokens: dict[int, str] = field(default_factory=dict)


class BatchItemError(InvalidRequest):
    """One item of a batch is invalid; the message names its index."""

    def __init__(self, index: int, error: C2SError) -> None:
        self.index = index
        self.cause = error
        super().__init__(f"inputs[{index}]: {error.message}", param=f"inputs[{index}]")


class BuildStage:
    """Builds chunks of prompts with a `PromptBuilder`.

    Parameters
    ----------
    builder
        The prompt builder (tokenizer, registry, context length).
    """

    def __init__(self, builder: PromptBuilder) -> None:
        self.builder = builder

    @classmethod
    def from_model(cls, model_dir: str | Path, **kwargs: Any) -> BuildStage:
        return cls(PromptBuilder.from_model(model_dir, **kwargs))

    def build(self, jobs: Sequence[PromptJob], offset: int = 0) -> list[PreparedPrompt]:
        """Build every job, in order; the first invalid one raises `BatchItemError`
        (or its own error when the chunk holds one job)."""
        prepared = []
        for i, job in enumerate(jobs):
            try:
                prepared.append(self._build_one(job))
            except C2SError as exc:
                if len(jobs) == 1 and offset == 0:
                    raise
                raise BatchItemError(offset + i, exc) from None
        return prepared

    def _build_one(self, job: PromptJob) -> PreparedPrompt:
        if job.task is None:
            return self._raw(job.raw_prompt)
        built = self.builder.build(job.task, job.inputs or {}, job.template)
        return PreparedPrompt(built.token_ids, built.params, built.task, built.template_index)

    def _raw(self, prompt: str | tuple[int, ...] | None) -> PreparedPrompt:
        if prompt is None or len(prompt) == 0:
            raise InvalidRequest("The prompt is empty.", param="prompt")
        ids = tuple(prompt) if not isinstance(prompt, str) else tuple(self._encode(prompt))
        limit = self.builder.max_model_len
        if len(ids) >= limit:
            raise PromptTooLong(len(ids), limit)
        return PreparedPrompt(ids, RAW_DEFAULTS)

    def _encode(self, text: str) -> list[int]:
        ids = self.builder.encoder.encode(text)
        if not ids:
            raise InvalidRequest("The prompt has no tokens.", param="prompt")
        return ids


class DecodeStage:
    """Parses chunks of answers with a `Decoder`, and renders tokens for logprobs."""

    def __init__(
        self, decoder: Decoder, encoder: TextEncoder, fit: RankExpressionFit | None = None
    ) -> None:
        self.decoder = decoder
        self.encoder = encoder
        self.fit = fit

    @classmethod
    def from_model(cls, model_dir: str | Path) -> DecodeStage:
        """A stage for a checkpoint directory; its ``expression_fit.json`` (slope and
        intercept of the C2S inverse transform, fitted on its training data) enables
        expression reconstruction."""
        model_dir = Path(model_dir)
        fit_file = model_dir / EXPRESSION_FIT_FILE
        fit = None
        if fit_file.is_file():
            values = json.loads(fit_file.read_text("utf-8"))
            fit = RankExpressionFit(slope=values["slope"], intercept=values["intercept"])
        return cls(
            Decoder.from_model(model_dir), TextEncoder.load(model_dir / "tokenizer.json"), fit
        )

    def decode(self, jobs: Sequence[DecodeJob]) -> list[DecodedAnswer]:
        return [self._decode_one(job) for job in jobs]

    def _decode_one(self, job: DecodeJob) -> DecodedAnswer:
        result = None
        if job.task is not None:
            result = self.decoder.decode(job.task, job.text).model_dump()
            if job.reconstruct_expression:
                result = self._with_expression(result)
        tokens = {t: self.encoder.decode([t]) for t in set(job.token_ids)}
        return DecodedAnswer(result, tokens)

    def _with_expression(self, result: dict[str, Any]) -> dict[str, Any]:
        """Add C2S's rank-to-expression values beside every generated gene list."""
        if self.fit is None:
            raise InvalidRequest(
                f"This model ships no {EXPRESSION_FIT_FILE} (slope and intercept of the "
                "inverse transform), so expression cannot be reconstructed.",
                param="reconstruct_expression",
            )
        if result["kind"] == "genes":
            return {**result, "expression": self._expression(result["genes"])}
        if result["kind"] == "cells":
            cells = [{**c, "expression": self._expression(c["genes"])} for c in result["cells"]]
            return {**result, "cells": cells}
        raise InvalidRequest(
            f"Results of kind {result['kind']!r} hold no generated cells to reconstruct.",
            param="reconstruct_expression",
        )

    def _expression(self, genes: list[str]) -> list[float]:
        return [round(float(v), 6) for v in self.fit.predict(range(len(genes)))]
