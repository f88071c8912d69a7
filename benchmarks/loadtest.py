"""Suite ``loadtest``: a running gateway (``c2s serve``) under open- and closed-loop load.

Task requests (cell type prediction, streamed through the ``openai`` SDK, every request a
different cell, exactly 16 output tokens):

1. idle: one request at a time: the idle TTFT;
2. closed loop: a sweep of concurrent users; the peak throughput, and the knee, where
   throughput per unit of median latency (Kleinrock's "power") is highest;
3. open loop: Poisson arrivals at fractions of the peak; TTFT p99 at 80% of the peak.

Raw completions (random token prompts of the same length, 16 output tokens) go through
vLLM's own load client, ``vllm bench serve``, at 80% of the peak (Poisson) and as a burst
at the knee's concurrency. Traffic goes to 127.0.0.1 only, and every level has a fixed
request count.
"""

from __future__ import annotations

import asyncio
import json
import subprocess
import sys
import time
import zlib
from dataclasses import dataclass

from benchmarks.checkpoints import WORK_DIR, Checkpoint
from benchmarks.gateway_process import GatewayFailed, GatewayProcess
from benchmarks.load_client import closed_loop, open_loop, openai_client, summarise
from benchmarks.machine import REPO_ROOT
from benchmarks.paths.gateway_load import served_model, task_request
from benchmarks.stats import ratio
from benchmarks.suite import (
    SuiteOptions,
    finish_record,
    log,
    random_checkpoint_or_skip,
    start_record,
)
from benchmarks.workload import WORKLOADS, pbmc_cells, task_inputs

#: the goal: TTFT p99 at this fraction of peak throughput ...
LOADED_FRACTION = 0.8
#: ... at most this multiple of the idle TTFT
TTFT_GOAL_RATIO = 2.0


@dataclass(frozen=True)
class LoadPlan:
    checkpoint: str
    cpu_cores: str
    idle_requests: int
    concurrencies: tuple[int, ...]
    min_requests_per_level: int
    open_loop_fractions: tuple[float, ...]
    open_loop_requests: int
    raw_prompts: int


FULL = LoadPlan(
    checkpoint="PYTHIA_410M",
    cpu_cores="server",
    idle_requests=5,
    concurrencies=(1, 2, 4, 8),
    min_requests_per_level=6,
    open_loop_fractions=(0.5, 0.8, 1.0),
    open_loop_requests=12,
    raw_prompts=12,
)
QUICK = LoadPlan(
    checkpoint="TINY",
    cpu_cores="server",
    idle_requests=3,
    concurrencies=(1, 4),
    min_requests_per_level=4,
    open_loop_fractions=(0.5, 0.8),
    open_loop_requests=6,
    raw_prompts=6,
)


class RequestSource:
    """Task requests over distinct cells, in order (cycling only if the cells run out)."""

    def __init__(self, model: str) -> None:
        self.model = model
        self.workload = WORKLOADS["prediction"]
        self.cells = pbmc_cells()
        self.next = 0

    def take(self, n: int) -> list[dict]:
        params = self.workload.params()
        requests = []
        for _ in range(n):
            cell = self.cells[self.next % len(self.cells)]
            self.next += 1
            requests.append(
                task_request(
                    self.model, self.workload.task, params, task_inputs(self.workload, cell)
                )
            )
        return requests


async def task_load(url: str, plan: LoadPlan, source: RequestSource) -> dict:
    client = openai_client(url)

    async def closed(concurrency: int, n: int) -> dict:
        requests = source.take(n)
        records, duration = await closed_loop(client, requests.__getitem__, concurrency, n)
        return {"concurrency": concurrency, **summarise(records, duration)}

    async def opened(rate: float, n: int, fraction: float) -> dict:
        requests = source.take(n)
        records, duration = await open_loop(client, requests.__getitem__, rate, n, seed=n)
        return {
            "fraction_of_peak": fraction,
            "rate": round(rate, 4),
            **summarise(records, duration),
        }

    log("loadtest: warm-up")
    await closed(2, 2)
    log("loadtest: idle")
    idle = await closed(1, plan.idle_requests)
    sweep = []
    for concurrency in plan.concurrencies:
        log(f"loadtest: closed loop, {concurrency} users")
        n = max(plan.min_requests_per_level, 2 * concurrency)
        sweep.append(await closed(concurrency, n))
    peak = max(sweep, key=lambda level: level["requests_per_s"] or 0)
    knee = knee_point(sweep)
    poisson = []
    for fraction in plan.open_loop_fractions:
        rate = fraction * peak["requests_per_s"]
        log(f"loadtest: open loop at {rate:.3f} req/s ({fraction:.0%} of peak)")
        poisson.append(await opened(rate, plan.open_loop_requests, fraction))
    return {
        "idle": idle,
        "closed_loop": sweep,
        "open_loop": poisson,
        "peak": {"concurrency": peak["concurrency"], "requests_per_s": peak["requests_per_s"]},
        "knee": knee,
        "ttft_goal": ttft_goal(idle, poisson),
    }


def knee_point(sweep: list[dict]) -> dict | None:
    """The closed-loop level with the highest throughput / median E2E latency."""
    scored = [
        (level["requests_per_s"] / (level["e2e_ms"]["p50"] / 1000), level)
        for level in sweep
        if level["requests_per_s"] and level["e2e_ms"]
    ]
    if not scored:
        return None
    power, level = max(scored, key=lambda pair: pair[0])
    return {
        "concurrency": level["concurrency"],
        "requests_per_s": level["requests_per_s"],
        "e2e_p50_ms": level["e2e_ms"]["p50"],
        "power": round(power, 4),
        "rule": "closed-loop level maximising throughput / p50 E2E latency",
    }


