"""``c2s k8s-config``: the RayService's serveConfigV2 of a KubeRay overlay, from its AppConfig."""

from __future__ import annotations

from typing import Annotated

import typer
from rich.console import Console

from serving.k8s_config import (
    Overlay,
    load_overlay_app_config,
    overlay_patch_path,
    render_overlay_patch,
    render_serve_config_v2,
)

console = Console(stderr=True)


def k8s_config(
    overlay: Annotated[Overlay, typer.Option(help="The overlay under k8s/overlays/")],
    write: Annotated[
        bool,
        typer.Option(
            "--write", help="Write k8s/overlays/<overlay>/serve-config.patch.yaml instead"
        ),
    ] = False,
) -> None:
    """Print the serveConfigV2 YAML generated from configs/k8s-<overlay>.yaml."""
    if not write:
        typer.echo(render_serve_config_v2(load_overlay_app_config(overlay)), nl=False)
        return
    path = overlay_patch_path(overlay)
    path.write_text(render_overlay_patch(overlay))
    console.print(f"wrote {path}")
