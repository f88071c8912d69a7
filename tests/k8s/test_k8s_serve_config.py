"""The RayService's serveConfigV2 is generated from the app's own AppConfig, is a valid Ray
Serve config, and builds the app with its deployments where the worker groups are."""

from __future__ import annotations

import importlib

import pytest
import yaml
from typer.testing import CliRunner

from k8s.serve_config import (
    CPU_NODE_RESOURCE,
    ENGINE_NODE_RESOURCE,
    OVERLAYS,
    PLACEMENT,
    OverlayConfigError,
    deployed_stages,
    load_overlay_app_config,
    overlay_config_path,
    overlay_patch_path,
    place_on_worker_groups,
    render_overlay_patch,
    render_serve_config_v2,
    serve_config_v2,
)
from serving.ray_serve.config import AppConfig
from serving.ray_serve.deployments import build_app, deployment_options
from tests.k8s.conftest import REPO, app_config_of, one, serve_config_of, worker_groups

#: where each deployment must run
GROUP_OF_STAGE = {
    "engine_stage": "engine",
    "embedder_stage": "engine",
    "prompt_builder": "cpu-stages",
    "decoder": "cpu-stages",
    "gateway_stage": "cpu-stages",
}


@pytest.mark.parametrize("overlay", OVERLAYS)
def test_the_checked_in_serve_config_is_the_generated_one(overlay):
    assert overlay_patch_path(overlay).read_text() == render_overlay_patch(overlay), (
        f"k8s/overlays/{overlay}/serve-config.patch.yaml is stale: "
        f"run `python -m k8s.serve_config --overlay {overlay} --write`"
    )


@pytest.mark.parametrize("overlay", OVERLAYS)
def test_the_rendered_rayservice_carries_the_generated_serve_config(overlay, rendered):
    expected = serve_config_v2(load_overlay_app_config(overlay))
    assert serve_config_of(rendered[overlay]) == expected


def test_the_cli_prints_the_generated_serve_config():
    import typer

    from k8s.serve_config import main

    app = typer.Typer()
    app.command()(main)
    result = CliRunner().invoke(app, ["--overlay", "gpu"])
    assert result.exit_code == 0, result.output
    assert result.stdout == render_serve_config_v2(load_overlay_app_config("gpu"))
    refused = CliRunner().invoke(app, ["--overlay", "tpu"])
    assert refused.exit_code != 0


@pytest.mark.parametrize("overlay", OVERLAYS)
def test_the_serve_config_is_a_ray_serve_deploy_config(overlay, rendered):
    from ray.serve.schema import ServeDeploySchema

    config = ServeDeploySchema.model_validate(serve_config_of(rendered[overlay]))
    (application,) = config.applications
    assert application.route_prefix == "/"
    assert config.http_options.port == 8000


@pytest.mark.parametrize("overlay", OVERLAYS)
def test_its_import_path_resolves_and_its_args_are_the_overlays_app_config(overlay, rendered):
    (application,) = serve_config_of(rendered[overlay])["applications"]
    module, _, attribute = application["import_path"].partition(":")
    assert getattr(importlib.import_module(module), attribute) is build_app
    args = AppConfig.model_validate(application["args"])
    assert args == place_on_worker_groups(load_overlay_app_config(overlay))
    assert args.gateway.api_key is None


def test_overlay_files_are_the_app_config_schema_c2s_serve_reads():
    from serving.cli.serve import load_app_config

    for overlay in OVERLAYS:
        path = overlay_config_path(overlay)
        assert load_app_config(path, None, None) == load_overlay_app_config(overlay)


def test_the_generator_refuses_keys_and_deployments_without_autoscaling(tmp_path, monkeypatch):
    import k8s.serve_config as k8s_config

    data = yaml.safe_load(overlay_config_path("cpu-dev").read_text())
    monkeypatch.setattr(k8s_config, "REPO_ROOT", tmp_path)
    (tmp_path / "configs").mkdir()
    path = tmp_path / "configs" / "k8s-cpu-dev.yaml"
    path.write_text(yaml.safe_dump({**data, "gateway": {"api_key": "plain-text"}}))
    with pytest.raises(OverlayConfigError, match="Secret"):
        load_overlay_app_config("cpu-dev")
    del data["decoder"]
    path.write_text(yaml.safe_dump(data))
    with pytest.raises(OverlayConfigError, match="decoder"):
        load_overlay_app_config("cpu-dev")


@pytest.mark.parametrize("overlay", OVERLAYS)
def test_every_deployment_runs_on_the_worker_group_that_advertises_its_resource(overlay, rendered):
    manifests = rendered[overlay]
    config = app_config_of(manifests)
    groups = worker_groups(manifests)
    head = one(manifests, "RayService")["spec"]["rayClusterConfig"]["headGroupSpec"]
    assert head["rayStartParams"]["num-cpus"] == "0"
    assert "resources" not in head
    for field in deployed_stages(config):
        stage = getattr(config, field)
        assert stage.resources, f"{field} is not placed"
        hosts = {
            name
            for name, group in groups.items()
            if set(stage.resources) <= set(group.get("resources", {}))
        }
        assert hosts == {GROUP_OF_STAGE[field]}, field
        actor = deployment_options(stage, field)["ray_actor_options"]
        assert actor["resources"] == stage.resources
    assert set(config.engine_stage.resources) == {ENGINE_NODE_RESOURCE}
    assert set(config.decoder.resources) == {CPU_NODE_RESOURCE}


