"""The batch-route and bulk-job clients of suite ``serving_overhead``: paths (c) and (d)."""

from __future__ import annotations

import asyncio
import json
import os
import resource
import subprocess
import sys
import time
from pathlib import Path

import httpx

from benchmarks.checkpoints import WORK_DIR
from benchmarks.machine import REPO_ROOT
from benchmarks.process_cpu import CpuMeter
from benchmarks.stats import summary
from benchmarks.workload import ORGANISM
from serving.testing.ray_head import LOOPBACK_CLIENT_ENV

TASK = "cell_type_prediction"


async def batch_route(url: str, items: list[dict], size: int, in_flight: int, owners) -> dict:
    """(c): ``in_flight`` clients post ``size`` cells a request until the cells run out."""
    requests = [items[i : i + size] for i in range(0, len(items) - size + 1, size)]
    todo = iter(requests)
    latencies, tokens, errors = [], [], []
    async with httpx.AsyncClient(base_url=url, timeout=600) as client:

        async def post(part: list[dict]) -> None:
            body = {"inputs": [p["inputs"] for p in part]}
            start = time.perf_counter()
            response = await client.post(f"/v1/tasks/{TASK}", json=body)
            if response.status_code != 200:
                errors.append(response.status_code)
                return
            latencies.append(time.perf_counter() - start)
            tokens.append(response.json()["usage"])

        async def user() -> None:
            for part in todo:
                await post(part)

        await post(requests[0])  # warm-up
        todo = iter(requests)
        with CpuMeter(owners) as meter:
            start = time.perf_counter()
            await asyncio.gather(*(user() for _ in range(in_flight)))
            seconds = time.perf_counter() - start
    cells = size * len(latencies)
    return {
        "cells_per_request": size,
        "in_flight": in_flight,
        "requests": len(requests),
        "errors": errors,
        "seconds": round(seconds, 3),
        "cells_per_s": round(cells / seconds, 2),
        "e2e_ms": summary(latencies, 1000, 1),
        "mean_prompt_tokens": round(sum(t["prompt_tokens"] for t in tokens) / cells, 1),
        "mean_output_tokens": round(sum(t["completion_tokens"] for t in tokens) / cells, 1),
        "cpu_ms_per_cell": meter.per_request(cells),
    }


def annotate(h5ad: Path, name: str, extra: list[str], owners: set[int]) -> dict:
    """(d): ``c2s annotate`` in a child; cells/s over the job's own pipeline time. CPU:
    the job's processes (all its waited-for descendants, its engine in local mode) and,
    per role, the server processes in ``owners``."""
    out = WORK_DIR / "overhead" / name
    command = [sys.executable, "-m", "serving.cli", "annotate", str(h5ad), "--out", str(out)]
    command += ["--use-raw", "--n-genes", "200", "--organism", ORGANISM, "--overwrite", *extra]
    log_path = WORK_DIR / "logs" / f"overhead-{name}.log"
    env = {**os.environ, "RAY_USAGE_STATS_ENABLED": "0", "TQDM_DISABLE": "1", **LOOPBACK_CLIENT_ENV}
    before = resource.getrusage(resource.RUSAGE_CHILDREN)
    with CpuMeter(owners) as meter, open(log_path, "w") as log_file:
        done = subprocess.run(command, cwd=REPO_ROOT, env=env, stdout=log_file, stderr=log_file)
    after = resource.getrusage(resource.RUSAGE_CHILDREN)
    if done.returncode != 0:
        return {"error": log_path.read_text()[-2000:], "command": " ".join(command)}
    report = json.loads((out / "report.json").read_text())
    cells, seconds = report["cells"]["total"], report["run"]["elapsed_s"]
    job_s = (after.ru_utime - before.ru_utime) + (after.ru_stime - before.ru_stime)
    return {
        "command": " ".join(_relative(c) for c in command[1:]),
        "cells": cells,
        "pipeline_s": seconds,
        "cells_per_s": round(cells / seconds, 2),
        "tokens": report["tokens"],
        "job_process_cpu_ms_per_cell": round(1000 * job_s / cells, 2),
        "server_cpu_ms_per_cell": meter.per_request(cells),
    }


def _relative(part: str) -> str:
    return part.replace(str(REPO_ROOT) + "/", "")
