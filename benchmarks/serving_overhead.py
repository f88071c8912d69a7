"""Suite ``serving_overhead``: ``c2s serve`` against vLLM's own OpenAI server, same engine.

The demo checkpoint (an engine that answers a cell in milliseconds, as a GPU does) behind:

- (a) ``python -m vllm.entrypoints.openai.api_server`` with our engine's settings
  (`benchmarks.gateway_process.VllmServerProcess`), fed each cell's rendered prompt text;
- (b) ``c2s serve``'s OpenAI routes with task model names: ``/v1/completions`` and
  ``/v1/chat/completions``, streamed and not;
- (c) ``c2s serve``'s batch route ``POST /v1/tasks/cell_type_prediction``;
- (d) the bulk job (``c2s annotate``) in ``ray`` mode against that server, and in
  ``local`` mode (its own engine, the server stopped).

Every path answers the same cells with the task's own greedy sampling, so every path
generates the same tokens (checked: mean prompt and output tokens). Closed loops run at
one concurrency for all; open loops offer the same Poisson load to (a) and (b) (a fraction
of (a)'s closed-loop throughput). CPU seconds of every process of ours are read before and
after each phase (`benchmarks.process_cpu`) and reported per request by role.
"""

from __future__ import annotations

import asyncio
import json
from dataclasses import asdict, dataclass
from pathlib import Path

from benchmarks.checkpoints import WORK_DIR, demo_checkpoint
from benchmarks.gateway_process import GatewayProcess, VllmServerProcess
from benchmarks.load_client import (
    closed_loop,
    complete_request,
    open_loop,
    openai_client,
    streamed_request,
    summarise,
)
from benchmarks.overhead_paths import annotate, batch_route
from benchmarks.process_cpu import CpuMeter, idle_cpu
from benchmarks.stats import ratio
from benchmarks.suite import SuiteOptions, finish_record, log, start_record
from benchmarks.workload import WORKLOADS, pbmc_cells, task_inputs, write_cells_h5ad
from serving.testing.ray_head import RayHead

TASK = "cell_type_prediction"
#: this suite's ports: Ray's range, then the two HTTP servers (helpers share machines)
RAY_PORTS = range(18100, 18180)
GATEWAY_PORT, VLLM_PORT = 18180, 18181
#: where Ray Serve's direct ingress starts the ingress replica's own HTTP server (the
#: first port of its range goes to the first, here only, ingress replica)
DIRECT_INGRESS_PORT = 18182
DIRECT_INGRESS_ENV = {
    "RAY_SERVE_ENABLE_DIRECT_INGRESS": "1",
    "RAY_SERVE_DIRECT_INGRESS_MIN_HTTP_PORT": str(DIRECT_INGRESS_PORT),
}
#: the goals, as ratios to (a) in the same run
GOALS = {
    "openai_throughput": 0.9,
    "ttft_p50": 1.15,
    "ttft_p99": 1.15,
    "cpu_above_engine": 2.0,
    "cpu_above_engine_beyond_idle": 2.0,
    "batch_cells_per_s": 1.2,
    "bulk_ray_vs_local": 0.9,
}


@dataclass(frozen=True)
class OverheadPlan:
    concurrency: int
    requests: int
    open_loop_fraction: float
    open_loop_requests: int
    #: (cells per request, requests in flight) of the batch route
    batches: tuple[tuple[int, int], ...]
    batch_cells: int
    bulk_cells: int
    warmup: int = 16
    #: seconds of an idle server whose CPU by role is its fixed cost
    idle_s: float = 20


FULL = OverheadPlan(16, 480, 0.5, 240, ((256, 2), (32, 8)), 1024, 693)
QUICK = OverheadPlan(8, 48, 0.5, 32, ((32, 2),), 64, 64, warmup=8, idle_s=10)

