"""Load generation on loopback: closed loops to find the maximum, open loops at a fixed
rate, and the RSS of a process tree. Bounded in count and time by their callers."""

from __future__ import annotations

import asyncio
import contextlib
import json
import math
import os
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from pathlib import Path

import httpx
import psutil

Send = Callable[[httpx.AsyncClient, int], Awaitable[httpx.Response]]
#: below uvicorn's 5 s keep-alive, so the client never reuses a connection the server is
#: closing (a race that shows as ReadError, not as a server fault)
KEEPALIVE_S = 2.0


@dataclass
class Outcomes:
    """What a run of requests got: statuses, latencies and Retry-After headers."""

    started: float = field(default_factory=time.perf_counter)
    seconds: float = 0.0
    statuses: dict[int | str, int] = field(default_factory=dict)
    latencies_ok: list[float] = field(default_factory=list)
    refused_without_retry_after: int = 0

    def record(self, status: int | str, latency: float, retry_after: str | None = None) -> None:
        self.statuses[status] = self.statuses.get(status, 0) + 1
        if status == 200:
            self.latencies_ok.append(latency)
        elif status in (429, 503) and not retry_after:
            self.refused_without_retry_after += 1

    @property
    def total(self) -> int:
        return sum(self.statuses.values())

    @property
    def ok(self) -> int:
        return self.statuses.get(200, 0)

    @property
    def errors(self) -> int:
        return self.total - self.ok

    @property
    def ok_per_s(self) -> float:
        return self.ok / self.seconds if self.seconds else 0.0

    def p(self, q: float) -> float:
        return percentile(self.latencies_ok, q)

    def summary(self) -> dict:
        return {
            "requests": self.total,
            "statuses": {str(k): v for k, v in sorted(self.statuses.items(), key=str)},
            "ok_per_s": round(self.ok_per_s, 2),
            "p50_s": round(self.p(50), 3),
            "p99_s": round(self.p(99), 3),
            "seconds": round(self.seconds, 1),
        }


def percentile(values: list[float], q: float) -> float:
    if not values:
        return math.nan
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, math.ceil(q / 100 * len(ordered)) - 1)]


async def _timed(send: Send, client: httpx.AsyncClient, i: int, outcomes: Outcomes) -> None:
    started = time.perf_counter()
    try:
        response = await send(client, i)
        status, retry_after = response.status_code, response.headers.get("retry-after")
    except httpx.HTTPError as exc:
        status, retry_after = type(exc).__name__, None
    outcomes.record(status, time.perf_counter() - started, retry_after)


async def closed_loop(base_url: str, send: Send, concurrency: int, seconds: float) -> Outcomes:
    """``concurrency`` workers, each sending its next request when the last one returns."""
    outcomes = Outcomes()
    deadline = time.perf_counter() + seconds
    limits = httpx.Limits(max_connections=concurrency, keepalive_expiry=KEEPALIVE_S)
    async with httpx.AsyncClient(base_url=base_url, timeout=120, limits=limits) as client:

        async def worker(w: int) -> None:
            i = w
            while time.perf_counter() < deadline:
                await _timed(send, client, i, outcomes)
                i += concurrency

        await asyncio.gather(*(worker(w) for w in range(concurrency)))
    outcomes.seconds = time.perf_counter() - outcomes.started
    return outcomes


async def open_loop(
    base_url: str,
    send: Send,
    rate: float,
    seconds: float,
    *,
    every_s: float = 0.0,
    tick: Callable[[float], None] | None = None,
    max_outstanding: int | None = None,
) -> Outcomes:
    """Requests at a fixed ``rate`` whatever the answers, for ``seconds``; ``tick(elapsed)``
    runs every ``every_s`` (e.g. to sample RSS). Waits for the stragglers.

    With ``max_outstanding``, a request waits while that many are unanswered, as a bulk
    client with bounded concurrency does: a server slowed by something else on the machine
    then sees less load instead of a growing queue, and the run takes longer.
    """
    outcomes = Outcomes()
    limits = httpx.Limits(max_connections=None, keepalive_expiry=KEEPALIVE_S)
    async with httpx.AsyncClient(base_url=base_url, timeout=120, limits=limits) as client:
        pending: set[asyncio.Task] = set()
        n = int(rate * seconds)
        next_tick = every_s
        for i in range(n):
            due = outcomes.started + i / rate
            await asyncio.sleep(max(0.0, due - time.perf_counter()))
            while max_outstanding is not None and len(pending) >= max_outstanding:
                await asyncio.wait(pending, return_when=asyncio.FIRST_COMPLETED)
            task = asyncio.create_task(_timed(send, client, i, outcomes))
            pending.add(task)
            task.add_done_callback(pending.discard)
            elapsed = time.perf_counter() - outcomes.started
            if tick is not None and every_s and elapsed >= next_tick:
                tick(elapsed)
                next_tick += every_s
        await asyncio.gather(*pending)
    outcomes.seconds = time.perf_counter() - outcomes.started
    return outcomes


def rss_by_process(pid: int) -> dict[str, int]:
    """Resident bytes of a process and each of its descendants, by ``name:pid``."""
    root = psutil.Process(pid)
    sizes = {}
    for proc in [root, *root.children(recursive=True)]:
        with contextlib.suppress(psutil.NoSuchProcess):
            sizes[f"{proc.name()}:{proc.pid}"] = proc.memory_info().rss
    return sizes


def tree_rss(pid: int) -> int:
    """Resident bytes of a process and all its descendants."""
    return sum(rss_by_process(pid).values())


def save_figures(name: str, figures: dict) -> Path:
    """Write a soak test's measured figures as JSON (for RELIABILITY.md) and print them."""
    folder = Path(os.environ.get("C2S_SOAK_RESULTS", "/tmp/c2s-soak-results"))
    folder.mkdir(parents=True, exist_ok=True)
    path = folder / f"{name}.json"
    path.write_text(json.dumps(figures, indent=2))
    print(f"{name}: {json.dumps(figures)}")
    return path


def latency_buckets(metrics_text: str, route: str, task: str) -> dict[float, float]:
    """Cumulative counts of the gateway's latency histogram for one route and task."""
    buckets = {}
    labels = f'route="{route}",task="{task}"'
    for line in metrics_text.splitlines():
        if line.startswith("c2s_request_latency_seconds_bucket{") and labels in line:
            le = line.split('le="', 1)[1].split('"', 1)[0]
            buckets[float(le)] = float(line.rsplit(" ", 1)[1])
    return buckets


def server_p99(before: dict[float, float], after: dict[float, float]) -> float:
    """The p99 between two histogram snapshots, interpolated inside its bucket as
    Prometheus's ``histogram_quantile`` does."""
    counts = {le: after[le] - before.get(le, 0.0) for le in sorted(after)}
    rank = 0.99 * counts[math.inf]
    lower, below = 0.0, 0.0
    for le, cumulative in counts.items():
        if cumulative >= rank:
            if le == math.inf:
                return lower
            return lower + (le - lower) * (rank - below) / max(cumulative - below, 1e-9)
        lower, below = le, cumulative
    return math.nan
