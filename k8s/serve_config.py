"""KubeRay's ``serveConfigV2`` for each overlay in ``k8s/``, generated from `AppConfig`.

Deploy tooling, not part of the served package: ``python -m k8s.serve_config --overlay gpu
[--write]`` prints (or writes into the overlay) what the cluster will run.

Each overlay's application is one `AppConfig` file, ``configs/k8s-<overlay>.yaml``, the same
schema that ``c2s serve --config`` and ``serve run`` read. This module validates it, places
the deployments on the RayService's worker groups through Ray custom resources, and writes
the result into the overlay as a kustomize patch, ``k8s/overlays/<overlay>/serve-config.patch.yaml``.
A test keeps the checked-in patches equal to what this module generates.

Placement: every Ray pod of an engine worker group advertises `ENGINE_NODE_RESOURCE`, every
pod of the CPU group `CPU_NODE_RESOURCE`, and each deployment asks for a sliver of one of
them. The head advertises neither, so it runs only Ray's and Serve's control plane.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any, Literal, get_args

import typer
import yaml

from serving.ray_serve.config import AppConfig, ReplicaConfig

Overlay = Literal["gpu", "cpu-dev"]
OVERLAYS: tuple[Overlay, ...] = get_args(Overlay)

REPO_ROOT = Path(__file__).resolve().parent.parent

#: Ray resource advertised by the pods of the engine worker group (``k8s/base/rayservice.yaml``)
ENGINE_NODE_RESOURCE = "c2s_engine_node"
#: Ray resource advertised by the pods of the CPU worker group
CPU_NODE_RESOURCE = "c2s_cpu_node"
#: What one replica asks of its node's resource. The groups advertise 1000, so the resource
#: only says *where* a replica may run; CPUs and GPUs still say how many fit.
NODE_RESOURCE_SLIVER = 0.001

APP_NAME = "c2s"
IMPORT_PATH = "serving.ray_serve.deployments:build_app"
SERVE_PORT = 8000
#: Longer than the idle timeout of the proxies in front (ingress-nginx keeps upstream
#: connections for 60 s): a proxy must never reuse a connection that Serve just closed.
KEEP_ALIVE_TIMEOUT_S = 90


class OverlayConfigError(ValueError):
    """An overlay's `AppConfig` file cannot be deployed as it is."""


def overlay_config_path(overlay: Overlay) -> Path:
    return REPO_ROOT / "configs" / f"k8s-{overlay}.yaml"


def overlay_patch_path(overlay: Overlay) -> Path:
    return REPO_ROOT / "k8s" / "overlays" / overlay / "serve-config.patch.yaml"


#: Where each deployment runs: its `ReplicaConfig` field in `AppConfig`, and the resource of
#: the worker group that hosts it. The Embedder is a second vLLM engine (pooling), so it
#: needs the engine group's hardware.
PLACEMENT = {
    "engine_stage": ENGINE_NODE_RESOURCE,
    "embedder_stage": ENGINE_NODE_RESOURCE,
    "prompt_builder": CPU_NODE_RESOURCE,
    "decoder": CPU_NODE_RESOURCE,
    "gateway_stage": CPU_NODE_RESOURCE,
}


def deployed_stages(config: AppConfig) -> tuple[str, ...]:
    """The `ReplicaConfig` fields of the deployments ``config`` runs (the Embedder only when
    it has an engine, the Gateway only when it is the ingress: with ``ingress: engine`` the
    Engine replicas answer HTTP).

    Raises
    ------
    OverlayConfigError
        If `AppConfig` has a deployment that `PLACEMENT` does not place, so that a new
        deployment can never land on whatever node has room.
    """
    fields = [n for n, f in AppConfig.model_fields.items() if f.annotation is ReplicaConfig]
    unplaced = sorted(set(fields) - set(PLACEMENT))
    if unplaced:
        raise OverlayConfigError(f"k8s.serve_config.PLACEMENT does not place {unplaced}")
    skipped = {"embedder_stage"} if config.embedder is None else set()
    if config.ingress == "engine":
        skipped.add("gateway_stage")
    return tuple(n for n in fields if n not in skipped)