def _gpus(group) -> float:
    (container,) = group["template"]["spec"]["containers"]
    return float(container["resources"]["limits"].get("nvidia.com/gpu", 0))


@pytest.mark.parametrize("overlay", OVERLAYS)
def test_the_engine_group_holds_the_engines_and_their_gpus(overlay, rendered):
    manifests = rendered[overlay]
    config = app_config_of(manifests)
    groups = worker_groups(manifests)
    engine_group = groups["engine"]
    assert _gpus(groups["cpu-stages"]) == 0
    if config.engine_num_gpus:
        per_pod = int(_gpus(engine_group) // config.engine_num_gpus)
        assert per_pod >= 1, "an engine pod cannot hold one Engine replica's GPUs"
    else:
        assert _gpus(engine_group) == 0
        per_pod = 1  # a CPU engine takes its pod's cores
    # every engine-group deployment at its max_replicas fits the group at its maxReplicas
    on_engines = [f for f in deployed_stages(config) if GROUP_OF_STAGE[f] == "engine"]
    most = sum(getattr(config, f).autoscaling.max_replicas for f in on_engines)
    assert most <= engine_group["maxReplicas"] * per_pod


def test_an_embedder_is_placed_with_the_engines_and_must_autoscale(tmp_path, monkeypatch):
    import k8s.serve_config as k8s_config

    data = yaml.safe_load(overlay_config_path("cpu-dev").read_text())
    monkeypatch.setattr(k8s_config, "REPO_ROOT", tmp_path)
    (tmp_path / "configs").mkdir()
    path = tmp_path / "configs" / "k8s-cpu-dev.yaml"
    data["embedder"] = dict(data["engine"])
    path.write_text(yaml.safe_dump(data))
    with pytest.raises(OverlayConfigError, match="embedder_stage"):
        load_overlay_app_config("cpu-dev")
    data["embedder_stage"] = data["engine_stage"]
    path.write_text(yaml.safe_dump(data))
    config = load_overlay_app_config("cpu-dev")
    assert "embedder_stage" in deployed_stages(config)
    (application,) = serve_config_v2(config)["applications"]
    args = AppConfig.model_validate(application["args"])
    assert set(args.embedder_stage.resources) == {ENGINE_NODE_RESOURCE}


def test_an_engine_ingress_runs_no_gateway_and_needs_no_gateway_stage(tmp_path, monkeypatch):
    from ray.serve.schema import ServeDeploySchema

    import k8s.serve_config as k8s_config

    data = yaml.safe_load(overlay_config_path("cpu-dev").read_text())
    monkeypatch.setattr(k8s_config, "REPO_ROOT", tmp_path)
    (tmp_path / "configs").mkdir()
    path = tmp_path / "configs" / "k8s-cpu-dev.yaml"
    path.write_text(yaml.safe_dump({**data, "ingress": "engine"}))
    with pytest.raises(ValueError, match="gateway_stage sizes the Gateway deployment"):
        load_overlay_app_config("cpu-dev")
    del data["gateway_stage"]
    path.write_text(yaml.safe_dump({**data, "ingress": "engine"}))
    config = load_overlay_app_config("cpu-dev")
    assert deployed_stages(config) == ("engine_stage", "prompt_builder", "decoder")
    serve_config = serve_config_v2(config)
    ServeDeploySchema.model_validate(serve_config)
    (application,) = serve_config["applications"]
    args = AppConfig.model_validate(application["args"])
    assert args.ingress == "engine"
    assert set(args.engine_stage.resources) == {ENGINE_NODE_RESOURCE}
    assert "gateway_stage" not in application["args"]


def test_every_deployment_of_the_app_config_has_a_placement(monkeypatch):
    import k8s.serve_config as k8s_config

    monkeypatch.setattr(k8s_config, "PLACEMENT", {**PLACEMENT})
    del k8s_config.PLACEMENT["decoder"]
    with pytest.raises(OverlayConfigError, match="decoder"):
        deployed_stages(load_overlay_app_config("gpu"))


def test_the_gpu_overlay_serves_the_real_checkpoint_and_cpu_dev_the_demo(rendered):
    gpu = app_config_of(rendered["gpu"])
    assert gpu.engine.model == "vandijklab/C2S-Pythia-410m-diverse-single-and-multi-cell-tasks"
    assert gpu.engine.rope_scaling is None and gpu.engine.max_model_len is None
    assert gpu.engine_num_gpus == 1
    dev = app_config_of(rendered["cpu-dev"])
    assert dev.engine.model == "/app/models/c2s-demo-pythia"
    assert (REPO / "Dockerfile").read_text().count("models/c2s-demo-pythia") >= 1


def test_build_app_takes_the_api_key_from_the_secrets_environment(monkeypatch):
    from serving.ray_serve.deployments import with_settings_api_key

    config = load_overlay_app_config("cpu-dev")
    monkeypatch.delenv("C2S_API_KEY", raising=False)
    assert with_settings_api_key(config).gateway.api_key is None
    monkeypatch.setenv("C2S_API_KEY", "from-the-secret")
    keyed = with_settings_api_key(config)
    assert keyed.gateway.api_key.get_secret_value() == "from-the-secret"
    assert keyed.model_copy(update={"gateway": config.gateway}) == config
    explicit = AppConfig.model_validate(
        {"engine": {"model": "m"}, "gateway": {"api_key": "from-the-config"}}
    )
    assert with_settings_api_key(explicit).gateway.api_key.get_secret_value() == "from-the-config"
