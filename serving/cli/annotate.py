"""``c2s annotate``: bulk annotation of an ``.h5ad`` file (the edge of `serving.bulk`).

Flags and ``C2S_*`` settings become one `AnnotateConfig` here; everything else happens in
`serving.bulk`.
"""

from __future__ import annotations

import asyncio
from pathlib import Path
from typing import Annotated, Any

import typer
from pydantic import ValidationError

from serving.bulk import job
from serving.bulk.config import AnnotateConfig, BulkTask, DistributedConfig, ExecutionConfig
from serving.cli import options as opt
from serving.cli.logs import route_library_logs
from serving.core.label_scoring import SCORING_BLOCK_SIZE
from serving.core.label_sets import read_label_file
from serving.engine.config import EngineConfig
from serving.ray_serve.config import DEMO_MODEL_DIR
from serving.settings import C2SSettings

__all__ = ["annotate", "execution_config", "print_summary", "run_job"]


def template_choice(value: str) -> int | str:
    """``random`` or a template index."""
    if value == "random":
        return value
    try:
        return int(value)
    except ValueError:
        raise typer.BadParameter("a template index (0, 1, ...) or 'random'") from None


def engine_options(label_mode: str, kv_cache_gib: int, compile_graph: bool) -> dict[str, Any]:
    """The in-process engine's options; scored label sets get small KV blocks."""
    options: dict[str, Any] = {"kv_cache_gib": kv_cache_gib, "enforce_eager": not compile_graph}
    if label_mode == "scored":
        options["block_size"] = SCORING_BLOCK_SIZE
    return options


def execution_config(
    *,
    model: str | None,
    endpoint: str | None,
    ray_address: str | None,
    engine_options: dict[str, Any],
    execution_options: dict[str, Any],
    distributed: DistributedConfig | None = None,
) -> ExecutionConfig:
    """The execution mode the flags ask for: distributed (when ``distributed`` is given),
    endpoint, Ray Serve, else in-process.

    A remote model's tokenizer (for sizing groups) is the ``--model`` directory when one is
    named; the demo checkpoint is the default of in-process runs only.
    """
    settings = C2SSettings()
    named = model or settings.model
    model_dir = Path(named) if named and Path(named).is_dir() else None
    if distributed is not None:
        engine = None
        if distributed.engine == "vllm":
            engine = EngineConfig.for_offline_job(named or str(DEMO_MODEL_DIR), **engine_options)
        return ExecutionConfig(
            mode="distributed",
            ray_address=ray_address,
            engine=engine,
            model_dir=model_dir or (None if named else DEMO_MODEL_DIR),
            distributed=distributed,
            **execution_options,
        )
    if endpoint:
        return ExecutionConfig(
            mode="endpoint",
            endpoint=endpoint,
            api_key=settings.api_key,
            model_dir=model_dir,
            **execution_options,
        )
    if ray_address:
        return ExecutionConfig(
            mode="ray", ray_address=ray_address, model_dir=model_dir, **execution_options
        )
    engine = EngineConfig.for_offline_job(named or str(DEMO_MODEL_DIR), **engine_options)
    return ExecutionConfig(mode="local", engine=engine, **execution_options)


def run_job(config: AnnotateConfig, *, show_progress: bool = True) -> job.RunResult:
    """Run ``config`` with a progress bar; errors become a message and exit code 2."""
    with opt.progress_bar(show_progress) as progress:
        return asyncio.run(job.annotate(config, progress))


def print_summary(result: job.RunResult) -> None:
    """Cells, speed, accuracy and where the outputs are."""
    report = result.report
    run = report["run"]
    out = opt.report_console
    out.print(
        f"[bold]{report['cells']['total']}[/bold] cells annotated "
        f"({run['annotated_cells']} now, {run['resumed_cells']} resumed) at "
        f"{run['cells_per_s']:.2f} cells/s"
    )
    accuracy = report.get("accuracy")
    if accuracy:
        out.print(
            f"accuracy against {report['settings']['label_key']}: "
            f"[bold]{accuracy['accuracy']:.1%}[/bold] ({accuracy['n_correct']}/"
            f"{accuracy['n_labelled']}), valid labels {accuracy['valid_label_rate']:.1%}"
        )
    out.print(
        f"outputs in {result.out}/: " + ", ".join(Path(p).name for p in report["files"].values())
    )


