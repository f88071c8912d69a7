"""Failures below the gateway, fast (fake engine): a lost replica is a 503 to retry, a
hung health probe is a 503 in bounded time, a bug is a 500 in the envelope, and past
capacity the gateway sheds load with Retry-After while admitted latency stays bounded."""

from __future__ import annotations

import asyncio
import time

import pytest
from ray.exceptions import ActorDiedError

from serving.core.tasks import default_registry
from serving.gateway.app import create_app
from serving.ray_serve.config import GatewayConfig
from tests.reliability.conftest import asgi_client, error_of, fake_stages, serving_on_loopback
from tests.reliability.load import latency_buckets, open_loop, server_p99

CELL_REQUEST = {"inputs": [{"cell": "CD3D CD3E IL7R"}], "max_tokens": 4}
TASK_LABELS = ("/v1/tasks/{task}", "cell_type_prediction")


class FailingPipeline:
    """The fake stages with one method replaced by a failure."""

    def __init__(self, stages, **failures) -> None:
        self.stages, self.failures = stages, failures

    def __getattr__(self, name):
        if name in self.failures:
            return self.failures[name]
        return getattr(self.stages, name)


@pytest.fixture
def app_over(build_stage, decode_stage):
    def make(config: GatewayConfig | None = None, step_delay_s: float = 0.0, **failures):
        stages, _ = fake_stages(build_stage, decode_stage, step_delay_s=step_delay_s)
        wrapped = FailingPipeline(stages, **failures)
        return create_app(config or GatewayConfig(), wrapped, default_registry())

    return make


@pytest.mark.parametrize("stage", ["build", "decode"])
async def test_a_lost_stage_replica_is_a_503_to_retry(app_over, stage):
    async def replica_died(*args, **kwargs):
        raise ActorDiedError()

    async with asgi_client(app_over(**{stage: replica_died})) as client:
        response = await client.post("/v1/tasks/cell_type_prediction", json=CELL_REQUEST)
        health = await client.get("/health")
    assert response.status_code == 503
    assert response.headers["retry-after"] == "5"
    assert "Retry" in error_of(response)["message"]
    assert health.status_code == 200  # the engine is fine: only a CPU replica was lost


async def test_a_hung_health_probe_is_a_503_within_its_timeout(app_over):
    async def hangs():
        await asyncio.sleep(3600)

    app = app_over(GatewayConfig(health_timeout_s=0.3), health=hangs)
    async with asgi_client(app) as client:
        started = time.monotonic()
        response = await client.get("/health")
        took = time.monotonic() - started
    assert response.status_code == 503 and took < 1.5
    assert "0.3 s" in error_of(response)["message"]


async def test_a_bug_is_a_500_in_the_envelope_and_the_server_goes_on(app_over):
    async def bug(*args, **kwargs):
        raise KeyError("a bug")

    async with asgi_client(app_over(decode=bug)) as client:
        response = await client.post("/v1/tasks/cell_type_prediction", json=CELL_REQUEST)
        health = await client.get("/health")
    assert response.status_code == 500
    assert error_of(response)["message"] == "Internal error: KeyError"
    assert health.status_code == 200


async def test_past_capacity_requests_are_shed_and_admitted_latency_is_bounded(app_over):
    max_inflight, step_s, tokens = 4, 0.01, 4
    app = app_over(
        GatewayConfig(max_inflight_requests=max_inflight, retry_after_s=2), step_delay_s=step_s
    )

    async def send(client, i):
        return await client.post("/v1/tasks/cell_type_prediction", json=CELL_REQUEST)

    async with serving_on_loopback(app) as url, asgi_client(app) as direct:
        # one request takes about tokens x step_s; capacity is about max_inflight of them
        capacity_per_s = max_inflight / (tokens * step_s)
        before = latency_buckets((await direct.get("/metrics")).text, *TASK_LABELS)
        outcomes = await open_loop(url, send, 3 * capacity_per_s, 2.0)
        after = latency_buckets((await direct.get("/metrics")).text, *TASK_LABELS)
    assert outcomes.statuses.get(429, 0) > 0 and outcomes.ok > 0, outcomes.statuses
    assert set(outcomes.statuses) <= {200, 429}
    assert outcomes.refused_without_retry_after == 0
    # measured by the gateway itself: the load generator's own lag is not the server's
    assert server_p99(before, after) <= 1.0, outcomes.summary()  # vs about 0.05 s unloaded
