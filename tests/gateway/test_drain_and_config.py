"""Graceful drain on shutdown, and the serve config file as the one AppConfig schema."""

from __future__ import annotations

import asyncio
from pathlib import Path

import httpx
import pytest
import uvicorn
import yaml
from pydantic import ValidationError

from serving.core.pipeline import LocalPipeline
from serving.core.tasks import default_registry
from serving.gateway.app import create_app
from serving.ray_serve.config import AppConfig, GatewayConfig
from serving.testing.fake_engine import FakeEngine
from tests.integration.conftest import free_port

REPO = Path(__file__).resolve().parents[2]


async def test_shutdown_lets_in_flight_requests_finish(build_stage, decode_stage):
    encoder = build_stage.builder.encoder
    engine = FakeEngine(
        lambda ids: " a b c d e f g h i j.", encoder.encode, encoder.decode, step_delay_s=0.1
    )
    app = create_app(
        GatewayConfig(drain_timeout_s=5),
        LocalPipeline(build_stage, engine, decode_stage),
        default_registry(),
    )
    port = free_port()
    server = uvicorn.Server(uvicorn.Config(app, host="127.0.0.1", port=port, log_level="warning"))
    serving = asyncio.create_task(server.serve())
    while not server.started:
        await asyncio.sleep(0.02)
    async with httpx.AsyncClient(base_url=f"http://127.0.0.1:{port}", timeout=10) as client:
        pending = asyncio.create_task(
            client.post(
                "/v1/completions",
                json={"model": "c2s-demo-pythia", "prompt": "x", "max_tokens": 64},
            )
        )
        while engine.num_unfinished_requests() == 0:
            await asyncio.sleep(0.01)
        server.should_exit = True
        response = await pending
    await serving
    assert response.status_code == 200
    assert response.json()["choices"][0]["text"] == " a b c d e f g h i j."


def test_the_serve_config_file_is_an_app_config():
    config = yaml.safe_load((REPO / "configs" / "serve-cpu.yaml").read_text())
    (application,) = config["applications"]
    assert application["import_path"] == "serving.ray_serve.deployments:build_app"
    app_config = AppConfig.model_validate(application["args"])
    assert app_config.engine.dtype == "bfloat16"
    assert app_config.engine.max_model_len is None  # the checkpoint's 8192
    assert app_config.gateway.model_name == "c2s-demo-pythia"


def test_unknown_app_config_keys_are_errors():
    with pytest.raises(ValidationError, match="extra_forbidden"):
        AppConfig.model_validate({"engine": {"model": "m"}, "gatway": {}})
    with pytest.raises(ValidationError, match="extra_forbidden"):
        AppConfig.model_validate({"engine": {"model": "m", "rope": 2}})


def test_build_app_validates_args_first(tiny_checkpoint):
    from ray.serve import Application

    from serving.ray_serve.deployments import build_app

    app = build_app({"engine": {"model": str(tiny_checkpoint)}, "decoder": {"num_replicas": 2}})
    assert isinstance(app, Application)
    with pytest.raises(ValidationError):
        build_app({"engine": {"model": str(tiny_checkpoint)}, "decoder": {"num_replicas": 0}})


def _deployments(app) -> tuple[str, list[str]]:
    """The ingress deployment's name, and the names of the deployments bound into it."""
    ingress = app._bound_deployment
    bound = [a._bound_deployment.name for a in ingress.init_args if hasattr(a, "_bound_deployment")]
    return ingress.name, bound


def test_the_ingress_option_picks_which_deployment_answers_http(tiny_checkpoint):
    from serving.ray_serve.deployments import EngineServer, build_app

    engine = {"model": str(tiny_checkpoint)}
    assert _deployments(build_app({"engine": engine})) == (
        "Gateway",
        ["Engine", "PromptBuilder", "Decoder"],
    )
    app = build_app({"engine": engine, "ingress": "engine", "engine_stage": {"num_cpus": 2}})
    assert _deployments(app) == ("Engine", ["PromptBuilder", "Decoder"])
    served = app._bound_deployment
    assert issubclass(served.func_or_class, EngineServer)  # the bulk job's calls stay
    assert served.ray_actor_options["num_cpus"] == 2
    with pytest.raises(ValidationError, match="gateway_stage sizes the Gateway deployment"):
        AppConfig.model_validate({"engine": engine, "ingress": "engine", "gateway_stage": {}})
    with pytest.raises(ValidationError, match="literal_error"):
        AppConfig.model_validate({"engine": engine, "ingress": "proxy"})


def test_c2s_serve_sets_the_ingress_over_its_config_file(tmp_path):
    from serving.cli.serve import load_app_config

    path = tmp_path / "app.yaml"
    path.write_text(yaml.safe_dump({"args": {"engine": {"model": "m"}, "ingress": "engine"}}))
    assert load_app_config(path, None, None).ingress == "engine"
    assert load_app_config(path, None, None, ingress="gateway").ingress == "gateway"
    assert load_app_config(None, "m", None).ingress == "gateway"
