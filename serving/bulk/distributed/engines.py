"""Engines a distributed run starts itself: Ray actors hosting an engine, and the client
the range tasks call them through.

`EngineHost` holds a vLLM engine (``ExecutionConfig.engine``) or an instant one
(`serving.testing.fake_engine.instant_engine`). Ray restarts a host whose process dies
and retries the calls it was serving; the engine is started on first use, so a restarted
host starts its own. `ActorEngine` is the `serving.engine.Engine` side the stages see:
the requests a batch makes in one turn of the event loop travel in one actor call, so a
call's overhead is paid per chunk of cells rather than per cell.
"""

from __future__ import annotations

import asyncio
import itertools
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from serving.bulk.config import DistributedConfig, DistributedEngine
from serving.core.pipeline import EngineRequest, complete_all
from serving.engine import Completion, EngineLimits, GenerationParams
from serving.engine.config import EngineConfig


class EngineHost:
    """One engine in a Ray actor (wrapped with ``ray.remote`` by `start_engine_hosts`)."""

    def __init__(
        self,
        kind: DistributedEngine,
        engine: EngineConfig | None,
        tokenizer_dir: Path | None,
        instant_delay_s: float = 0.0,
    ) -> None:
        self.kind, self.engine_config, self.tokenizer_dir = kind, engine, tokenizer_dir
        self.instant_delay_s = instant_delay_s
        self._engine: Any = None
        self._starting = asyncio.Lock()

    async def _started(self):
        async with self._starting:
            if self._engine is None:
                self._engine = await self._start()
        return self._engine

    async def _start(self):
        if self.kind == "instant":
            from serving.testing.fake_engine import instant_engine

            assert self.tokenizer_dir is not None  # ExecutionConfig checks it
            engine = instant_engine(self.tokenizer_dir)
            engine.step_delay_s = self.instant_delay_s
            return engine
        from serving.engine import start_vllm_engine

        assert self.engine_config is not None  # ExecutionConfig checks it
        return await start_vllm_engine(self.engine_config)

    async def limits(self) -> EngineLimits:
        return (await self._started()).limits

    async def complete_many(self, requests: Sequence[EngineRequest]) -> list[Completion]:
        return await complete_all(await self._started(), requests)


def start_engine_hosts(
    distributed: DistributedConfig, engine: EngineConfig | None, tokenizer_dir: Path | None
) -> list[Any]:
    """The run's engine actors, spread over the cluster's nodes."""
    import ray

    host = ray.remote(EngineHost).options(
        num_cpus=distributed.engine_cpus,
        num_gpus=distributed.engine_gpus,
        max_restarts=-1,
        max_task_retries=-1,
        max_concurrency=10_000,
        scheduling_strategy="SPREAD",
    )
    return [
        host.remote(distributed.engine, engine, tokenizer_dir, distributed.instant_delay_s)
        for _ in range(distributed.engine_actors)
    ]


class ActorEngine:
    """The `serving.engine.Engine` calls a `serving.core.pipeline.LocalPipeline` makes, sent to
    engine actors in micro-batches, round robin.

    Parameters
    ----------
    hosts
        `EngineHost` actor handles.
    limits
        The engines' limits (asked once by the driver).
    """

    def __init__(self, hosts: Sequence[Any], limits: EngineLimits) -> None:
        self.hosts = list(hosts)
        self.limits = limits
        self._turn = itertools.cycle(self.hosts)
        self._batch: list[tuple[list[int], GenerationParams, asyncio.Future]] = []
        self._sending: set[asyncio.Task] = set()

    async def complete(self, prompt_ids: Sequence[int], params: GenerationParams) -> Completion:
        loop = asyncio.get_running_loop()
        if not self._batch:
            # the batch's other requests join it before this runs: they were scheduled first
            loop.call_soon(self._flush)
        future = loop.create_future()
        self._batch.append((list(prompt_ids), params, future))
        return await future

    def _flush(self) -> None:
        batch, self._batch = self._batch, []
        call = next(self._turn).complete_many.remote([(ids, p) for ids, p, _ in batch])
        task = asyncio.get_running_loop().create_task(_deliver(call, [f for _, _, f in batch]))
        self._sending.add(task)
        task.add_done_callback(self._sending.discard)

    def generate(self, prompt_ids, params, request_id=None):
        raise NotImplementedError("bulk runs complete prompts; they do not stream")

    async def health(self) -> None:
        return None

    def num_unfinished_requests(self) -> int:
        return len(self._batch)


async def _deliver(call: Any, futures: list[asyncio.Future]) -> None:
    try:
        completions = await call
    except Exception as exc:  # the whole call failed: every request of it did
        for future in futures:
            if not future.done():
                future.set_exception(exc)
        return
    for future, completion in zip(futures, completions, strict=True):
        if not future.done():
            future.set_result(completion)
