"""The driver of a distributed run: plan as a local run plans, hand row ranges to Ray
tasks, commit the shards they return.

Everything a local run promises holds because the driver keeps the parts that make it so:
the same plan and manifest (`AnnotationJob`), one atomic commit per shard, made only here
(a task that Ray reruns after its worker died returns its shards once), the progress
record after every commit, and ``workers`` ranges in flight at most. Killed, the driver
leaves committed shards behind and the next run resumes from them.
"""

from __future__ import annotations

import asyncio
import itertools
import os
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from dataclasses import dataclass, replace
from typing import Any

from serving.bulk.config import AnnotateConfig, ExecutionConfig
from serving.bulk.distributed.ranges import RowRange, pending_ranges, rng_states
from serving.bulk.distributed.worker import RunContext, ShardFiles, answer_range
from serving.bulk.errors import AnnotateError
from serving.bulk.input_file import InputFile
from serving.bulk.job import AnnotationJob
from serving.bulk.plan import ShardPlan
from serving.bulk.progress import ProgressListener
from serving.bulk.runners import short_model_name
from serving.bulk.store import ShardStore
from serving.engine import EngineLimits


@dataclass(frozen=True)
class Engines:
    """What answers a distributed run's prompts: engine actors, or the Serve app."""

    hosts: tuple[Any, ...]
    limits: EngineLimits

    async def max_model_len(self) -> int:  # the `TaskRunner` call `AnnotationJob` plans with
        return self.limits.max_model_len


class DistributedJob(AnnotationJob):
    """`AnnotationJob` whose pending shards are answered by range tasks on a Ray cluster."""

    def __init__(
        self, config: AnnotateConfig, engines: Engines, progress: ProgressListener | None = None
    ) -> None:
        super().__init__(config, engines, progress=progress)  # type: ignore[arg-type]
        self.engines = engines

    async def _answer_pending(
        self, source: InputFile, plan: ShardPlan, store: ShardStore, done: set[int]
    ) -> None:
        import ray

        config = self.config
        distributed = config.execution.distributed
        settings = self._prompt_settings(source)
        context = RunContext(
            config,
            source.vocabulary,
            replace(settings, template_draws=None),
            self.engines.hosts,
            self.engines.limits,
            short_model_name(self.engines.limits.model),
        )
        per_task = distributed.shards_per_task
        states = (
            rng_states(
                config.input,
                (r.start for r in pending_ranges(plan, done, per_task)),
                config.rank_seed,
                layer=config.layer,
                use_raw=config.use_raw,
            )
            if config.tie_break == "c2s"
            else itertools.repeat(None)
        )
        task = ray.remote(answer_range).options(
            num_cpus=distributed.worker_cpus,
            max_retries=distributed.task_retries,
            scheduling_strategy="SPREAD",
        )
        context_ref = ray.put(context)
        committed = set(done)

        async def prepared(row_range: RowRange) -> RowRange:
            # the RNG replay walks forward to this range's first row, in a thread
            state = await asyncio.to_thread(next, states)
            draws = settings.template_draws
            return replace(
                row_range,
                rng_state=state,
                template_draws=None if draws is None else draws[row_range.start : row_range.stop],
            )

        async def answered(row_range: RowRange) -> ShardFiles:
            return await task.remote(context_ref, row_range)

        def commit(files: ShardFiles) -> None:
            for index, data in files:
                store.commit(index, data)
                committed.add(index)
            store.record_progress(committed, plan)

        # ranges go out in row order, as workers free up (a replay between two ranges
        # costs milliseconds)
        window = distributed.workers
        inflight: set[asyncio.Task] = set()
        queue = pending_ranges(plan, done, per_task)
        try:
            while True:
                while len(inflight) < window and (row_range := next(queue, None)) is not None:
                    ready = await prepared(row_range)
                    inflight.add(asyncio.ensure_future(answered(ready)))
                if not inflight:
                    break
                finished, inflight = await asyncio.wait(
                    inflight, return_when=asyncio.FIRST_COMPLETED
                )
                for future in finished:
                    files = future.result()
                    await asyncio.to_thread(commit, files)
                    self.progress.advance(sum(plan.shards[i].n_cells for i, _ in files))
        finally:
            for future in inflight:
                future.cancel()


@asynccontextmanager
async def open_engines(execution: ExecutionConfig) -> AsyncIterator[Engines]:
    """Connect to (or start) the Ray cluster and the run's engines; stop what was started."""
    import ray

    started_ray = _connect(execution)
    hosts: tuple[Any, ...] = ()
    try:
        distributed = execution.distributed
        if distributed.engine == "serve":
            from serving.bulk.backends import serve_stages

            limits = await serve_stages(execution).limits()
        else:
            from serving.bulk.distributed.engines import start_engine_hosts

            hosts = tuple(
                start_engine_hosts(distributed, execution.engine, execution.tokenizer_dir)
            )
            limits = await hosts[0].limits.remote()
        yield Engines(hosts, limits)
    finally:
        for host in hosts:
            ray.kill(host)
        if started_ray:
            ray.shutdown()


def _connect(execution: ExecutionConfig) -> bool:
    """Join the cluster at ``ray_address`` (or ``RAY_ADDRESS``), else start Ray in this
    process; whether this call started or joined Ray (and so shuts it down)."""
    import ray

    if ray.is_initialized():
        return False
    address = execution.ray_address or os.environ.get("RAY_ADDRESS") or None
    try:
        if address:  # a cluster's, or the one a Ray job (a RayJob's driver) runs in
            ray.init(address=address, log_to_driver=False)
        else:
            # loopback: a single-machine run must not advertise an address it cannot reach
            ray.init(_node_ip_address="127.0.0.1", log_to_driver=False)
    except ConnectionError as exc:
        raise AnnotateError(
            f"No Ray cluster at {execution.ray_address!r} ({exc}). Give the head's address "
            "(--ray-address HOST:6379), or leave it out to start Ray in this process."
        ) from None
    return True
