"""What every path child shares: reading its spec, timing runs, printing its result."""

from __future__ import annotations

import argparse
import json
import os
import sys
import time
from collections.abc import Callable
from pathlib import Path

#: set by the suite just before it launches the child (``time.time()``)
LAUNCHED_AT_ENV = "BENCH_LAUNCHED_AT"


def since_launch() -> float | None:
    """Seconds since the suite launched this process (interpreter start included)."""
    launched = os.environ.get(LAUNCHED_AT_ENV)
    return round(time.time() - float(launched), 3) if launched else None


def read_spec(description: str) -> dict:
    parser = argparse.ArgumentParser(description=description)
    parser.add_argument("--spec", type=Path, required=True, help="JSON spec from the suite")
    args = parser.parse_args()
    return json.loads(args.spec.read_text())


def read_workloads(spec: dict) -> dict:
    return json.loads(Path(spec["workload_file"]).read_text())


def emit(result: dict) -> None:
    """Print the result as the last line of stdout."""
    sys.stdout.flush()
    print(json.dumps(result), flush=True)


def run_stats(n_cells: int, seconds: float, prompt_tokens: int, output_tokens: int) -> dict:
    """Throughput of one timed run."""
    return {
        "cells": n_cells,
        "seconds": round(seconds, 4),
        "cells_per_s": round(n_cells / seconds, 4),
        "prompt_tokens": prompt_tokens,
        "output_tokens": output_tokens,
        "output_tokens_per_s": round(output_tokens / seconds, 2),
        "total_tokens_per_s": round((prompt_tokens + output_tokens) / seconds, 2),
    }


def timed_runs(runs: list[list[dict]], answer: Callable[[list[dict]], list[int]]) -> list[dict]:
    """Time ``answer`` on each run of items; it returns each item's output token count."""
    results = []
    for items in runs:
        start = time.perf_counter()
        output_counts = answer(items)
        seconds = time.perf_counter() - start
        prompt_tokens = sum(len(i["prompt_ids"]) for i in items)
        results.append(run_stats(len(items), seconds, prompt_tokens, sum(output_counts)))
    return results


async def timed_runs_async(runs: list[list[dict]], answer) -> list[dict]:
    """`timed_runs` for a coroutine ``answer``."""
    results = []
    for items in runs:
        start = time.perf_counter()
        output_counts = await answer(items)
        seconds = time.perf_counter() - start
        prompt_tokens = sum(len(i["prompt_ids"]) for i in items)
        results.append(run_stats(len(items), seconds, prompt_tokens, sum(output_counts)))
    return results