def load_overlay_app_config(overlay: Overlay) -> AppConfig:
    """The overlay's `AppConfig`, validated (unknown keys are errors).

    Raises
    ------
    OverlayConfigError
        If the file sets an API key (the RayService is plain text; the key comes from the
        ``c2s-api-key`` Secret), or leaves a deployment without its autoscaling settings.
    """
    path = overlay_config_path(overlay)
    config = AppConfig.model_validate(yaml.safe_load(path.read_text()))
    if config.gateway.api_key is not None:
        raise OverlayConfigError(
            f"{path} sets gateway.api_key: serveConfigV2 is plain text in the RayService; "
            "the key comes from the c2s-api-key Secret (C2S_API_KEY)."
        )
    unscaled = [
        name
        for name in deployed_stages(config)
        if name not in config.model_fields_set or getattr(config, name).autoscaling is None
    ]
    if unscaled:
        raise OverlayConfigError(
            f"{path} must set the autoscaling of every deployment; it does not for: "
            + ", ".join(unscaled)
        )
    return config


def _placed(stage: ReplicaConfig, resource: str) -> ReplicaConfig:
    return stage.model_copy(
        update={"resources": {**stage.resources, resource: NODE_RESOURCE_SLIVER}}
    )


def place_on_worker_groups(config: AppConfig) -> AppConfig:
    """``config`` with each deployment pinned to its worker group (`PLACEMENT`): Engine
    (and Embedder) replicas to the engine group, the CPU stages to the CPU group."""
    return config.model_copy(
        update={
            name: _placed(getattr(config, name), PLACEMENT[name])
            for name in deployed_stages(config)
        }
    )


def serve_config_v2(config: AppConfig) -> dict[str, Any]:
    """The Ray Serve config (``ServeDeploySchema``) that runs ``config`` on the cluster.

    ``args`` hold what the overlay's file sets, plus the placement, so they read as the
    overlay's choices; ``build_app`` validates them back into the same `AppConfig`.

    Raises
    ------
    OverlayConfigError
        If the args would not validate back into the same `AppConfig` (a deployment left
        to `AppConfig`'s defaults would lose them once placed).
    """
    placed = place_on_worker_groups(config)
    args = placed.model_dump(mode="json", exclude_unset=True)
    if AppConfig.model_validate(args) != placed:
        raise OverlayConfigError(
            "the generated args do not validate back into the same AppConfig; set every "
            f"deployment ({', '.join(deployed_stages(config))}) explicitly in the overlay's file"
        )
    return {
        # A proxy on every pod: KubeRay's serve Service reaches whichever pods are ready.
        "proxy_location": "EveryNode",
        "http_options": {
            "host": "0.0.0.0",
            "port": SERVE_PORT,
            "keep_alive_timeout_s": KEEP_ALIVE_TIMEOUT_S,
        },
        "applications": [
            {
                "name": APP_NAME,
                "route_prefix": "/",
                "import_path": IMPORT_PATH,
                "args": args,
            }
        ],
    }


def render_serve_config_v2(config: AppConfig) -> str:
    return yaml.safe_dump(serve_config_v2(config), sort_keys=False, width=100)


class _LiteralBlock(str):
    """A string that YAML writes as a ``|`` block, so the patch stays readable."""


def _literal_block(dumper: yaml.SafeDumper, text: _LiteralBlock) -> yaml.ScalarNode:
    return dumper.represent_scalar("tag:yaml.org,2002:str", str(text), style="|")


class _PatchDumper(yaml.SafeDumper):
    pass


_PatchDumper.add_representer(_LiteralBlock, _literal_block)


def render_overlay_patch(overlay: Overlay) -> str:
    """The overlay's ``serve-config.patch.yaml``: a JSON 6902 patch that sets the
    RayService's ``serveConfigV2``."""
    serve_config = render_serve_config_v2(load_overlay_app_config(overlay))
    header = (
        f"# GENERATED by `python -m k8s.serve_config --overlay {overlay} --write` from "
        f"configs/k8s-{overlay}.yaml.\n"
        "# Do not edit: change that file and regenerate (tests/k8s checks the two agree).\n"
    )
    ops = [{"op": "add", "path": "/spec/serveConfigV2", "value": _LiteralBlock(serve_config)}]
    return header + yaml.dump(ops, Dumper=_PatchDumper, sort_keys=False, width=100)


def main(
    overlay: Overlay = typer.Option(..., help="The overlay under k8s/overlays/"),
    write: bool = typer.Option(
        False, "--write", help="Write k8s/overlays/<overlay>/serve-config.patch.yaml instead"
    ),
) -> None:
    """Print the serveConfigV2 YAML generated from configs/k8s-<overlay>.yaml."""
    if not write:
        typer.echo(render_serve_config_v2(load_overlay_app_config(overlay)), nl=False)
        return
    path = overlay_patch_path(overlay)
    path.write_text(render_overlay_patch(overlay))
    typer.echo(f"wrote {path}", err=True)


if __name__ == "__main__":
    typer.run(main)
