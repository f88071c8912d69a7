"""The outputs of a finished run, written once every shard is committed.

``predictions.parquet`` (every row, in input order), ``annotated.h5ad``, ``report.json``
and, when they apply, ``confusion_matrix.png`` and ``umap.png``. Each is written
atomically; a run killed while writing them rewrites them all when resumed.
"""

from __future__ import annotations

import time
from pathlib import Path
from typing import Any

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq

from serving.bulk import atomic
from serving.bulk.accuracy import LabelScores, score_labels
from serving.bulk.annotated import write_annotated
from serving.bulk.config import AnnotateConfig
from serving.bulk.errors import AnnotateError
from serving.bulk.input_file import InputFile
from serving.bulk.plots import confusion_png, umap_png
from serving.bulk.report import build_report
from serving.bulk.stats import RunStats

PREDICTIONS = "predictions.parquet"
ANNOTATED = "annotated.h5ad"
REPORT = "report.json"
CONFUSION = "confusion_matrix.png"
UMAP = "umap.png"


def check_each_cell_once(rows: pa.Table, n_cells: int) -> None:
    """Raise `AnnotateError` unless the rows hold every input row exactly once."""
    found = np.asarray(rows.column("row").to_pylist(), dtype=np.int64)
    if len(found) != n_cells or not np.array_equal(np.sort(found), np.arange(n_cells)):
        raise AnnotateError(
            f"The shards hold {len(found)} rows ({len(np.unique(found))} distinct) for "
            f"{n_cells} cells; rerun with --overwrite."
        )


def write_outputs(
    config: AnnotateConfig, source: InputFile, rows: pa.Table, stats: RunStats
) -> tuple[dict[str, Any], dict[str, Path]]:
    """Write every output of the run; return the report and the files written."""
    check_each_cell_once(rows, source.n_obs)
    out = Path(config.out)
    files: dict[str, Path] = {"predictions": out / PREDICTIONS}
    _write_parquet(rows, files["predictions"])
    predictions = rows.column("prediction").to_pylist()
    scores = None
    if config.label_key is not None:
        scores = score_labels(source.obs[config.label_key].tolist(), predictions)
        files["confusion_matrix"] = out / CONFUSION
        confusion_png(scores, files["confusion_matrix"])
    if source.has_umap:
        files["umap"] = out / UMAP
        umap_png(_read_umap(config.input), predictions, files["umap"])
    files["annotated"] = out / ANNOTATED
    write_annotated(
        config.input,
        files["annotated"],
        obs_columns(config, rows),
        provenance(config, rows, scores),
    )
    files["report"] = out / REPORT
    names = {k: str(v) for k, v in files.items()}
    report = build_report(config, source, rows, stats, scores, names)
    atomic.write_json(files["report"], report)
    return report, files


def _write_parquet(rows: pa.Table, path: Path) -> None:
    with atomic.replacing(path) as temp:
        pq.write_table(rows, temp)


def _read_umap(path: Path) -> np.ndarray:
    import anndata.io
    import h5py

    with h5py.File(path, "r") as file:
        return np.asarray(anndata.io.read_elem(file["obsm"]["X_umap"]))


def obs_columns(config: AnnotateConfig, rows: pa.Table) -> dict[str, list]:
    """The ``obs`` columns ``annotated.h5ad`` receives."""
    key = config.key_added
    columns = {key: rows.column("prediction").to_pylist()}
    if config.labels:
        columns[f"{key}_in_label_set"] = rows.column("in_label_set").to_pylist()
    if config.label_mode == "scored":
        columns[f"{key}_score"] = rows.column("label_score").to_pylist()
    if config.multi_cell:
        columns[f"{key}_group"] = rows.column("group_id").to_pylist()
        if config.tissue:
            columns[f"{key}_tissue"] = rows.column("tissue").to_pylist()
    return columns


def provenance(
    config: AnnotateConfig, rows: pa.Table, scores: LabelScores | None
) -> dict[str, Any]:
    """What ``uns`` records about how the predictions were made."""
    from importlib.metadata import version

    models = sorted({m for m in rows.column("model").to_pylist() if m})
    return {
        "software": f"c2s-serving {version('c2s-serving')}",
        "created_at": time.strftime("%Y-%m-%dT%H:%M:%S%z"),
        "task": config.task,
        "model": ", ".join(models),
        "target": config.execution.target,
        "key_added": config.key_added,
        "n_genes": config.genes_per_cell,
        "template_index": str(config.template_index),
        "matrix": config.matrix_name,
        "tie_break": config.tie_break,
        "label_key": config.label_key,
        "label_mode": config.label_mode if config.labels else None,
        "n_labels": len(config.labels) if config.labels else None,
        "accuracy": scores.accuracy if scores is not None else None,
        "config_json": config.model_dump_json(),
    }
