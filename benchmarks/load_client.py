"""An asyncio load client on the official ``openai`` SDK: streamed task requests.

Each request is a streamed completion; the client records time to first token (TTFT),
the gaps between streamed tokens (ITL), time per output token after the first (TPOT),
end-to-end latency (E2E), token counts and the HTTP status of failures. Arrivals are
open-loop (Poisson at a rate, whatever the server's pace) or closed-loop (a fixed number
of users, each sending its next request when the last one is answered).
"""

from __future__ import annotations

import asyncio
import random
import time
from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass, field

from benchmarks.stats import summary


@dataclass
class RequestRecord:
    """What one request measured (seconds)."""

    sent_at: float
    ttft: float | None = None
    e2e: float | None = None
    itl: list[float] = field(default_factory=list)
    prompt_tokens: int | None = None
    output_tokens: int | None = None
    status: str = "ok"

    @property
    def tpot(self) -> float | None:
        if self.ttft is None or self.e2e is None or not self.output_tokens:
            return None
        if self.output_tokens < 2:
            return None
        return (self.e2e - self.ttft) / (self.output_tokens - 1)


def openai_client(base_url: str, timeout_s: float = 600):
    import openai

    return openai.AsyncOpenAI(
        base_url=f"{base_url}/v1", api_key="unused", max_retries=0, timeout=timeout_s
    )


def _endpoint(client, route: str):
    return client.chat.completions if route == "chat" else client.completions


def _delta_text(choice) -> str | None:
    return choice.delta.content if hasattr(choice, "delta") else choice.text


async def streamed_request(client, request: dict, route: str = "completions") -> RequestRecord:
    """Send one streamed completion, or chat completion with ``route="chat"``
    (``request`` holds ``create``'s keyword arguments)."""
    import openai

    record = RequestRecord(sent_at=time.perf_counter())
    last = None
    try:
        stream = await _endpoint(client, route).create(
            **request, stream=True, stream_options={"include_usage": True}
        )
        async for chunk in stream:
            now = time.perf_counter()
            if chunk.choices and _delta_text(chunk.choices[0]):
                if record.ttft is None:
                    record.ttft = now - record.sent_at
                else:
                    record.itl.append(now - last)
                last = now
            if chunk.usage is not None:
                record.prompt_tokens = chunk.usage.prompt_tokens
                record.output_tokens = chunk.usage.completion_tokens
        record.e2e = time.perf_counter() - record.sent_at
    except openai.APIStatusError as exc:
        record.status = str(exc.status_code)
    except openai.APIConnectionError as exc:
        record.status = f"connection: {type(exc).__name__}"
    except Exception as exc:  # a benchmark records failures instead of stopping
        record.status = f"error: {type(exc).__name__}"
    return record


async def complete_request(client, request: dict, route: str = "completions") -> RequestRecord:
    """One non-streamed completion (or chat completion): E2E and token counts only."""
    import openai

    record = RequestRecord(sent_at=time.perf_counter())
    try:
        response = await _endpoint(client, route).create(**request)
        record.e2e = time.perf_counter() - record.sent_at
        record.prompt_tokens = response.usage.prompt_tokens
        record.output_tokens = response.usage.completion_tokens
    except openai.APIStatusError as exc:
        record.status = str(exc.status_code)
    except openai.APIConnectionError as exc:
        record.status = f"connection: {type(exc).__name__}"
    return record


async def closed_loop(
    client,
    make_request: Callable[[int], dict],
    concurrency: int,
    n_requests: int,
    send: Callable = streamed_request,
) -> tuple[list[RequestRecord], float]:
    """``concurrency`` users share ``n_requests``; returns the records and the duration.
    ``send(client, request)`` sends one (a streamed completion by default)."""
    counter = iter(range(n_requests))
    records: list[RequestRecord] = []

    async def user() -> None:
        for i in counter:
            records.append(await send(client, make_request(i)))

    start = time.perf_counter()
    await asyncio.gather(*(user() for _ in range(concurrency)))
    return records, time.perf_counter() - start


async def open_loop(
    client,
    make_request: Callable[[int], dict],
    rate: float,
    n_requests: int,
    seed: int = 0,
    send: Callable = streamed_request,
) -> tuple[list[RequestRecord], float]:
    """Poisson arrivals at ``rate`` per second, whatever the answers' pace."""
    rng = random.Random(seed)
    tasks = []
    start = time.perf_counter()
    for i in range(n_requests):
        tasks.append(asyncio.create_task(send(client, make_request(i))))
        if i < n_requests - 1:
            await asyncio.sleep(rng.expovariate(rate))
    records = list(await asyncio.gather(*tasks))
    return records, time.perf_counter() - start


def summarise(records: list[RequestRecord], duration_s: float) -> dict:
    """Latency summaries (ms), throughput and error counts by status."""
    ok = [r for r in records if r.status == "ok"]
    output_tokens = sum(r.output_tokens or 0 for r in ok)
    return {
        "requests": len(records),
        "completed": len(ok),
        "errors_by_status": dict(Counter(r.status for r in records if r.status != "ok")),
        "duration_s": round(duration_s, 3),
        "requests_per_s": round(len(ok) / duration_s, 4) if duration_s else None,
        "output_tokens_per_s": round(output_tokens / duration_s, 2) if duration_s else None,
        "mean_prompt_tokens": round(sum(r.prompt_tokens or 0 for r in ok) / len(ok), 1)
        if ok
        else None,
        "mean_output_tokens": round(output_tokens / len(ok), 1) if ok else None,
        "ttft_ms": summary([r.ttft for r in ok], 1000, 1),
        "tpot_ms": summary([r.tpot for r in ok], 1000, 1),
        "itl_ms": summary([gap for r in ok for gap in r.itl], 1000, 1),
        "e2e_ms": summary([r.e2e for r in ok], 1000, 1),
    }