#: configurations of ``c2s serve`` to compare, step by step (``C2S_OVERHEAD_VARIANT``):
#: (AppConfig fields, environment of the Ray cluster)
SERVER_VARIANTS = {
    "default": ({}, {}),
    # every build and decode on the PromptBuilder/Decoder replicas (the old path)
    "replica_hops": ({"gateway": {"inline_max_items": 0}}, {}),
    # Ray Serve's throughput mode: direct ingress, gRPC between replicas, no extra threads
    "throughput_optimized": ({}, {"RAY_SERVE_THROUGHPUT_OPTIMIZED": "1"}),
    # each Engine replica is the HTTP ingress: no Gateway deployment, no Ray call per request
    "engine_ingress": ({"ingress": "engine"}, {}),
    # and the clients talk to that replica's own HTTP server, not through Serve's proxy
    "engine_direct_ingress": ({"ingress": "engine"}, DIRECT_INGRESS_ENV),
    "direct_ingress": ({}, DIRECT_INGRESS_ENV),
    # engine ingress with Ray Serve's throughput mode, the clients through Serve's proxy
    "engine_throughput_via_proxy": ({"ingress": "engine"}, {"RAY_SERVE_THROUGHPUT_OPTIMIZED": "1"}),
    # and Ray Serve's throughput mode (user code on the replica's main loop, gRPC, GC frozen)
    "engine_throughput_optimized": (
        {"ingress": "engine"},
        {**DIRECT_INGRESS_ENV, "RAY_SERVE_THROUGHPUT_OPTIMIZED": "1"},
    ),
}

#: the OpenAI-route variants of (b): (route, streamed)
VARIANTS = (("completions", True), ("completions", False), ("chat", True), ("chat", False))


def prompts(model_dir: Path, n: int) -> list[dict]:
    """``n`` cells (cycled from pbmc68k_reduced): task inputs, rendered text, prompt ids."""
    from serving.core.prompt_builder import PromptBuilder

    builder = PromptBuilder.from_model(model_dir)
    cells = pbmc_cells()
    out = []
    for i in range(n):
        inputs = task_inputs(WORKLOADS["prediction"], cells[i % len(cells)])
        built = builder.build(TASK, inputs)
        out.append(
            {
                "inputs": inputs,
                "text": built.text,
                "prompt_tokens": len(built.token_ids),
                "max_tokens": built.params.max_tokens,
            }
        )
    return out


def vllm_request(name: str, item: dict) -> dict:
    """(a): the rendered prompt with the task's greedy sampling."""
    return {
        "model": name,
        "prompt": item["text"],
        "max_tokens": item["max_tokens"],
        "temperature": 0,
    }


def c2s_request(base: str, item: dict, route: str) -> dict:
    """(b): the task's model name and inputs; the gateway builds the same prompt."""
    model = f"{base}/{TASK}"
    if route == "chat":
        return {
            "model": model,
            "messages": [{"role": "user", "content": json.dumps(item["inputs"])}],
        }
    return {"model": model, "prompt": "", "extra_body": {"inputs": item["inputs"]}}


def sender(route: str, streamed: bool):
    send = streamed_request if streamed else complete_request
    return lambda client, request: send(client, request, route)


async def measure_loop(
    url, make, plan, owners, send=streamed_request, rate=None, idle=None
) -> dict:
    """One closed loop at the plan's concurrency (or an open loop at ``rate``) with the
    CPU of every process of ours read around it (and beyond the servers' ``idle`` CPU)."""
    async with openai_client(url) as client:
        await closed_loop(client, make, plan.concurrency, plan.warmup, send)
        with CpuMeter(owners) as meter:
            if rate is None:
                n = plan.requests
                records, seconds = await closed_loop(client, make, plan.concurrency, n, send)
            else:
                n = plan.open_loop_requests
                records, seconds = await open_loop(client, make, rate, n, 0, send)
    out = summarise(records, seconds)
    out["cpu_ms_per_request"] = meter.per_request(out["completed"], idle)
    out["concurrency" if rate is None else "offered_rate"] = (
        plan.concurrency if rate is None else rate
    )
    return out


def measure_vllm(items: list[dict], plan: OverheadPlan) -> dict:
    """(a): closed loop (streamed completions), then the open loop at the plan's fraction."""
    from serving.engine import EngineConfig

    config = EngineConfig(model=str(demo_checkpoint()[0].path))
    with VllmServerProcess(config, "overhead-vllm", port=VLLM_PORT) as server:
        name = config.public_name

        def make(i: int) -> dict:
            return vllm_request(name, items[i % len(items)])

        owners = {server.process.pid}
        idle = idle_cpu(owners, plan.idle_s)
        closed = asyncio.run(measure_loop(server.url, make, plan, owners, idle=idle))
        rate = round(plan.open_loop_fraction * closed["requests_per_s"], 3)
        opened = asyncio.run(measure_loop(server.url, make, plan, owners, rate=rate, idle=idle))
        return {
            "server": server.describe(),
            "idle_cpu_ms_per_s": idle,
            "closed_loop": closed,
            "open_loop": opened,
        }


