"""Faults in the Ray Serve application (``c2s serve`` on a local cluster, loopback only):
the engine replica killed under load, a prompt-builder replica killed under load."""

from __future__ import annotations

import asyncio
import contextlib
import os
import signal
import time

import httpx
import psutil
import pytest
import yaml

from tests.reliability.conftest import server_process
from tests.reliability.load import Outcomes, save_figures

pytestmark = [pytest.mark.soak, pytest.mark.engine]

STARTUP_LIMIT_S = 420
#: an in-flight request must be answered this soon after its engine replica dies
FAIL_FAST_BOUND_S = 10.0
#: /health must report the failure this soon (its probe times out after 2 s)
HEALTH_REPORT_BOUND_S = 6.0
RECOVERY_LIMIT_S = 300
BUILDER_REPLICAS = 2
CELL = "CD74 HLA-DRA CD79A MS4A1 CD19 CD37 HLA-DPB1 CD52"


def replica_pids(root: int, deployment: str) -> list[int]:
    """Replica processes of a Serve deployment started under ``root`` (our ``c2s serve``:
    never another cluster's). Ray titles them ``ray::ServeReplica:<app>:<deployment>``."""
    title = f"ServeReplica:c2s:{deployment}"
    pids = []
    for proc in psutil.Process(root).children(recursive=True):
        with contextlib.suppress(psutil.NoSuchProcess):
            if title in " ".join(proc.cmdline()):
                pids.append(proc.pid)
    return pids


@pytest.fixture(scope="module")
def ray_app(tiny_checkpoint, tmp_path_factory):
    folder = tmp_path_factory.mktemp("ray-faults")
    config = folder / "app.yaml"
    config.write_text(
        yaml.safe_dump(
            {
                "engine": {"model": str(tiny_checkpoint)},
                # the requests below name the model; else it is the checkpoint's temp dir
                "gateway": {"health_timeout_s": 2, "model_name": "c2s-demo-pythia"},
                "prompt_builder": {"num_replicas": BUILDER_REPLICAS},
            }
        )
    )
    env = {**os.environ, "RAY_USAGE_STATS_ENABLED": "0"}
    env.pop("C2S_API_KEY", None)
    args = ["serving.cli", "serve", "--port", "{port}", "--config", str(config)]
    with server_process(args, folder / "serve.log", startup_limit_s=STARTUP_LIMIT_S, env=env) as (
        url,
        pid,
    ):
        yield url, pid


async def long_completion(client: httpx.AsyncClient, i: int) -> httpx.Response:
    body = {
        "model": "c2s-demo-pythia",
        "prompt": f"{CELL} {i}",
        "max_tokens": 256,
        "ignore_eos": True,
        "temperature": 0,
    }
    return await client.post("/v1/completions", json=body)


async def wait_healthy(client: httpx.AsyncClient, limit_s: float) -> float:
    started = time.monotonic()
    while time.monotonic() - started < limit_s:
        try:
            if (await client.get("/health", timeout=5)).status_code == 200:
                return time.monotonic() - started
        except httpx.HTTPError:
            pass
        await asyncio.sleep(1)
    pytest.fail(f"the app did not recover within {limit_s} s")


