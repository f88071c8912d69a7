"""Process memory settings for a bulk run: freed large buffers go back to the operating
system, and the cyclic garbage collector runs less often.

Reading and ranking a row chunk allocates and frees arrays of several MiB. glibc serves
such sizes from its heap once a larger block has been freed (its mmap threshold rises
with every free, up to 32 MiB) and keeps the freed pages, so a long run's RSS climbs in
steps far above what it holds: on the 25,000-gene atlas, 386 -> 560 MiB over 100,000
cells. A fixed threshold makes every buffer of 4 MiB or more its own mapping, returned
when freed (peak RSS stayed at 345-395 MiB over the same run). And every thread that
allocates gets a heap (arena) of its own, up to 8 per core: the reader's chunks are freed
into its heap, the answers' ids into the main one, and each fragments on its own. Two
heaps for the whole process: `atlas_scaling`'s 100k peak to the last shard went from 332
to 313 MiB.
"""

from __future__ import annotations

import contextlib
import ctypes
import gc
import os
import sys
from collections.abc import Iterator

#: glibc's ``mallopt`` parameter numbers: the mmap threshold, the most arenas
_M_MMAP_THRESHOLD, _M_ARENA_MAX = -3, -8
#: heaps (arenas) the threads of a bulk run share
BULK_ARENAS = 2
#: buffers at least this large are mapped on their own and unmapped when freed
LARGE_BUFFER_BYTES = 4 * 1024 * 1024
#: allocations between two young-generation passes of the cyclic collector while a bulk
#: run answers (Python's default is 700)
BULK_GC_THRESHOLD = 50_000


def settle_heap() -> None:
    """This process's heap for a bulk run, flat over millions of cells: large buffers
    returned when freed (`return_large_buffers`) and threads started from now on sharing
    two arenas (`share_heaps`)."""
    return_large_buffers()
    share_heaps()


def return_large_buffers(threshold: int = LARGE_BUFFER_BYTES) -> bool:
    """Fix glibc's mmap threshold at ``threshold`` bytes for this process.

    Returns whether it was set: not on other platforms or C libraries, nor when the
    ``MALLOC_MMAP_THRESHOLD_`` environment variable already sets it.
    """
    return _mallopt(_M_MMAP_THRESHOLD, threshold, "MALLOC_MMAP_THRESHOLD_")


def share_heaps(arenas: int = BULK_ARENAS) -> bool:
    """Let the threads created from now on share at most ``arenas`` glibc heaps.

    Returns whether it was set: not on other platforms or C libraries, nor when the
    ``MALLOC_ARENA_MAX`` environment variable already sets it.
    """
    return _mallopt(_M_ARENA_MAX, arenas, "MALLOC_ARENA_MAX")


def _mallopt(parameter: int, value: int, variable: str) -> bool:
    mallopt = _glibc("mallopt")
    if mallopt is None or variable in os.environ:
        return False
    return bool(mallopt(parameter, value))


def _glibc(name: str):
    """glibc's function ``name``, or ``None`` on other platforms and C libraries."""
    if not sys.platform.startswith("linux"):
        return None
    try:
        return getattr(ctypes.CDLL(None), name)
    except (OSError, AttributeError):  # not glibc
        return None


def trim_heap() -> bool:
    """Hand the free pages of every glibc heap back to the system (``malloc_trim``).

    A Ray worker answers range after range, each with threads of its own (a fresh event
    loop's executor) that free into whichever of the process's many heaps Ray's own
    threads created before `share_heaps` could cap them. Without a trim between ranges the
    largest worker's peak RSS grew with the atlas in `atlas_scaling` (430 / 498 / 530 MiB at
    10k / 100k / 1M cells, at 461b140); trimmed, 340 / 353 / 363 MiB (at cff6d9a), for
    3-4 ms a range of 1,024 cells (timed in a worker).

    Returns whether it ran: not on other platforms or C libraries.
    """
    malloc_trim = _glibc("malloc_trim")
    if malloc_trim is None:
        return False
    malloc_trim(0)
    return True


def release_arrow_memory() -> None:
    """Hand the memory Arrow's pool keeps after freeing back to the system: reading and
    writing a batch of Parquet rows leaves tens of MiB cached in it otherwise."""
    import pyarrow as pa

    pa.default_memory_pool().release_unused()


@contextlib.contextmanager
def fewer_collections(threshold: int = BULK_GC_THRESHOLD) -> Iterator[None]:
    """Run the cyclic garbage collector's young-generation pass every ``threshold``
    allocations instead of every 700 inside the block; the old thresholds come back after.

    A bulk run allocates millions of short-lived, acyclic objects (token-id lists, rows)
    that reference counting frees, yet each 700 of them set off a collector pass, and every
    few passes one over the older generations too. On the 25,000-gene atlas that was 1.5 s
    of 24.7 s of CPU over 100,000 cells; with this threshold, 0.03 s.
    """
    old = gc.get_threshold()
    gc.set_threshold(threshold, *old[1:])
    try:
        yield
    finally:
        gc.set_threshold(*old)
