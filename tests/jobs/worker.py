"""A bulk run in a child process, over the fake stack: the tests kill it, or cap its memory.

    python -m tests.jobs.worker CONFIG.json [--step-delay S] [--cap-warmup H5AD]

With ``--cap-warmup`` the child first runs the job once on a small file (so every library,
thread and allocator arena exists), then caps its address space (RLIMIT_AS) at its size
plus half the input file, runs the real job under that cap, then checks that loading the
whole file under the same cap fails. The last line printed is JSON: cells, the peak RSS
(VmHWM), the cap and that control.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import resource
import threading
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

from serving.bulk import AnnotateConfig, AnnotationJob
from tests.jobs.fakes import fake_runner


def status_kib(field: str) -> int:
    for line in Path("/proc/self/status").read_text().splitlines():
        if line.startswith(field + ":"):
            return int(line.split()[1])
    raise KeyError(field)


def cap_address_space(extra_bytes: int) -> int:
    limit = status_kib("VmSize") * 1024 + extra_bytes
    resource.setrlimit(resource.RLIMIT_AS, (limit, limit))
    return limit


async def run(config: AnnotateConfig, step_delay: float) -> int:
    result = await AnnotationJob(config, fake_runner(step_delay_s=step_delay)).run()
    return result.report["cells"]["total"]


async def main(args: argparse.Namespace) -> dict:
    config = AnnotateConfig.model_validate_json(args.config.read_text())
    cap = None
    if args.cap_warmup is not None:
        # one event loop for both runs: its reader threads exist before the cap; small
        # shards, so that the warm-up has as many shards in flight (and so worker threads,
        # whose stacks count against RLIMIT_AS) as the real run
        warmup = config.model_copy(
            update={
                "input": args.cap_warmup,
                "out": Path(config.out).with_name("warmup"),
                "shard_cells": 5,
            }
        )
        await run(warmup, 0.0)
        start_every_worker_thread(asyncio.get_running_loop())
        cap = cap_address_space(Path(config.input).stat().st_size // 2)
    cells = await run(config, args.step_delay)
    report = {"cells": cells, "vm_hwm_bytes": status_kib("VmHWM") * 1024, "cap": cap}
    if cap is not None:
        report["whole_load_failed"] = whole_load_fails(Path(config.input))
    return report


def start_every_worker_thread(loop: asyncio.AbstractEventLoop, workers: int = 8) -> None:
    """Give the loop a default executor whose threads all exist now: threads started after
    the cap would need stacks the cap does not leave (the job's own memory is the point)."""
    executor = ThreadPoolExecutor(max_workers=workers)
    barrier = threading.Barrier(workers)
    list(executor.map(lambda _: barrier.wait(timeout=30), range(workers)))
    loop.set_default_executor(executor)


def whole_load_fails(path: Path) -> bool:
    """The control: loading the whole file under the same cap runs out of memory."""
    import anndata

    try:
        anndata.read_h5ad(path)
    except MemoryError:
        return True
    return False


def parse_args() -> argparse.Namespace:
    parser = argparse.ArgumentParser()
    parser.add_argument("config", type=Path)
    parser.add_argument("--step-delay", type=float, default=0.0)
    parser.add_argument("--cap-warmup", type=Path)
    return parser.parse_args()


if __name__ == "__main__":
    print(json.dumps(asyncio.run(main(parse_args()))))
