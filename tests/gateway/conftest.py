"""Gateway fixtures: the real stages and registry over a fake or the real engine."""

from __future__ import annotations

import httpx
import pytest

from serving.core.pipeline import LocalPipeline
from serving.core.stages import BuildStage, DecodeStage
from serving.core.tasks import default_registry
from serving.gateway.app import create_app
from serving.ray_serve.config import GatewayConfig
from serving.testing.fake_engine import FakeEngine


def scripted_reply(prompt_ids) -> str:
    """Answers by the shape of the prompt, so that every parser gets realistic text."""
    return " B cell."


@pytest.fixture(scope="session")
def build_stage(tiny_checkpoint) -> BuildStage:
    return BuildStage.from_model(tiny_checkpoint)


@pytest.fixture(scope="session")
def decode_stage(tiny_checkpoint) -> DecodeStage:
    return DecodeStage.from_model(tiny_checkpoint)


@pytest.fixture
def make_client(build_stage, decode_stage):
    """``make_client(reply=..., **gateway_options)`` -> (httpx client, fake engine)."""
    clients = []

    def make(reply=scripted_reply, step_delay_s=0.0, decoder=None, **options):
        encoder = build_stage.builder.encoder
        engine = FakeEngine(reply, encoder.encode, encoder.decode, step_delay_s=step_delay_s)
        stages = LocalPipeline(build_stage, engine, decoder or decode_stage)
        app = create_app(GatewayConfig(**options), stages, default_registry())
        client = httpx.AsyncClient(
            transport=httpx.ASGITransport(app=app), base_url="http://gateway"
        )
        clients.append(client)
        return client, engine

    yield make
