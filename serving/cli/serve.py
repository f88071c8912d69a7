"""``c2s serve``: the online stack on a local or existing Ray cluster."""

from __future__ import annotations

import logging
import os
from pathlib import Path
from typing import Annotated

import typer
import yaml
from rich.console import Console

from serving.cli.logs import route_library_logs
from serving.cli.options import Verbose
from serving.ray_serve.config import DEMO_MODEL_DIR, AppConfig, Ingress
from serving.settings import C2SSettings

console = Console(stderr=True)


def load_app_config(
    config_file: Path | None,
    model: str | None,
    api_key: str | None,
    embeddings: bool = False,
    served_model_name: str | None = None,
    ingress: Ingress | None = None,
) -> AppConfig:
    """`AppConfig` from an optional YAML file (``serve run``'s ``args``), then flags.

    ``embeddings`` adds an embedder on the engine's checkpoint when the file sets none.
    ``served_model_name`` names the models in ``/v1/models`` (else the checkpoint does).
    ``ingress`` overrides the file's `AppConfig.ingress`.
    """
    data = yaml.safe_load(config_file.read_text()) if config_file else {}
    data = dict(data.get("args", data) or {})
    if model:
        data["engine"] = {**data.get("engine", {}), "model": model}
    data.setdefault("engine", {"model": str(DEMO_MODEL_DIR)})
    if served_model_name:
        data["gateway"] = {**data.get("gateway", {}), "model_name": served_model_name}
    if api_key:
        data["gateway"] = {**data.get("gateway", {}), "api_key": api_key}
    if ingress:
        data["ingress"] = ingress
    if embeddings and not data.get("embedder"):
        data["embedder"] = {"model": data["engine"]["model"]}
    return AppConfig.model_validate(data)


def serve(
    model: Annotated[
        str | None, typer.Option(help="Checkpoint directory or Hugging Face id [default: demo]")
    ] = None,
    host: Annotated[str, typer.Option(help="HTTP host")] = "127.0.0.1",
    port: Annotated[int, typer.Option(help="HTTP port")] = 8000,
    address: Annotated[
        str | None, typer.Option(help="Ray cluster address; a local cluster is started if unset")
    ] = None,
    config: Annotated[
        Path | None, typer.Option(help="AppConfig YAML (a serve config's 'args' also works)")
    ] = None,
    embeddings: Annotated[
        bool, typer.Option(help="Also serve /v1/embeddings (a vLLM pooling engine)")
    ] = False,
    served_model_name: Annotated[
        str | None,
        typer.Option(help="Model name in /v1/models [default: the checkpoint's directory or id]"),
    ] = None,
    ingress: Annotated[
        Ingress | None,
        typer.Option(
            help="Which deployment answers HTTP: 'gateway' (its own replicas) or 'engine' "
            "(each engine replica, one Ray hop fewer) [default: the config's, else gateway]"
        ),
    ] = None,
    log_file: Annotated[
        Path, typer.Option(help="vLLM and Ray logs (errors also reach the terminal)")
    ] = Path("c2s-serve.log"),
    verbose: Verbose = False,
) -> None:
    """Serve the OpenAI-compatible gateway over Ray Serve deployments."""
    route_library_logs(log_file, verbose)
    import ray
    from ray import serve as ray_serve

    from serving.ray_serve.deployments import build_app

    settings = C2SSettings()
    key = settings.api_key.get_secret_value() if settings.api_key else None
    app_config = load_app_config(
        config, model or settings.model, key, embeddings, served_model_name, ingress
    )
    if address:
        ray.init(address=address, log_to_driver=verbose)
    else:
        # Logical CPUs may exceed physical ones; every replica needs room to be placed.
        ray.init(
            address="local",  # a new cluster, never one another `ray start` left running
            num_cpus=max(8, 4 * (os.cpu_count() or 1)),
            include_dashboard=False,
            logging_level=logging.INFO if verbose else logging.WARNING,
            # replicas' own lines stay in Ray's session logs unless --verbose
            log_to_driver=verbose,
        )
    from serving.ray_serve.deployments import SERVE_LOGGING

    ray_serve.start(http_options={"host": host, "port": port}, logging_config=SERVE_LOGGING)
    console.print(
        f"[bold]c2s serve[/bold]: {app_config.engine.model} as '{app_config.gateway.model_name}'"
        f" on http://{host}:{port}"
    )
    ray_serve.run(build_app(app_config), name="c2s", route_prefix="/", blocking=True)
