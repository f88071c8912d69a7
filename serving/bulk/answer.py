"""Answering shards as they are read: one shard's cells -> prompts -> answers -> one row
per cell, with a cap on the cells in flight.

Single-cell runs ask ``cell_type_prediction`` once per cell. Multi-cell runs ask
``multi_cell_type_prediction`` once per group (a label per cell) and, with ``tissue``,
``tissue_prediction`` for the same group. Empty cells (when skipped) get a row with no
prediction and cost no request.
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import Awaitable, Callable, Iterator, Mapping
from dataclasses import dataclass
from typing import Any

import numpy as np

from serving.bulk.cells import ReadyShard
from serving.bulk.heap import fewer_collections
from serving.bulk.rows import CellRow
from serving.bulk.runners import Answer, RankedRunner, TaskRunner
from serving.core.label_sets import LabelSet
from serving.core.stages import RankedPromptRequest
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


@dataclass(frozen=True)
class GroupFacts:
    """The group a cell was asked in, and the group's tissue answer."""

    name: str
    size: int
    tissue: Answer | None


def cell_row(
    row: int,
    cell_id: str,
    task: str,
    answer: Answer,
    prediction: str | None,
    position: int | None = None,
    group: GroupFacts | None = None,
) -> CellRow:
    """The row of a cell answered by ``answer`` (at ``position`` of ``group``'s answer)."""
    return CellRow(
        row=row,
        cell_id=cell_id,
        task=task,
        status="ok" if prediction else "no_label",
        prediction=prediction,
        raw_text=answer.text,
        prompt_tokens=answer.prompt_tokens,
        output_tokens=answer.output_tokens,
        finish_reason=answer.finish_reason,
        template_index=answer.template_index,
        model=answer.model,
        **label_columns(answer.result, position),
        **(group_columns(group) if group else {}),
    )


def label_columns(result: Mapping[str, Any], position: int | None = None) -> dict[str, Any]:
    """A cell's label-set columns: whether its label is in the set and, when labels were
    scored, the top labels and the first one's probability (``position``: the cell's
    place in a group's answer)."""
    member = result.get("in_label_set")
    scores = result.get("label_scores")
    if position is not None:
        member = member[position] if member and position < len(member) else None
        scores = scores[position] if scores and position < len(scores) else None
    return {
        "in_label_set": member,
        "label_score": scores[0]["probability"] if scores else None,
        "top_labels": scores,
    }


def group_columns(group: GroupFacts) -> dict[str, Any]:
    """The columns every cell of a group shares: the group and its tissue answer."""
    return {
        "group_id": group.name,
        "group_size": group.size,
        "tissue": group.tissue.result.get("label") if group.tissue else None,
        "tissue_raw_text": group.tissue.text if group.tissue else None,
    }


def group_cell_row(
    row: int, cell_id: str, answer: Answer, position: int, group: GroupFacts
) -> CellRow:
    """The row of the cell at ``position`` of a group answered by ``answer``."""
    labels = answer.result.get("labels") or []
    label = labels[position] if position < len(labels) else None
    return cell_row(row, cell_id, GROUP_TASK, answer, label, position, group)


def empty_row(row: int, cell_id: str, task: str) -> CellRow:
    """The row of a cell without expressed genes: no prompt, no prediction."""
    return CellRow(row=row, cell_id=cell_id, task=task, status="empty_cell")
