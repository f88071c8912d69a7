"""``c2s demo`` (``make demo``): annotate scanpy's pbmc68k_reduced with the demo checkpoint.

Every one of the 700 cells goes through the bulk job in-process (the real vLLM engine),
from ``.raw`` (log-normalised), and the predictions are scored against ``bulk_labels``:
on all cells, and on the 140 cells the demo checkpoint never saw in training.
"""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import numpy as np
import pyarrow.parquet as pq
import typer

from serving.bulk.config import AnnotateConfig
from serving.bulk.store import replacing
from serving.cli.annotate import execution_config, print_summary, run_job
from serving.cli.logs import route_library_logs
from serving.cli.options import Verbose, fail, report_console
from serving.ray_serve.config import DEMO_MODEL_DIR

DATASET = "pbmc68k_reduced.h5ad"
LABEL_KEY = "bulk_labels"
ENGINE_LOG = "engine.log"


def write_dataset(path: Path) -> None:
    """Write pbmc68k_reduced (it ships inside the scanpy wheel) to ``path``, once."""
    if path.exists():
        return
    import scanpy as sc

    path.parent.mkdir(parents=True, exist_ok=True)
    with replacing(path) as temp:
        sc.datasets.pbmc68k_reduced().write_h5ad(temp)


def held_out_rows(model: Path) -> list[int] | None:
    """Rows of pbmc68k_reduced the checkpoint held out, as its ``training.json`` records
    them (``None`` for a checkpoint that does not)."""
    import json

    record = model / "training.json"
    if not record.is_file():
        return None
    return json.loads(record.read_text()).get("held_out_rows")


def held_out_accuracy(predictions: Path, dataset: Path, rows: list[int]) -> float:
    """Accuracy on the held-out rows of the demo checkpoint's split."""
    import anndata

    labels = [str(x) for x in anndata.read_h5ad(dataset, backed="r").obs[LABEL_KEY]]
    table = pq.read_table(predictions, columns=["row", "prediction"]).sort_by("row")
    predicted = np.asarray(table.column("prediction").to_pylist(), dtype=object)
    truth = np.asarray(labels, dtype=object)
    return float(np.mean(predicted[rows] == truth[rows]))


def demo(
    out: Annotated[Path, typer.Option(help="Folder for the dataset and the outputs")] = Path(
        "demo-out"
    ),
    model: Annotated[Path, typer.Option(help="The demo checkpoint")] = DEMO_MODEL_DIR,
    verbose: Verbose = False,
) -> None:
    """Annotate every cell of pbmc68k_reduced with the demo checkpoint; print accuracy."""
    if not (model / "config.json").is_file():
        raise fail(
            f"The demo checkpoint {model} is missing. Build it with `make demo-model` "
            "(trains a small C2S-style GPT-NeoX on pbmc68k_reduced, on CPU), then rerun."
        )
    dataset = out / DATASET
    write_dataset(dataset)
    config = AnnotateConfig(
        input=dataset,
        out=out,
        use_raw=True,  # .X is scaled (negative values); .raw holds log-normalised counts
        label_key=LABEL_KEY,
        n_genes=200,
        overwrite=True,  # the demo shows a whole run each time
        execution=execution_config(
            model=str(model),
            endpoint=None,
            ray_address=None,
            engine_options={},
            execution_options={},
        ),
    )
    report_console.print(f"[bold]c2s demo[/bold]: {dataset} (.raw) with {model}")
    if log_file := route_library_logs(out / ENGINE_LOG, verbose):
        report_console.print(f"engine logs: {log_file}")
    result = run_job(config)
    print_summary(result)
    rows = held_out_rows(model)
    if rows is None:
        return
    accuracy = held_out_accuracy(result.files["predictions"], dataset, rows)
    report_console.print(
        f"held-out accuracy: [bold]{accuracy:.1%}[/bold] on the {len(rows)} cells the checkpoint "
        f"was not trained on (its 80/20 split of bulk_labels, seed 0; the other "
        f"{result.report['cells']['total'] - len(rows)} cells were training cells)"
    )
