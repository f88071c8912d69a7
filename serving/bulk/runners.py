"""What the job asks of the serving stack: answer many inputs of one task, in order.

`serving.bulk.answer.PipelineRunner` runs them through `serving.core.pipeline.fan_out`
over any `Pipeline` (the plain classes in this process, or Ray Serve handles);
`serving.bulk.remote.GatewayRunner` sends them to a gateway's ``POST /v1/tasks/{task}``.
Either way the prompts, the engine requests and the parsing are the server's own.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Protocol, runtime_checkable

from serving.core.label_sets import LabelSet
from serving.core.requests import RankedPromptRequest


@dataclass(frozen=True, slots=True)
class Answer:
    """One answered input.

    Attributes
    ----------
    result
        The task's typed result as a dict (``{"kind": "label", "label": ...}``).
    text
        The generated text.
    prompt_tokens, output_tokens
        Token counts of the request.
    finish_reason
        ``stop`` or ``length``.
    template_index
        The prompt variant used.
    model
        The model that answered.
    """

    result: dict[str, Any]
    text: str
    prompt_tokens: int
    output_tokens: int
    finish_reason: str | None
    template_index: int | None
    model: str


class TaskRunner(Protocol):
    """Answers batches of one task's inputs, in input order."""

    async def max_model_len(self) -> int: ...

    async def run(
        self,
        task: str,
        inputs: Sequence[Mapping[str, Any]],
        templates: Sequence[int],
        label_set: LabelSet | None = None,
    ) -> list[Answer]:
        """Answer ``inputs``; with ``label_set``, against it (`serving.core.label_sets`)."""
        ...


@runtime_checkable
class RankedRunner(Protocol):
    """A runner that also takes one-cell inputs as ranked genes, not sentences."""

    async def run_ranked(self, request: RankedPromptRequest) -> list[Answer]:
        """Answer one input per ranked cell of ``request``."""
        ...


def short_model_name(model: str) -> str:
    """A model's name for the rows: a local directory's own name, or the hub id."""
    path = Path(model)
    return path.name if path.is_dir() else model
