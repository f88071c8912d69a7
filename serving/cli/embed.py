"""``c2s embed``: cell embeddings of an ``.h5ad`` file into ``obsm['X_c2s']``.

Flags become one `EmbedConfig` here; everything else happens in `serving.bulk.embed`.
"""

from __future__ import annotations

import asyncio
from pathlib import Path
from typing import Annotated

import typer
from pydantic import ValidationError

from serving.bulk.embed import EmbedConfig
from serving.cli import options as opt
from serving.cli.annotate import execution_config
from serving.cli.logs import route_library_logs


def embed(
    input_file: Annotated[Path, typer.Argument(help="The .h5ad file whose cells to embed")],
    out: Annotated[Path, typer.Option(help="The .h5ad to write (the input plus obsm)")],
    model: opt.Model = None,
    n_genes: Annotated[int, typer.Option(help="Genes per cell in the embedded prompt")] = 200,
    template_index: Annotated[int, typer.Option(help="Cell type prompt variant")] = 0,
    key_added: Annotated[str, typer.Option(help="obsm key of the embeddings")] = "X_c2s",
    ray_address: Annotated[
        str | None,
        typer.Option(help="Use the Serve app (with an Embedder) on this Ray cluster ('auto')"),
    ] = None,
    ray_app: opt.RayApp = "c2s",
    use_raw: opt.UseRaw = False,
    layer: opt.Layer = None,
    gene_symbols_column: opt.GeneSymbolsColumn = None,
    organism: opt.OrganismOption = None,
    skip_empty_cells: Annotated[
        bool, typer.Option("--skip-empty-cells", help="Give empty cells a row of NaN")
    ] = False,
    request_cells: Annotated[int, typer.Option(help="Cells per build/embed call")] = 32,
    kv_cache_gib: opt.KvCacheGib = 2,
    progress: opt.ShowProgress = True,
    verbose: opt.Verbose = False,
) -> None:
    """Embed every cell of an .h5ad file (mean last hidden state of its C2S prompt)."""
    from serving.bulk.embed import embed as run

    try:
        execution = execution_config(
            model=model,
            endpoint=None,
            ray_address=ray_address,
            engine_options={"kv_cache_gib": kv_cache_gib},
            execution_options={"request_cells": request_cells, "ray_app": ray_app},
        )
        config = EmbedConfig(
            input=input_file,
            out=out,
            n_genes=n_genes,
            template_index=template_index,
            key_added=key_added,
            use_raw=use_raw,
            layer=layer,
            gene_symbols_column=gene_symbols_column,
            organism=organism,
            skip_empty_cells=skip_empty_cells,
            execution=execution,
        )
    except ValidationError as exc:
        raise opt.invalid_config(exc) from None
    route_library_logs(out.with_suffix(".engine.log"), verbose)
    with opt.progress_bar(progress) as listener:
        result = asyncio.run(run(config, listener))
    summary = result.summary
    opt.report_console.print(
        f"[bold]{summary['n_cells']}[/bold] cells embedded ({summary['dimensions']} dimensions) "
        f"at {summary['cells_per_s']:.2f} cells/s into {result.out} obsm[{key_added!r}]"
    )