def measure_c2s(items: list[dict], plan: OverheadPlan, rate: float, h5ad: Path) -> dict:
    """(b), (c) and (d, ray mode) on one ``c2s serve`` over our own Ray head."""
    model = demo_checkpoint()[0].path
    config, env = SERVER_VARIANTS[variant()]
    # a throwaway server: no 30 s drain at shutdown
    config = {**config, "gateway": {"drain_timeout_s": 1, **config.get("gateway", {})}}
    log_path = WORK_DIR / "logs" / "overhead-ray.log"
    with RayHead("overhead", RAY_PORTS, 8, log_path, env=env) as head:
        gateway = GatewayProcess(
            model,
            "server",
            "overhead-gateway",
            port=GATEWAY_PORT,
            ray_address=head.address,
            config=config,
        )
        with gateway:
            owners = {head.pid, gateway.process.pid}
            base = model.name
            url = gateway.url
            if env.get("RAY_SERVE_ENABLE_DIRECT_INGRESS") == "1":  # past the proxy
                url = f"http://127.0.0.1:{DIRECT_INGRESS_PORT}"
            out: dict = {
                "server": gateway.describe(),
                "openai": {},
                "batch": [],
                "ray": head.address,
                "load_url": url,
                "idle_cpu_ms_per_s": idle_cpu(owners, plan.idle_s),
            }
            idle = out["idle_cpu_ms_per_s"]
            for route, streamed in VARIANTS:
                key = f"{route}_{'stream' if streamed else 'plain'}"
                log(f"serving_overhead: (b) {key}")

                def make(i: int, route=route) -> dict:
                    return c2s_request(base, items[i % len(items)], route)

                send = sender(route, streamed)
                out["openai"][key] = asyncio.run(
                    measure_loop(url, make, plan, owners, send, idle=idle)
                )
            log("serving_overhead: (b) profile (py-spy) under the same closed loop")
            out["profile"] = asyncio.run(profile_loop(url, base, items, plan, owners))
            log("serving_overhead: (b) open loop")
            make = lambda i: c2s_request(base, items[i % len(items)], "completions")  # noqa: E731
            out["open_loop"] = asyncio.run(
                measure_loop(url, make, plan, owners, rate=rate, idle=idle)
            )
            for size, in_flight in plan.batches:
                log(f"serving_overhead: (c) {size} cells x {in_flight}")
                cells = items[: plan.batch_cells]
                out["batch"].append(asyncio.run(batch_route(url, cells, size, in_flight, owners)))
            log("serving_overhead: (d) bulk job, ray mode")
            out["bulk_ray"] = annotate(h5ad, "bulk-ray", ["--ray-address", head.address], owners)
    return out


async def profile_loop(url: str, base: str, items: list[dict], plan, owners) -> dict:
    """py-spy on every serving process while a closed loop of streamed completions runs
    (timings of this loop are not reported: the sampler takes CPU too)."""
    from benchmarks import overhead_profile

    def make(i: int) -> dict:
        return c2s_request(base, items[i % len(items)], "completions")

    spies = overhead_profile.start(owners, "gateway-load")
    try:
        async with openai_client(url) as client:
            await closed_loop(client, make, plan.concurrency, plan.requests)
    finally:
        profile = overhead_profile.stop(spies, plan.requests)
    return profile