async def test_engine_replica_killed_under_load_fails_fast_then_recovers(ray_app):
    url, root = ray_app
    async with httpx.AsyncClient(base_url=url, timeout=120) as client:
        warm = await long_completion(client, -1)
        assert warm.status_code == 200, warm.text
        in_flight = [asyncio.create_task(long_completion(client, i)) for i in range(12)]
        await asyncio.sleep(1.0)  # every request is admitted and generating
        (engine_pid,) = replica_pids(root, "Engine")
        engine_children = psutil.Process(engine_pid).children(recursive=True)
        os.kill(engine_pid, signal.SIGKILL)
        killed_at = time.monotonic()
        health_failed_after = None
        while health_failed_after is None and time.monotonic() - killed_at < 30:
            if (await client.get("/health", timeout=10)).status_code == 503:
                health_failed_after = time.monotonic() - killed_at
            else:
                await asyncio.sleep(0.2)
        answers = await asyncio.wait_for(asyncio.gather(*in_flight), FAIL_FAST_BOUND_S + 30)
        answered_after = time.monotonic() - killed_at
        outcomes = Outcomes()
        for answer in answers:
            outcomes.record(answer.status_code, 0, answer.headers.get("retry-after"))
        recovered_after = await wait_healthy(client, RECOVERY_LIMIT_S) + answered_after
        after = await long_completion(client, 99)
        orphans = [p.pid for p in engine_children if p.is_running()]
    figures = {
        "in_flight": outcomes.summary()["statuses"],
        "in_flight_answered_within_s": round(answered_after, 2),
        "health_503_after_s": health_failed_after and round(health_failed_after, 2),
        "recovered_after_s": round(recovered_after, 1),
        "engine_children_left": len(orphans),
        "fail_fast_bound_s": FAIL_FAST_BOUND_S,
    }
    save_figures("engine_kill", figures)
    assert outcomes.statuses.get(503, 0) >= 1 and set(outcomes.statuses) <= {200, 503}
    assert outcomes.refused_without_retry_after == 0
    assert answered_after < FAIL_FAST_BOUND_S, figures
    assert health_failed_after is not None and health_failed_after < HEALTH_REPORT_BOUND_S
    assert after.status_code == 200, after.text
    assert replica_pids(root, "Engine") and replica_pids(root, "Engine") != [engine_pid]


async def post_retrying(client: httpx.AsyncClient, body: dict, retries: int = 6):
    """A client that honours 503/429 with Retry-After, as the openai SDK does."""
    for attempt in range(retries + 1):
        response = await client.post("/v1/tasks/cell_type_prediction", json=body)
        if response.status_code not in (429, 503) or attempt == retries:
            return response, attempt
        await asyncio.sleep(min(float(response.headers["retry-after"]), 5.0))
    raise AssertionError("unreachable")


async def test_prompt_builder_replica_killed_under_load_loses_no_request(ray_app):
    n_requests, concurrency = 240, 8
    cells = [f"{CELL} GENE{i}" for i in range(n_requests)]
    results: dict[int, tuple[httpx.Response, int]] = {}
    url, root = ray_app
    async with httpx.AsyncClient(base_url=url, timeout=120) as client:
        await wait_healthy(client, RECOVERY_LIMIT_S)
        queue: asyncio.Queue[int] = asyncio.Queue()
        for i in range(n_requests):
            queue.put_nowait(i)

        async def worker() -> None:
            while not queue.empty():
                i = queue.get_nowait()
                body = {"inputs": [{"cell": cells[i]}], "max_tokens": 8, "include_text": True}
                results[i] = await post_retrying(client, body)

        workers = [asyncio.create_task(worker()) for _ in range(concurrency)]
        while len(results) < n_requests // 4:
            await asyncio.sleep(0.05)
        victim = replica_pids(root, "PromptBuilder")[0]
        os.kill(victim, signal.SIGKILL)
        killed_at_done = len(results)
        await asyncio.wait_for(asyncio.gather(*workers), 600)
        # the same cells again, undisturbed: each answer must be the one the cell gets
        reference = {}
        for i in range(0, n_requests, 8):
            body = {"inputs": [{"cell": cells[i]}], "max_tokens": 8, "include_text": True}
            reference[i] = (await client.post("/v1/tasks/cell_type_prediction", json=body)).json()
    statuses = {i: r.status_code for i, (r, _) in results.items()}
    retried = sum(1 for _, attempts in results.values() if attempts)
    figures = {
        "requests": n_requests,
        "answered_200": sum(s == 200 for s in statuses.values()),
        "answered_before_kill": killed_at_done,
        "retried_after_503": retried,
        "builder_replicas": BUILDER_REPLICAS,
    }
    save_figures("prompt_builder_kill", figures)
    assert sorted(results) == list(range(n_requests))  # every request answered once
    assert set(statuses.values()) == {200}, figures  # none lost
    for i, expected in reference.items():
        got = results[i][0].json()["data"][0]
        assert got["prompt_tokens"] == expected["data"][0]["prompt_tokens"]
        assert got["text"] == expected["data"][0]["text"]
