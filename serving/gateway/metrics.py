"""Prometheus metrics of one gateway, in a registry of its own."""

from __future__ import annotations

from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram, generate_latest

LATENCY_BUCKETS = (0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60, 120, 300)


class GatewayMetrics:
    """Requests, latency, tokens and queue depth, labelled by route and task."""

    def __init__(self) -> None:
        self.registry = CollectorRegistry()
        self.requests = Counter(
            "c2s_requests",
            "Requests answered, by route, task and HTTP status.",
            ["route", "task", "status"],
            registry=self.registry,
        )
        self.latency = Histogram(
            "c2s_request_latency_seconds",
            "End-to-end request latency.",
            ["route", "task"],
            buckets=LATENCY_BUCKETS,
            registry=self.registry,
        )
        self.tokens = Counter(
            "c2s_tokens",
            "Tokens processed, by task and kind (prompt or completion).",
            ["task", "kind"],
            registry=self.registry,
        )
        self.items = Counter(
            "c2s_task_items",
            "Task inputs (cells, groups) answered.",
            ["task"],
            registry=self.registry,
        )
        self.inflight = Gauge(
            "c2s_inflight_requests",
            "Requests admitted and not yet answered (the gateway's queue depth).",
            registry=self.registry,
        )
        self.engine_unfinished = Gauge(
            "c2s_engine_unfinished_requests",
            "Requests waiting or running inside the engine.",
            registry=self.registry,
        )

    def observe(self, route: str, task: str, status: int, seconds: float) -> None:
        self.requests.labels(route, task, str(status)).inc()
        self.latency.labels(route, task).observe(seconds)

    def count_tokens(self, task: str, prompt: int, completion: int) -> None:
        self.tokens.labels(task, "prompt").inc(prompt)
        self.tokens.labels(task, "completion").inc(completion)

    def render(self) -> bytes:
        return generate_latest(self.registry)
