"""Fixtures of the reliability suite: the gateway over a fake engine (ASGI, fast) and the
real stack on loopback, with and without a checkpoint gene list."""

from __future__ import annotations

import asyncio
import contextlib
import json
import shutil
import subprocess
import sys
import time
from collections.abc import AsyncIterator, Iterator
from pathlib import Path

import httpx
import pytest

from serving.core.pipeline import LocalPipeline
from serving.core.prompt_builder import GENES_FILE, reference_genes
from serving.core.stages import BuildStage, DecodeStage
from serving.core.tasks import default_registry
from serving.gateway.app import create_app
from serving.ray_serve.config import GatewayConfig
from serving.testing.fake_engine import FakeEngine
from serving.testing.process_group import stop_process_group
from serving.testing.random_checkpoint import TOKENIZER_FILES
from tests.integration.conftest import free_port, live_gateway  # noqa: F401  (the real stack)

REPO_ROOT = Path(__file__).resolve().parents[2]


@pytest.fixture(scope="session")
def build_stage(tiny_checkpoint) -> BuildStage:
    return BuildStage.from_model(tiny_checkpoint)


@pytest.fixture(scope="session")
def decode_stage(tiny_checkpoint) -> DecodeStage:
    return DecodeStage.from_model(tiny_checkpoint)


@pytest.fixture(scope="session")
def vocabulary_checkpoint(tiny_checkpoint, tmp_path_factory) -> Path:
    """The tiny checkpoint's config and tokenizer plus a gene list (pbmc68k's 765 genes):
    what a prompt builder needs to know which genes the model reads."""
    out = tmp_path_factory.mktemp("vocabulary-checkpoint")
    for name in ("config.json", *TOKENIZER_FILES):
        shutil.copy(tiny_checkpoint / name, out / name)
    (out / GENES_FILE).write_text("\n".join(reference_genes()) + "\n")
    return out


def fake_stages(build_stage: BuildStage, decode_stage: DecodeStage, **engine_options):
    encoder = build_stage.builder.encoder
    engine = FakeEngine(lambda ids: " B cell.", encoder.encode, encoder.decode, **engine_options)
    return LocalPipeline(build_stage, engine, decode_stage), engine


@pytest.fixture
def fake_gateway(build_stage, decode_stage):
    """``fake_gateway(**gateway_options)`` -> (ASGI app, fake engine)."""

    def make(step_delay_s: float = 0.0, **options):
        stages, engine = fake_stages(build_stage, decode_stage, step_delay_s=step_delay_s)
        return create_app(GatewayConfig(**options), stages, default_registry()), engine

    return make


def asgi_client(app, **kwargs) -> httpx.AsyncClient:
    return httpx.AsyncClient(
        transport=httpx.ASGITransport(app=app), base_url="http://gateway", **kwargs
    )


@contextlib.asynccontextmanager
async def serving_on_loopback(app, log_level: str = "warning") -> AsyncIterator[str]:
    """``app`` under uvicorn on 127.0.0.1 in this event loop; yields its base URL."""
    import uvicorn

    port = free_port()
    server = uvicorn.Server(
        uvicorn.Config(app, host="127.0.0.1", port=port, log_level=log_level, lifespan="on")
    )
    task = asyncio.create_task(server.serve())
    while not server.started:
        await asyncio.sleep(0.02)
    try:
        yield f"http://127.0.0.1:{port}"
    finally:
        server.should_exit = True
        await task


@pytest.fixture(scope="session")
async def vocabulary_gateway(engine, vocabulary_checkpoint, decode_stage):
    """The real engine behind a prompt builder that knows the checkpoint's genes."""
    stages = LocalPipeline(BuildStage.from_model(vocabulary_checkpoint), engine, decode_stage)
    app = create_app(GatewayConfig(drain_timeout_s=2), stages, default_registry())
    async with serving_on_loopback(app) as url:
        yield url


def error_of(response: httpx.Response) -> dict:
    """The OpenAI error envelope of ``response``, checked for shape."""
    body = response.json()
    assert set(body) == {"error"}, body
    error = body["error"]
    assert set(error) == {"message", "type", "param", "code"}, error
    assert error["code"] == response.status_code
    assert isinstance(error["message"], str) and error["message"]
    return error


def server_errors(metrics_text: str) -> float:
    """Requests answered 5xx, from the gateway's Prometheus counters."""
    total = 0.0
    for line in metrics_text.splitlines():
        if line.startswith("c2s_requests_total{") and 'status="5' in line:
            total += float(line.rsplit(" ", 1)[1])
    return total


def dumps(value) -> bytes:
    return json.dumps(value).encode()


@contextlib.contextmanager
def server_process(
    args: list[str], log: Path, *, startup_limit_s: float, env: dict | None = None
) -> Iterator[tuple[str, int]]:
    """``python -m <args> --port P``-style server in its own session, on loopback: waits
    until ``/health`` answers 200, yields (base URL, pid), then stops the whole group."""
    port = free_port()
    command = [sys.executable, "-m", *(str(port) if a == "{port}" else a for a in args)]
    with open(log, "w") as sink:
        proc = subprocess.Popen(
            command,
            cwd=REPO_ROOT,
            stdout=sink,
            stderr=subprocess.STDOUT,
            env=env,
            start_new_session=True,
        )
    url = f"http://127.0.0.1:{port}"
    try:
        deadline = time.monotonic() + startup_limit_s
        while not _healthy(url):
            if proc.poll() is not None or time.monotonic() > deadline:
                pytest.fail(f"{args[0]} did not start:\n{log.read_text()[-4000:]}")
            time.sleep(0.5)
        yield url, proc.pid
    finally:
        stop_process_group(proc)


def _healthy(url: str) -> bool:
    try:
        return httpx.get(f"{url}/health", timeout=3).status_code == 200
    except httpx.HTTPError:
        return False