def goals(a: dict, c2s: dict, bulk_local: dict) -> list[dict]:
    """Every goal as measured / (a)'s (or ray / local), with its target and verdict."""
    a_closed, a_open = a["closed_loop"], a["open_loop"]
    b_closed, b_open = c2s["openai"]["completions_stream"], c2s["open_loop"]
    best_batch = max((b.get("cells_per_s") or 0 for b in c2s["batch"]), default=None)

    def entry(key, text, value, at_least):
        target = GOALS[key]
        met = None if value is None else (value >= target if at_least else value <= target)
        sign = ">=" if at_least else "<="
        return {"key": key, "text": text, "target": f"{sign} {target}", "ratio": value, "met": met}

    p = lambda d, q: (d.get("ttft_ms") or {}).get(q)  # noqa: E731
    return [
        entry("openai_throughput", "(b) req/s / (a) req/s, same concurrency",
              ratio(b_closed["requests_per_s"], a_closed["requests_per_s"]), True),
        entry("ttft_p50", "(b) TTFT p50 / (a), same offered load",
              ratio(p(b_open, "p50"), p(a_open, "p50")), False),
        entry("ttft_p99", "(b) TTFT p99 / (a), same offered load",
              ratio(p(b_open, "p99"), p(a_open, "p99")), False),
        entry("cpu_above_engine", "(b) CPU ms/request above the engine / (a)'s",
              ratio(b_closed["cpu_ms_per_request"]["above_engine"],
                    a_closed["cpu_ms_per_request"]["above_engine"]), False),
        entry("cpu_above_engine_beyond_idle",
              "(b) the same, less each server's idle CPU (its fixed cost, spread thinner "
              "by a faster engine) / (a)'s",
              ratio(b_closed["cpu_ms_per_request"].get("above_engine_beyond_idle"),
                    a_closed["cpu_ms_per_request"].get("above_engine_beyond_idle")), False),
        entry("batch_cells_per_s", "(c) best cells/s / (a) req/s (one cell a request)",
              ratio(best_batch, a_closed["requests_per_s"]), True),
        entry("bulk_ray_vs_local", "(d) ray mode cells/s / local mode",
              ratio(c2s["bulk_ray"].get("cells_per_s"), bulk_local.get("cells_per_s")), True),
    ]  # fmt: skip


def variant() -> str:
    import os

    return os.environ.get("C2S_OVERHEAD_VARIANT", "default")


def _phase(record: dict, key: str, measure, *args):
    """``measure(*args)``, or ``None`` with the failure kept under ``record["errors"]``:
    one failed phase must not lose the others' results."""
    try:
        return measure(*args)
    except Exception as exc:  # a benchmark records failures instead of stopping
        record.setdefault("errors", {})[key] = f"{type(exc).__name__}: {str(exc)[-2000:]}"
        log(f"serving_overhead: {key} failed: {str(exc)[:300]}")
        return None


def run(options: SuiteOptions) -> dict:
    plan = QUICK if options.quick else FULL
    record = start_record("serving_overhead", options)
    record["plan"] = asdict(plan)
    record["server_variant"] = {"name": variant(), "config": SERVER_VARIANTS[variant()]}
    checkpoint, reason = demo_checkpoint()
    if checkpoint is None:
        record["skipped"] = reason
        finish_record(record, options)
        return record
    n = max(plan.requests, plan.batch_cells, plan.bulk_cells)
    items = prompts(checkpoint.path, n)
    h5ad = write_cells_h5ad(
        [c.row for c in pbmc_cells()[: plan.bulk_cells]], WORK_DIR / "overhead" / "cells.h5ad"
    )
    record["prompts"] = {
        "task": TASK,
        "cells": n,
        "mean_prompt_tokens": round(sum(i["prompt_tokens"] for i in items) / n, 1),
        "sampling": "the task's own: greedy, max_tokens from the task, stop at EOS",
    }
    log("serving_overhead: (a) vLLM OpenAI server")
    record["a_vllm"] = _phase(record, "a_vllm", measure_vllm, items, plan)
    if record["a_vllm"] is not None:
        rate = record["a_vllm"]["open_loop"]["offered_rate"]
        log("serving_overhead: (b)-(d) c2s serve")
        record["c2s"] = _phase(record, "c2s", measure_c2s, items, plan, rate, h5ad)
    log("serving_overhead: (d) bulk job, local mode")
    local = ["--model", str(checkpoint.path)]
    record["bulk_local"] = _phase(record, "bulk_local", annotate, h5ad, "bulk-local", local, set())
    if record.get("c2s") and record["bulk_local"]:
        record["goals"] = goals(record["a_vllm"], record["c2s"], record["bulk_local"])
    finish_record(record, options)
    return record