def ttft_goal(idle: dict, poisson: list[dict]) -> dict:
    loaded = next((p for p in poisson if p["fraction_of_peak"] == LOADED_FRACTION), None)
    idle_ttft = (idle.get("ttft_ms") or {}).get("p50")
    loaded_p99 = ((loaded or {}).get("ttft_ms") or {}).get("p99")
    measured = ratio(loaded_p99, idle_ttft)
    return {
        "idle_ttft_p50_ms": idle_ttft,
        "loaded_fraction_of_peak": LOADED_FRACTION,
        "loaded_ttft_p99_ms": loaded_p99,
        "ratio": measured,
        "goal_at_most": TTFT_GOAL_RATIO,
        "met": measured is not None and measured <= TTFT_GOAL_RATIO,
    }


def vllm_bench(url: str, checkpoint: Checkpoint, label: str, input_len: int, args: list[str]):
    """One ``vllm bench serve`` run of raw completions; its saved result, summarised.

    Each run draws its own random prompts (a seed per label): a run repeating an earlier
    run's prompts would be answered from the prefix cache."""
    out_dir = WORK_DIR / "vllm-bench"
    out_dir.mkdir(parents=True, exist_ok=True)
    filename = f"{label}.json"
    command = [
        sys.executable,
        "-m",
        "benchmarks.vllm_bench_serve",
        "--backend",
        "openai",
        "--base-url",
        url,
        "--endpoint",
        "/v1/completions",
        "--model",
        served_model(checkpoint.path),
        "--tokenizer",
        str(checkpoint.path),
        "--dataset-name",
        "random",
        "--random-input-len",
        str(input_len),
        "--random-output-len",
        str(WORKLOADS["prediction"].output_tokens),
        "--ignore-eos",
        "--seed",
        str(zlib.crc32(label.encode())),
        "--percentile-metrics",
        "ttft,tpot,itl,e2el",
        "--metric-percentiles",
        "50,99",
        "--save-result",
        "--result-dir",
        str(out_dir),
        "--result-filename",
        filename,
        "--disable-tqdm",
        *args,
    ]
    log(f"loadtest: vllm bench serve ({label})")
    log_path = WORK_DIR / "logs" / f"loadtest-vllm-bench-{label}.log"
    with open(log_path, "w") as out:
        done = subprocess.run(
            command, cwd=REPO_ROOT, stdout=out, stderr=subprocess.STDOUT, timeout=1800, check=False
        )
    shown = " ".join(str(c).replace(str(REPO_ROOT) + "/", "") for c in command)
    result_path = out_dir / filename
    if done.returncode != 0 or not result_path.is_file():
        return {"command": shown, "error": log_path.read_text()[-2000:]}
    saved = json.loads(result_path.read_text())
    keep = ("completed", "failed", "duration", "request_throughput", "output_throughput")
    summary = {k: saved.get(k) for k in keep}
    for metric in ("ttft", "tpot", "itl", "e2el"):
        summary[f"{metric}_ms"] = {
            "mean": _round(saved.get(f"mean_{metric}_ms")),
            "p50": _round(saved.get(f"median_{metric}_ms", saved.get(f"p50_{metric}_ms"))),
            "p99": _round(saved.get(f"p99_{metric}_ms")),
        }
    summary["errors"] = [e for e in saved.get("errors", []) if e][:5]
    return {"command": shown, **summary}


def _round(value: float | None) -> float | None:
    return None if value is None else round(value, 1)


def run(options: SuiteOptions) -> dict:
    plan = QUICK if options.quick else FULL
    record = start_record("loadtest", options)
    record["plan"] = plan.__dict__
    checkpoint = random_checkpoint_or_skip(record, options, plan.checkpoint)
    if checkpoint is None:
        return record
    source = RequestSource(served_model(checkpoint.path))
    name = f"loadtest-{checkpoint.name}"
    try:
        with GatewayProcess(checkpoint.path, plan.cpu_cores, name) as gateway:
            record["gateway"] = gateway.describe()
            tasks = asyncio.run(task_load(gateway.url, plan, source))
            record["task_requests"] = tasks
            input_len = round(tasks["idle"]["mean_prompt_tokens"] or 700)
            rate = LOADED_FRACTION * tasks["peak"]["requests_per_s"]
            record["raw_completions"] = {
                "poisson_80pct_of_peak": vllm_bench(
                    gateway.url,
                    checkpoint,
                    "poisson",
                    input_len,
                    ["--num-prompts", str(plan.raw_prompts), "--request-rate", f"{rate:.4f}"],
                ),
                "burst_at_knee_concurrency": vllm_bench(
                    gateway.url,
                    checkpoint,
                    "burst",
                    input_len,
                    [
                        "--num-prompts",
                        str(plan.raw_prompts),
                        "--max-concurrency",
                        str(tasks["knee"]["concurrency"] if tasks["knee"] else 4),
                    ],
                ),
            }
        start = time.perf_counter()
        with GatewayProcess(checkpoint.path, plan.cpu_cores, f"{name}-warm") as gateway:
            warm = gateway.start_s
        log(f"loadtest: warm restart took {time.perf_counter() - start:.0f} s")
        record["starts"] = {"cold": record["gateway"]["start_s"], "warm": warm}
    except GatewayFailed as exc:
        record["error"] = str(exc)[-2000:]
    finish_record(record, options)
    return record
