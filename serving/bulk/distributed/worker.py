"""The range task: read and rank one row range, build its prompts, have them answered, and
return its shards as Parquet bytes (the driver commits them).

It runs in a Ray worker anywhere in the cluster; the input file is read there in backed
mode (shared storage). Its rows are ranked from the RNG state the driver computed for the
range's first row, so every sentence is the one a whole-file local run makes. A task
whose worker dies is rerun by Ray from the start; it writes nothing itself, so a rerun
can neither lose nor duplicate a shard.
"""

from __future__ import annotations

import asyncio
import functools
from collections.abc import Iterator, Sequence
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any

import numpy as np

from serving.bulk.answer import PipelineRunner, PromptSettings, ShardAnswerer, answer_as_read
from serving.bulk.cells import ReadyShard
from serving.bulk.config import AnnotateConfig, ExecutionConfig
from serving.bulk.distributed.ranges import RowRange
from serving.bulk.heap import settle_heap, trim_heap
from serving.bulk.input_file import iter_cells
from serving.bulk.plan import Shard
from serving.bulk.rows import rows_to_table
from serving.bulk.store import parquet_bytes
from serving.core.tasks import default_registry
from serving.engine import EngineLimits
from tokenizer_ext import GeneVocabulary, RankedCells, RankedChunk

#: what a range task returns: (shard index, its Parquet file's bytes), in row order
ShardFiles = list[tuple[int, bytes]]


@dataclass(frozen=True)
class RunContext:
    """What every range task of a run shares; put in Ray's object store once.

    Attributes
    ----------
    config
        The run's settings.
    vocabulary
        The input's gene vocabulary, as the driver's preflight built it.
    settings
        How prompts are made (the template draws travel with each range).
    engine_hosts
        `serving.bulk.distributed.engines.EngineHost` actors (``vllm``, ``instant``).
    limits
        The engines' limits.
    model_name
        The name written beside every answer.
    """

    config: AnnotateConfig
    vocabulary: GeneVocabulary
    settings: PromptSettings
    engine_hosts: tuple[Any, ...]
    limits: EngineLimits
    model_name: str


def answer_range(context: RunContext, row_range: RowRange) -> ShardFiles:
    """The Ray task's body: every shard of ``row_range``, answered."""
    settle_heap()
    try:
        return asyncio.run(_answer_range(context, row_range))
    finally:
        trim_heap()  # the worker lives on for the next range


async def _answer_range(context: RunContext, row_range: RowRange) -> ShardFiles:
    settings = replace(
        context.settings, template_draws=row_range.template_draws, draws_start=row_range.start
    )
    answerer = ShardAnswerer(_runner(context), settings, default_registry())
    files: dict[int, bytes] = {}

    async def answer(ready: ReadyShard) -> None:
        rows = await answerer.answer(ready)
        files[ready.shard.index] = await asyncio.to_thread(parquet_bytes, rows_to_table(rows))

    shards = ready_shards(read_range(context, row_range), row_range.shards)
    await answer_as_read(shards, answer, context.config.execution.max_inflight_cells)
    return sorted(files.items())


def read_range(context: RunContext, row_range: RowRange) -> Iterator[RankedChunk]:
    """Rows ``start:stop`` of the input, ranked as a whole-file run ranks them: the
    tie-break RNG starts where the rows before left it."""
    config = context.config
    rng = None
    if config.tie_break == "c2s":
        rng = np.random.RandomState()
        rng.set_state(row_range.rng_state)
    rows = (row_range.start, row_range.stop)
    return iter_cells(config, context.vocabulary, rows=rows, rng=rng)


def ready_shards(chunks: Iterator[RankedChunk], shards: Sequence[Shard]) -> Iterator[ReadyShard]:
    """Consecutive shards, each released as soon as the chunks hold all its rows."""
    names: list[str] = []
    parts: list[RankedCells] = []
    held = 0
    pending = iter(shards)
    shard = next(pending, None)
    for chunk in chunks:
        names += [str(name) for name in chunk.obs_names]
        parts.append(chunk.ranked)
        held += chunk.stop - chunk.start
        while shard is not None and held >= shard.n_cells:
            cells, n = RankedCells.concatenate(parts), shard.n_cells
            yield ReadyShard(shard, names[:n], cells.select(list(range(n))), chunk.vocabulary)
            parts, held = [cells.select(list(range(n, held)))], held - n
            del names[:n]
            shard = next(pending, None)


def _runner(context: RunContext) -> PipelineRunner:
    execution = context.config.execution
    if execution.distributed.engine == "serve":
        from serving.bulk.backends import serve_stages

        stages = serve_stages(execution)
    else:
        from serving.bulk.distributed.engines import ActorEngine
        from serving.core.pipeline import LocalPipeline

        builder, decoder = _plain_stages(_tokenizer_dir(execution), context.limits.max_model_len)
        stages = LocalPipeline(builder, ActorEngine(context.engine_hosts, context.limits), decoder)
    return PipelineRunner(stages, context.model_name, request_cells=execution.request_cells)


def _tokenizer_dir(execution: ExecutionConfig) -> Path:
    """The model's tokenizer files on this node: the configured directory, else the hub
    id's snapshot in the Hugging Face cache (shared by the nodes on Kubernetes)."""
    if execution.tokenizer_dir is not None:
        return execution.tokenizer_dir
    from serving.engine.checkpoint import local_model_dir

    assert execution.engine is not None  # ExecutionConfig checks it
    return Path(local_model_dir(execution.engine.tokenizer_path))


@functools.cache
def _plain_stages(tokenizer_dir: Path, max_model_len: int):
    """The builder and decoder over the model's tokenizer, loaded once per worker process."""
    from serving.core.stages import BuildStage, DecodeStage

    return (
        BuildStage.from_model(tokenizer_dir, max_model_len=max_model_len),
        DecodeStage.from_model(tokenizer_dir),
    )
