"""The served model names come from the checkpoint (or ``--served-model-name``)."""

from __future__ import annotations

import httpx
import pytest

from serving.cli.serve import load_app_config
from serving.core.pipeline import LocalPipeline
from serving.core.tasks import default_registry
from serving.gateway.app import create_app
from serving.ray_serve.config import DEMO_MODEL_DIR, AppConfig
from serving.testing.fake_engine import FakeEngine

HUB_ID = "vandijklab/C2S-Pythia-410m-diverse-single-and-multi-cell-tasks"


@pytest.mark.parametrize(
    ("model", "served", "expected"),
    [
        (None, None, "c2s-demo-pythia"),  # the demo checkpoint's directory
        (HUB_ID, None, HUB_ID),
        (HUB_ID, "c2s-410m", "c2s-410m"),
        (None, "my-demo", "my-demo"),
    ],
)
def test_the_gateway_is_named_after_the_checkpoint(model, served, expected):
    config = load_app_config(None, model, None, served_model_name=served)
    assert config.gateway.model_name == expected


def test_a_directory_checkpoint_is_named_by_its_directory(tmp_path):
    checkpoint = tmp_path / "my-checkpoint"
    checkpoint.mkdir()
    assert AppConfig(engine={"model": str(checkpoint)}).gateway.model_name == "my-checkpoint"


def test_an_explicit_gateway_name_and_the_engine_served_name_win():
    named = AppConfig(engine={"model": HUB_ID}, gateway={"model_name": "g"})
    assert named.gateway.model_name == "g"
    served = AppConfig(engine={"model": HUB_ID, "served_model_name": "s"})
    assert served.gateway.model_name == "s"


async def test_v1_models_lists_the_checkpoint_name_and_its_twelve_tasks(build_stage, decode_stage):
    config = load_app_config(None, str(DEMO_MODEL_DIR), None)
    encoder = build_stage.builder.encoder
    engine = FakeEngine(lambda ids: " B cell.", encoder.encode, encoder.decode)
    app = create_app(
        config.gateway, LocalPipeline(build_stage, engine, decode_stage), default_registry()
    )
    transport = httpx.ASGITransport(app=app)
    async with httpx.AsyncClient(transport=transport, base_url="http://gateway") as client:
        ids = [m["id"] for m in (await client.get("/v1/models")).json()["data"]]
    tasks = [spec.name for spec in default_registry()]
    assert ids == ["c2s-demo-pythia", *(f"c2s-demo-pythia/{task}" for task in tasks)]
    assert len(tasks) == 12
