"""Flow control for the job: a cap on cells in flight, and unwrapping task-group errors."""

from __future__ import annotations

import asyncio


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
