"""Answering shards as they are read: one shard's cells -> prompts -> answers -> one row
per cell, with a cap on the cells in flight; `PipelineRunner` answers them with the serving
stages (in this process or over Ray Serve).

Single-cell runs ask ``cell_type_prediction`` once per cell. Multi-cell runs ask
``multi_cell_type_prediction`` once per group (a label per cell) and, with ``tissue``,
``tissue_prediction`` for the same group. Empty cells (when skipped) get a row with no
prediction and cost no request.
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import Awaitable, Callable, Iterator, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np

from serving.bulk.cells import ReadyShard
from serving.bulk.heap import fewer_collections
from serving.bulk.rows import CellRow, GroupFacts, cell_row, empty_row
from serving.bulk.runners import Answer, RankedRunner, TaskRunner, short_model_name
from serving.core.label_sets import LabelSet, label_set_answer
from serving.core.pipeline import BatchItem, Pipeline, RankedStages, fan_out, generation
from serving.core.requests import PromptRequest, RankedPromptRequest
from serving.core.tasks import default_registry
from serving.core.tasks.registry import TaskRegistry

SINGLE_TASK = "cell_type_prediction"
GROUP_TASK = "multi_cell_type_prediction"
TISSUE_TASK = "tissue_prediction"


class InflightCells:
    """At most ``limit`` cells submitted and unanswered; a larger batch waits until none
    are in flight rather than forever."""

    def __init__(self, limit: int) -> None:
        self.limit = limit
        self.used = 0
        self._changed = asyncio.Condition()

    async def acquire(self, cells: int) -> None:
        async with self._changed:
            await self._changed.wait_for(lambda: self.used == 0 or self.used + cells <= self.limit)
            self.used += cells

    async def release(self, cells: int) -> None:
        async with self._changed:
            self.used -= cells
            self._changed.notify_all()


def first_error(error: BaseException) -> BaseException:
    """The first real error inside (nested) exception groups."""
    while isinstance(error, BaseExceptionGroup):
        error = error.exceptions[0]
    return error


async def answer_as_read(
    shards: Iterator[ReadyShard],
    answer: Callable[[ReadyShard], Awaitable[None]],
    max_inflight_cells: int,
) -> None:
    """``answer`` every shard ``shards`` yields, concurrently, with at most
    ``max_inflight_cells`` cells in flight; the first error cancels the rest and is raised.

    ``shards`` is advanced in a thread (it reads and ranks), beside the answers in flight.
    """
    inflight = InflightCells(max_inflight_cells)

    async def answered(ready: ReadyShard) -> None:
        try:
            await answer(ready)
        finally:
            await inflight.release(ready.shard.n_cells)

    try:
        with fewer_collections():
            async with asyncio.TaskGroup() as tasks:
                while (ready := await asyncio.to_thread(next, shards, None)) is not None:
                    await inflight.acquire(ready.shard.n_cells)
                    tasks.create_task(answered(ready))
    except BaseExceptionGroup as group:
        raise first_error(group) from None
    finally:
        with contextlib.suppress(ValueError):  # a read may still run in its thread
            shards.close()


@dataclass(frozen=True)
class PromptSettings:
    """How every prompt of a run is made.

    Attributes
    ----------
    task
        `SINGLE_TASK` or `GROUP_TASK`.
    n_genes
        Genes per cell.
    organism
        The organism named in the prompt.
    template_index
        The prompt variant, when fixed.
    template_draws
        A random number per input row when variants are drawn per cell (or group); the
        variant is the draw modulo the task's number of variants.
    draws_start
        The input row of ``template_draws[0]``: a worker holds only its rows' draws.
    with_tissue
        Also ask each group's tissue.
    label_set
        The allowed cell type labels and their mode (not used for the tissue).
    """

    task: str
    n_genes: int
    organism: str
    template_index: int = 0
    template_draws: np.ndarray | None = None
    draws_start: int = 0
    with_tissue: bool = True
    label_set: LabelSet | None = None

    def template(self, row: int, n_templates: int) -> int:
        if self.template_draws is None:
            return self.template_index
        return int(self.template_draws[row - self.draws_start] % n_templates)


class ShardAnswerer:
    """Turns ready shards into rows through a `TaskRunner`."""

    def __init__(self, runner: TaskRunner, settings: PromptSettings, registry: TaskRegistry):
        self.runner = runner
        self.settings = settings
        self.registry = registry

    async def answer(self, ready: ReadyShard) -> list[CellRow]:
        if self.settings.task == SINGLE_TASK:
            return await self._single(ready)
        return await self._groups(ready)

    def _templates(self, task: str, rows: list[int]) -> list[int]:
        n = len(self.registry.get(task).templates)
        return [self.settings.template(row, n) for row in rows]

    async def _single(self, ready: ReadyShard) -> list[CellRow]:
        rows = ready.shard.rows.tolist()
        live = np.flatnonzero(ready.cells.lengths > 0).tolist()
        templates = self._templates(SINGLE_TASK, [rows[i] for i in live])
        answers = dict(zip(live, await self._run_cells(ready, live, templates), strict=True))
        out = []
        for i, row in enumerate(rows):
            answer = answers.get(i)
            label = answer.result.get("label") if answer else None
            out.append(
                cell_row(row, ready.names[i], SINGLE_TASK, answer, label)
                if answer
                else empty_row(row, ready.names[i], SINGLE_TASK)
            )
        return out

    async def _groups(self, ready: ReadyShard) -> list[CellRow]:
        shard = ready.shard
        starts = shard.bounds[:-1].tolist()
        units = shard.units()
        names = shard.unit_names or ("",) * len(units)
        live = [u for u, name in enumerate(names) if name]
        inputs = [
            self._payload(cells=ready.sentences[starts[u] : starts[u] + len(units[u])])
            for u in live
        ]
        first_rows = [int(units[u][0]) for u in live]
        labels, tissues = await asyncio.gather(
            self._run(GROUP_TASK, inputs, self._templates(GROUP_TASK, first_rows)),
            self._run(TISSUE_TASK, inputs, self._templates(TISSUE_TASK, first_rows))
            if self.settings.with_tissue
            else _nothing(),
        )
        by_unit = dict(zip(live, labels, strict=True))
        tissue_by_unit = dict(zip(live, tissues, strict=True)) if tissues else {}
        out = []
        for u, rows in enumerate(units):
            for j, row in enumerate(rows.tolist()):
                name = ready.names[starts[u] + j]
                answer = by_unit.get(u)
                if answer is None:
                    out.append(empty_row(row, name, GROUP_TASK))
                    continue
                group = GroupFacts(names[u], len(rows), tissue_by_unit.get(u))
                out.append(group_cell_row(row, name, answer, j, group))
        return out

    async def _run_cells(self, ready: ReadyShard, live: list[int], templates: list[int]):
        """The live cells' answers: from their ranked genes when the runner builds prompts
        from those (in-process stages), else from their sentences."""
        if live and self.settings.label_set is None and isinstance(self.runner, RankedRunner):
            cells = ready.cells.select(live)
            request = RankedPromptRequest(
                SINGLE_TASK, cells, ready.vocabulary, self._payload(), templates
            )
            return await self.runner.run_ranked(request)
        inputs = [self._payload(cell=ready.sentences[i]) for i in live]
        return await self._run(SINGLE_TASK, inputs, templates)

    def _payload(self, **cells: Any) -> dict[str, Any]:
        return {**cells, "n_genes": self.settings.n_genes, "organism": self.settings.organism}

    async def _run(self, task: str, inputs: list, templates: list[int]) -> list[Answer]:
        if not inputs:
            return []
        if task == TISSUE_TASK or self.settings.label_set is None:
            return await self.runner.run(task, inputs, templates)
        return await self.runner.run(task, inputs, templates, self.settings.label_set)


async def _nothing() -> list[Answer]:
    return []


def group_cell_row(
    row: int, cell_id: str, answer: Answer, position: int, group: GroupFacts
) -> CellRow:
    """The row of the cell at ``position`` of a group answered by ``answer``."""
    labels = answer.result.get("labels") or []
    label = labels[position] if position < len(labels) else None
    return cell_row(row, cell_id, GROUP_TASK, answer, label, position, group)


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
