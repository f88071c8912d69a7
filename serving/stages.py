"""The chunk-level prompt and decode stages that Ray Serve replicates.

`BuildStage` and `DecodeStage` are plain classes over `PromptBuilder` and `Decoder`:
they take and return lists so that one call carries a whole chunk of a batch, and they
serve raw prompts (tokenised here, never in the engine) beside task prompts. The gateway
calls them in-process or as Ray Serve deployments; the bulk job calls the same classes.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from serving.decoder import Decoder
from serving.engine.params import GenerationParams
from serving.errors import C2SError, InvalidRequest, PromptTooLong
from serving.prompt_builder import PromptBuilder
from serving.tasks.templates import TemplateChoice
from tokenizer_ext.text_encoder import TextEncoder

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

    def __init__(self, decoder: Decoder, encoder: TextEncoder) -> None:
        self.decoder = decoder
        self.encoder = encoder

    @classmethod
    def from_model(cls, model_dir: str | Path) -> DecodeStage:
        encoder = TextEncoder.load(Path(model_dir) / "tokenizer.json")
        return cls(Decoder.from_model(model_dir), encoder)

    def decode(self, jobs: Sequence[DecodeJob]) -> list[DecodedAnswer]:
        return [self._decode_one(job) for job in jobs]

    def _decode_one(self, job: DecodeJob) -> DecodedAnswer:
        result = None
        if job.task is not None:
            result = self.decoder.decode(job.task, job.text).model_dump()
        tokens = {t: self.encoder.decode([t]) for t in set(job.token_ids)}
        return DecodedAnswer(result, tokens)
