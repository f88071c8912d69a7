"""Flow control for the job: a cap on cells in flight, answering shards as they are read,
and unwrapping task-group errors."""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import Awaitable, Callable, Iterator
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from serving.bulk.answer import ReadyShard


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
        async with asyncio.TaskGroup() as tasks:
            while (ready := await asyncio.to_thread(next, shards, None)) is not None:
                await inflight.acquire(ready.shard.n_cells)
                tasks.create_task(answered(ready))
    except BaseExceptionGroup as group:
        raise first_error(group) from None
    finally:
        with contextlib.suppress(ValueError):  # a read may still run in its thread
            shards.close()
