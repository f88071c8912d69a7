"""Fixtures of the atlas features (label sets, embeddings): the real stages over Pythia's
tokenizer, a fake engine and a fake embedder."""

from __future__ import annotations

import httpx
import pytest

from serving.core.pipeline import LocalPipeline
from serving.core.stages import BuildStage, DecodeStage
from serving.core.tasks import default_registry
from serving.gateway.app import create_app
from serving.ray_serve.config import GatewayConfig
from serving.testing.fake_embedder import FakeEmbedder
from serving.testing.fake_engine import FakeEngine


@pytest.fixture(scope="session")
def fake_stages(pythia_tokenizer_dir) -> LocalPipeline:
    """Real prompt building and decoding; a fake engine that always answers " B cell."
    and gives deterministic logprobs to scoring requests; a fake embedder."""
    build = BuildStage.from_model(pythia_tokenizer_dir)
    encoder = build.builder.encoder
    engine = FakeEngine(lambda ids: " B cell.", encoder.encode, encoder.decode)
    decoder = DecodeStage.from_model(pythia_tokenizer_dir)
    return LocalPipeline(build, engine, decoder, FakeEmbedder())


@pytest.fixture
async def fake_client(fake_stages):
    app = create_app(GatewayConfig(), fake_stages, default_registry())
    transport = httpx.ASGITransport(app=app)
    async with httpx.AsyncClient(transport=transport, base_url="http://gateway") as client:
        yield client


@pytest.fixture(scope="session")
async def tiny_embedder(tiny_checkpoint):
    """A vLLM pooling engine on the tiny random checkpoint."""
    from serving.engine import EngineConfig, start_vllm_embedder

    embedder = await start_vllm_embedder(EngineConfig(model=str(tiny_checkpoint)))
    yield embedder
    embedder.shutdown()


@pytest.fixture(scope="session")
def tiny_stages(engine, tiny_embedder, tiny_checkpoint) -> LocalPipeline:
    """The real stages over the tiny checkpoint's engine and embedder."""
    return LocalPipeline(
        BuildStage.from_model(tiny_checkpoint),
        engine,
        DecodeStage.from_model(tiny_checkpoint),
        tiny_embedder,
    )
