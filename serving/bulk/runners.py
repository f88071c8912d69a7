"""What the job asks of the serving stack: answer many inputs of one task, in order.

`PipelineRunner` runs them through `serving.core.pipeline.fan_out` over any `Pipeline` (the
plain classes in this process, or Ray Serve handles); `serving.bulk.remote.GatewayRunner`
sends them to a gateway's ``POST /v1/tasks/{task}``. Either way the prompts, the engine
requests and the parsing are the server's own.
"""

from __future__ import annotations

import asyncio
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Protocol, runtime_checkable

from serving.core.label_sets import LabelSet, label_set_answer
from serving.core.pipeline import BatchItem, Pipeline, RankedStages, fan_out, generation
from serving.core.stages import PromptRequest, RankedPromptRequest
from serving.core.tasks import default_registry


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


class PipelineRunner:
    """A `TaskRunner` over the serving stages, with the tasks' default sampling.

    Parameters
    ----------
    stages
        `serving.core.pipeline.LocalPipeline` or `serving.ray_serve.deployments.RayPipeline`.
    model_name
        The name written beside every answer; by default the engine's, read from its
        limits when `max_model_len` is first asked.
    request_cells
        Inputs per build/decode chunk.
    """

    def __init__(
        self, stages: Pipeline, model_name: str | None = None, request_cells: int = 32
    ) -> None:
        self.stages = stages
        self.model_name = model_name
        self.request_cells = request_cells

    async def max_model_len(self) -> int:
        limits = await self.stages.limits()
        if self.model_name is None:
            self.model_name = short_model_name(limits.model)
        return limits.max_model_len

    async def run(
        self,
        task: str,
        inputs: Sequence[Mapping[str, Any]],
        templates: Sequence[int],
        label_set: LabelSet | None = None,
    ) -> list[Answer]:
        jobs = [
            PromptRequest(task=task, inputs=payload, template=int(template))
            for payload, template in zip(inputs, templates, strict=True)
        ]
        params_for = lambda prompt: prompt.params  # noqa: E731 (the tasks' own sampling)
        if label_set is None:
            answer = generation(self.stages, params_for)
        else:
            answer = await label_set_answer(
                self.stages, jobs, params_for, label_set=label_set, registry=default_registry()
            )
        # each chunk reaches the engine as soon as it is built, rather than after the whole
        # batch: the engine starts on a shard's first cells while the rest are being built
        items = await fan_out(
            self.stages, jobs, answer, chunk_size=self.request_cells, build_first=False
        )
        return [self._answer(item) for item in items]

    async def run_ranked(self, request: RankedPromptRequest) -> list[Answer]:
        """`run` of one-cell inputs given as ranked genes: stages that build prompts from
        those (`LocalPipeline`) never make a sentence; others get the sentences."""
        if not isinstance(self.stages, RankedStages):
            return await self.run(request.task, request.sentence_inputs(), request.templates)
        # built in one go (one gather of ids), then answered in request-sized chunks
        prompts = await self.stages.build_ranked(request)
        answer = generation(self.stages, lambda prompt: prompt.params)
        size = self.request_cells
        done = await asyncio.gather(
            *(answer((), prompts[i : i + size]) for i in range(0, len(prompts), size))
        )
        return [self._answer(item) for part in done for item in part]

    def _answer(self, item: BatchItem) -> Answer:
        output = item.completion.outputs[0]
        return Answer(
            result=item.answers[0].result or {},
            text=output.text,
            prompt_tokens=item.prompt.prompt_tokens,
            output_tokens=len(output.token_ids),
            finish_reason=output.finish_reason,
            template_index=item.prompt.template_index,
            model=self.model_name or "",
        )


def short_model_name(model: str) -> str:
    """A model's name for the rows: a local directory's own name, or the hub id."""
    path = Path(model)
    return path.name if path.is_dir() else model
