"""The real stack on loopback: vLLM CPU engine, the real stages, uvicorn, openai client."""

from __future__ import annotations

import asyncio
import contextlib
import socket

import pytest


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@contextlib.asynccontextmanager
async def serve_on_loopback(app):
    """Run ``app`` with uvicorn on a free 127.0.0.1 port in this event loop; yield its URL."""
    import uvicorn

    port = free_port()
    server = uvicorn.Server(
        uvicorn.Config(app, host="127.0.0.1", port=port, log_level="warning", lifespan="on")
    )
    task = asyncio.create_task(server.serve())
    while not server.started:
        await asyncio.sleep(0.05)
    try:
        yield f"http://127.0.0.1:{port}"
    finally:
        server.should_exit = True
        await task


@pytest.fixture(scope="session")
async def live_gateway(engine, tiny_checkpoint):
    """Base URL of a uvicorn server on 127.0.0.1 running the gateway over the real engine.

    It runs in the test session's event loop, beside the engine's own loop tasks.
    """
    from serving.core.pipeline import LocalPipeline
    from serving.core.stages import BuildStage, DecodeStage
    from serving.core.tasks import default_registry
    from serving.gateway.app import create_app
    from serving.ray_serve.config import GatewayConfig

    stages = LocalPipeline(
        BuildStage.from_model(tiny_checkpoint), engine, DecodeStage.from_model(tiny_checkpoint)
    )
    app = create_app(GatewayConfig(drain_timeout_s=2), stages, default_registry())
    async with serve_on_loopback(app) as url:
        yield url


@pytest.fixture
def openai_client(live_gateway):
    import openai

    return openai.AsyncOpenAI(base_url=f"{live_gateway}/v1", api_key="unused", max_retries=0)
