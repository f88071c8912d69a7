"""A run: `annotate` checks the input and opens the execution mode's runner; `AnnotationJob`
plans shards, answers the pending ones and writes the outputs.

The job takes its `TaskRunner` from outside (`serving.bulk.backends.open_runner`, or a
test's), so the same code runs in-process, over Ray Serve or against a remote gateway.
Shards are answered concurrently, with up to ``max_inflight_cells`` cells in flight, and
each is committed atomically as soon as it is answered.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from serving.bulk import backends
from serving.bulk.answer import (
    GROUP_TASK,
    SINGLE_TASK,
    TISSUE_TASK,
    PromptSettings,
    ShardAnswerer,
    answer_as_read,
)
from serving.bulk.cells import ReadyShard, ShardAssembler
from serving.bulk.config import AnnotateConfig
from serving.bulk.errors import AnnotateError, InputError
from serving.bulk.heap import settle_heap
from serving.bulk.input_file import InputFile, inspect_input, iter_cells
from serving.bulk.outputs import write_outputs
from serving.bulk.plan import ShardPlan, group_plan, single_cell_plan
from serving.bulk.progress import NullProgress, ProgressListener
from serving.bulk.rows import rows_to_table
from serving.bulk.runners import TaskRunner
from serving.bulk.sizing import (
    GroupSize,
    answer_budget,
    fit_group_size,
    group_specs,
    worst_prompt_counter,
)
from serving.bulk.stats import RunStats
from serving.bulk.store import ShardStore
from serving.core.tasks import default_registry
from serving.core.tasks.registry import TaskRegistry

MANIFEST_VERSION = 1


async def annotate(config: AnnotateConfig, progress: ProgressListener | None = None) -> RunResult:
    """Run ``config`` end to end in its execution mode (local, Ray Serve, endpoint or
    distributed over a Ray cluster).

    The input is checked before the engine starts or a cluster is reached.
    """
    source = preflight(config)
    if config.execution.mode == "distributed":
        from serving.bulk.distributed import DistributedJob, open_engines

        async with open_engines(config.execution) as engines:
            return await DistributedJob(config, engines, progress=progress).run(source)
    async with backends.open_runner(config.execution) as runner:
        return await AnnotationJob(config, runner, progress=progress).run(source)


@dataclass(frozen=True)
class RunResult:
    """What a finished run leaves: its folder, its report and the files written."""

    out: Path
    report: dict[str, Any]
    files: dict[str, Path]


class AnnotationJob:
    """One bulk annotation run.

    Parameters
    ----------
    config
        The run's settings.
    runner
        Answers batches of task inputs (in-process, Ray Serve or remote gateway).
    progress
        Told how many cells are done as shards are committed.
    registry
        The tasks (their template counts and sampling defaults); the built-in ones.
    """

    def __init__(
        self,
        config: AnnotateConfig,
        runner: TaskRunner,
        *,
        progress: ProgressListener | None = None,
        registry: TaskRegistry | None = None,
    ) -> None:
        self.config = config
        self.runner = runner
        self.progress = progress or NullProgress()
        self.registry = registry or default_registry()

    async def run(self, source: InputFile | None = None) -> RunResult:
        """Annotate every cell not yet committed, then write the outputs.

        Parameters
        ----------
        source
            The input as `preflight` checked it; checked here when not given.

        Raises
        ------
        InputError, ResumeMismatch, AnnotateError
            And the serving core's errors (`serving.core.errors.C2SError`).
        """
        started = time.perf_counter()
        settle_heap()
        if source is None:
            source = preflight(self.config, self.registry)
        plan, group_size = self._plan(source, await self.runner.max_model_len())
        store = ShardStore(self.config.out)
        store.open_run(self._manifest(source, plan), overwrite=self.config.overwrite)
        done = store.committed(plan)
        store.record_progress(done, plan)
        resumed = sum(plan.shards[i].n_cells for i in done)
        self.progress.start(plan.n_cells, resumed)
        try:
            await self._answer_pending(source, plan, store, done)
        finally:
            self.progress.stop()
        stats = RunStats(
            elapsed_s=time.perf_counter() - started,
            annotated_cells=plan.n_cells - resumed,
            resumed_cells=resumed,
            group_size=group_size,
        )
        report, files = write_outputs(self.config, source, store, plan, stats)
        return RunResult(Path(self.config.out), report, files)

    # ------------------------------------------------------------------ planning

    def _plan(self, source: InputFile, max_model_len: int) -> tuple[ShardPlan, GroupSize | None]:
        config = self.config
        if not config.multi_cell:
            return single_cell_plan(source.n_obs, config.shard_cells), None
        size = self._group_size(source, max_model_len)
        groups = source.obs[config.group_key].astype(str).to_numpy()
        plan = group_plan(groups, size.cells, config.shard_cells, source.values.empty_rows)
        return plan, size

    def _group_size(self, source: InputFile, max_model_len: int) -> GroupSize:
        config = self.config
        specs = group_specs(self.registry, config.tissue)
        template = None if config.template_index == "random" else int(config.template_index)
        encode = _tokenizer(config.execution.tokenizer_dir)
        count = worst_prompt_counter(
            encode,
            source.vocabulary.symbols,
            config.genes_per_cell,
            specs,
            template,
            source.vocabulary.organism,
        )
        reserved = answer_budget(specs, config.genes_per_cell)
        size = fit_group_size(
            count, reserved, max_model_len, config.max_group_cells, exact=encode is not None
        )
        if size is None:
            raise InputError(
                f"Not even one cell of {config.genes_per_cell} genes fits the model's "
                f"{max_model_len}-token context with the answer's budget: lower --n-genes."
            )
        return size

    def _manifest(self, source: InputFile, plan: ShardPlan) -> dict[str, Any]:
        config = self.config
        stat = Path(config.input).stat()
        return {
            "version": MANIFEST_VERSION,
            "input": str(Path(config.input).resolve()),
            "input_bytes": stat.st_size,
            "input_mtime_ns": stat.st_mtime_ns,
            "n_cells": source.n_obs,
            "matrix": config.matrix_name,
            "gene_symbols_column": config.gene_symbols_column,
            "organism": source.vocabulary.organism,
            "task": config.task,
            "tissue": config.tissue if config.multi_cell else None,
            "n_genes": config.genes_per_cell,
            "template_index": config.template_index,
            "template_seed": config.template_seed,
            "tie_break": config.tie_break,
            "rank_seed": config.rank_seed,
            "group_key": config.group_key,
            "group_size": plan.group_size,
            "shard_cells": config.shard_cells,
            "n_shards": len(plan.shards),
            "skip_empty_cells": config.skip_empty_cells,
            "model": config.execution.target,
            "labels": list(config.labels) if config.labels else None,
            "label_mode": config.label_mode if config.labels else None,
            "top_k_labels": config.top_k_labels if config.label_mode == "scored" else None,
        }

    def _prompt_settings(self, source: InputFile) -> PromptSettings:
        config = self.config
        draws = None
        if config.template_index == "random":
            # one draw per row, fixed by the seed: a resumed run picks the same variants
            rng = np.random.default_rng(config.template_seed)
            draws = rng.integers(0, 2**31 - 1, size=source.n_obs)
        return PromptSettings(
            task=config.task,
            n_genes=config.genes_per_cell,
            organism=source.vocabulary.organism,
            template_index=0 if draws is not None else int(config.template_index),
            template_draws=draws,
            with_tissue=config.tissue,
            label_set=config.label_set,
        )

    # ------------------------------------------------------------------ answering

    async def _answer_pending(
        self, source: InputFile, plan: ShardPlan, store: ShardStore, done: set[int]
    ) -> None:
        answerer = ShardAnswerer(self.runner, self._prompt_settings(source), self.registry)
        assembler = ShardAssembler(plan, skip=done)
        committed = set(done)
        writing = asyncio.Lock()

        def commit(index: int, rows: list) -> None:
            store.commit(index, rows_to_table(rows))
            committed.add(index)
            store.record_progress(committed, plan)

        async def answer(ready: ReadyShard) -> None:
            rows = await answerer.answer(ready)
            # fsyncs in a thread, one commit at a time: the loop keeps feeding the engine
            async with writing:
                await asyncio.to_thread(commit, ready.shard.index, rows)
            self.progress.advance(ready.shard.n_cells)

        def ready_shards() -> Iterator[ReadyShard]:
            if not assembler.pending:
                return
            for chunk in iter_cells(self.config, source.vocabulary):
                yield from assembler.add(chunk)
                if not assembler.pending:
                    return  # the rest of the file holds only committed shards

        await answer_as_read(ready_shards(), answer, self.config.execution.max_inflight_cells)


def bulk_tasks(config: AnnotateConfig) -> list[str]:
    """The tasks a run asks: one per cell, or per group (with the group's tissue)."""
    if not config.multi_cell:
        return [SINGLE_TASK]
    return [GROUP_TASK] + ([TISSUE_TASK] if config.tissue else [])


def check_template(config: AnnotateConfig, registry: TaskRegistry) -> None:
    """Raise `AnnotateError` when a fixed template index does not exist for a task."""
    index = config.template_index
    if index == "random":
        return
    for task in bulk_tasks(config):
        n = len(registry.get(task).templates)
        if index >= n:
            raise AnnotateError(
                f"--template-index {index} does not exist for {task}, which has "
                f"{n} templates (0-{n - 1}).",
                param="template_index",
            )


def preflight(config: AnnotateConfig, registry: TaskRegistry | None = None) -> InputFile:
    """Every check that needs no engine: settings against the tasks, then the input.

    Run it before starting an engine, so that a bad input fails in seconds.
    """
    check_template(config, registry or default_registry())
    return inspect_input(config)


def _tokenizer(model_dir: Path | None):
    """The encode function of a local tokenizer, or ``None`` without one."""
    if model_dir is None or not (Path(model_dir) / "tokenizer.json").is_file():
        return None
    from tokenizer_ext import TextEncoder

    return TextEncoder.load(Path(model_dir) / "tokenizer.json").encode