def annotate(
    input_file: Annotated[Path, typer.Argument(help="The .h5ad file to annotate")],
    out: Annotated[Path, typer.Option(help="Output folder (a run there is resumed)")],
    model: opt.Model = None,
    task: Annotated[
        str, typer.Option(help="cell_type_prediction, or multi_cell_type_prediction (groups)")
    ] = "cell_type_prediction",
    n_genes: Annotated[
        int | None, typer.Option(help="Genes per cell [default: 200; 100 in groups]")
    ] = None,
    label_key: Annotated[
        str | None, typer.Option(help="obs column of reference labels: accuracy and confusion")
    ] = None,
    group_key: Annotated[
        str | None, typer.Option(help="obs column that groups cells in multi-cell runs")
    ] = None,
    endpoint: Annotated[
        str | None, typer.Option(help="A remote gateway's URL (key from C2S_API_KEY)")
    ] = None,
    ray_address: Annotated[
        str | None,
        typer.Option(
            help="Use the Serve app on this Ray cluster ('auto': local); with --mode "
            "distributed, the cluster to spread over (default: Ray started here)"
        ),
    ] = None,
    mode: Annotated[
        str,
        typer.Option(
            help="auto (from --endpoint/--ray-address, else in-process) or distributed: "
            "readers, builders and engines as Ray tasks and actors over a cluster"
        ),
    ] = "auto",
    distributed_engine: Annotated[
        str,
        typer.Option(
            help="--mode distributed: serve (the Serve app's replicas), vllm (engine "
            "actors of --model) or instant (a fake engine: tests and benchmarks)"
        ),
    ] = "serve",
    workers: Annotated[
        int, typer.Option(help="--mode distributed: row-range tasks in flight at once")
    ] = 2,
    engine_actors: Annotated[
        int, typer.Option(help="--mode distributed: engine actors (vllm, instant)")
    ] = 1,
    engine_cpus: Annotated[
        float, typer.Option(help="--mode distributed: CPUs each engine actor asks of Ray")
    ] = 1.0,
    engine_gpus: Annotated[
        float, typer.Option(help="--mode distributed: GPUs each engine actor asks of Ray")
    ] = 0.0,
    shards_per_task: Annotated[
        int, typer.Option(help="--mode distributed: consecutive shards per row-range task")
    ] = 4,
    ray_app: opt.RayApp = "c2s",
    use_raw: opt.UseRaw = False,
    layer: opt.Layer = None,
    gene_symbols_column: opt.GeneSymbolsColumn = None,
    organism: opt.OrganismOption = None,
    template_index: Annotated[
        str, typer.Option(help="Prompt variant, or 'random' (seeded, per cell)")
    ] = "0",
    skip_empty_cells: Annotated[
        bool, typer.Option("--skip-empty-cells", help="Give empty cells no prediction")
    ] = False,
    tissue: Annotated[bool, typer.Option(help="Also predict each group's tissue")] = True,
    max_group_cells: Annotated[
        int, typer.Option(help="Most cells per group (fewer when the context is short)")
    ] = 20,
    key_added: Annotated[str, typer.Option(help="obs column of the predictions")] = (
        "c2s_prediction"
    ),
    shard_cells: Annotated[int, typer.Option(help="Cells per Parquet shard")] = 256,
    max_inflight: Annotated[int, typer.Option(help="Cells in flight at once")] = 512,
    request_cells: Annotated[
        int, typer.Option(help="Cells per build, engine and decode call, or per request")
    ] = 32,
    kv_cache_gib: opt.KvCacheGib = 2,
    compile_graph: Annotated[
        bool,
        typer.Option("--compile", help="torch.compile the engine (slow start, for long runs)"),
    ] = False,
    overwrite: Annotated[
        bool, typer.Option("--overwrite", help="Discard a previous run in --out")
    ] = False,
    labels: Annotated[
        Path | None,
        typer.Option(help="The allowed cell type labels, one per line (the atlas's vocabulary)"),
    ] = None,
    label_mode: Annotated[
        str,
        typer.Option(
            help="With --labels: free (flag answers outside the set), constrained (decode "
            "within it) or scored (rank every label; scores in obs and Parquet)"
        ),
    ] = "free",
    top_k_labels: Annotated[
        int, typer.Option(help="Scored mode: labels kept per cell in the Parquet rows")
    ] = 5,
    progress: opt.ShowProgress = True,
    verbose: opt.Verbose = False,
) -> None:
    """Annotate every cell of an .h5ad file: Parquet shards, annotated.h5ad, report.json."""
    try:
        execution = execution_config(
            model=model,
            endpoint=endpoint,
            ray_address=ray_address,
            engine_options=engine_options(label_mode, kv_cache_gib, compile_graph),
            execution_options={
                "max_inflight_cells": max_inflight,
                "request_cells": request_cells,
                "ray_app": ray_app,
            },
            distributed=_distributed(
                mode,
                engine=distributed_engine,
                workers=workers,
                engine_actors=engine_actors,
                engine_cpus=engine_cpus,
                engine_gpus=engine_gpus,
                shards_per_task=shards_per_task,
            ),
        )
        config = AnnotateConfig(
            input=input_file,
            out=out,
            task=_task(task),
            n_genes=n_genes,
            label_key=label_key,
            group_key=group_key,
            use_raw=use_raw,
            layer=layer,
            gene_symbols_column=gene_symbols_column,
            organism=organism,
            template_index=template_choice(template_index),
            skip_empty_cells=skip_empty_cells,
            tissue=tissue,
            max_group_cells=max_group_cells,
            key_added=key_added,
            shard_cells=shard_cells,
            overwrite=overwrite,
            labels=_labels(labels),
            label_mode=label_mode,
            top_k_labels=top_k_labels,
            execution=execution,
        )
    except ValidationError as exc:
        raise opt.invalid_config(exc) from None
    route_library_logs(out / "engine.log", verbose)
    print_summary(run_job(config, show_progress=progress))


def _distributed(mode: str, **options: Any) -> DistributedConfig | None:
    if mode not in ("auto", "distributed"):
        raise typer.BadParameter("auto or distributed", param_hint="--mode")
    return DistributedConfig(**options) if mode == "distributed" else None


def _labels(path: Path | None) -> tuple[str, ...] | None:
    if path is None:
        return None
    try:
        labels = read_label_file(path)
    except OSError as exc:
        raise opt.fail(f"--labels {path}: {exc.strerror or exc}") from None
    if not labels:
        raise opt.fail(f"--labels {path} holds no labels (one per line).")
    return labels


def _task(value: str) -> BulkTask:
    if value not in ("cell_type_prediction", "multi_cell_type_prediction"):
        raise typer.BadParameter(
            "bulk runs answer cell_type_prediction or multi_cell_type_prediction",
            param_hint="--task",
        )
    return value  # type: ignore[return-value]
