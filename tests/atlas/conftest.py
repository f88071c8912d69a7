"""Fixtures of the atlas features (label sets, embeddings): the real stages over Pythia's
tokenizer, a fake engine and a fake embedder."""

from __future__ import annotations

import httpx
import pytest

from serving.config import GatewayConfig
from serving.gateway.app import create_app
from serving.pipeline import LocalStages
from serving.stages import BuildStage, DecodeStage
from serving.tasks import default_registry
from serving.testing.fake_embedder import FakeEmbedder
from serving.testing.fake_engine import FakeEngine


@pytest.fixture(scope="session")
def fake_stages(pythia_tokenizer_dir) -> LocalStages:
    """Real prompt building and decoding; a fake engine that always answers " B cell."
    and gives deterministic logprobs to scoring requests; a fake embedder."""
    build = BuildStage.from_model(pythia_tokenizer_dir)
    encoder = build.builder.encoder
    engine = FakeEngine(lambda ids: " B cell.", encoder.encode, encoder.decode)
    decoder = DecodeStage.from_model(pythia_tokenizer_dir)
    return LocalStages(build, engine, decoder, FakeEmbedder())


@pytest.fixture
async def fake_client(fake_stages):
    app = create_app(GatewayConfig(), fake_stages, default_registry())
    transport = httpx.ASGITransport(app=app)
    async with httpx.AsyncClient(transport=transport, base_url="http://gateway") as client:
        yield client
