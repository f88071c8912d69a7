"""The outputs of a finished run, written once every shard is committed.

``predictions.parquet`` (every row, in input order), ``annotated.h5ad``, ``report.json``
and, when they apply, ``confusion_matrix.png`` and ``umap.png``. Each is written
atomically; a run killed while writing them rewrites them all when resumed.
"""

from __future__ import annotations

import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq

from serving.bulk import atomic
from serving.bulk.accuracy import LabelScores, score_labels
from serving.bulk.annotated import write_annotated
from serving.bulk.config import AnnotateConfig
from serving.bulk.heap import release_arrow_memory
from serving.bulk.input_file import InputFile
from serving.bulk.plan import ShardPlan
from serving.bulk.plots import confusion_png, umap_png
from serving.bulk.report import build_report
from serving.bulk.row_tally import RowTally
from serving.bulk.rows import ROW_SCHEMA
from serving.bulk.shards import ShardStore
from serving.bulk.stats import RunStats

PREDICTIONS = "predictions.parquet"
ANNOTATED = "annotated.h5ad"
REPORT = "report.json"
CONFUSION = "confusion_matrix.png"
UMAP = "umap.png"


#: rows read, tallied and written to ``predictions.parquet`` at a time (its row groups):
#: 65,536 held 40 MiB more at the peak than the answering phase
BATCH_ROWS = 16_384


def write_outputs(
    config: AnnotateConfig, source: InputFile, store: ShardStore, plan: ShardPlan, stats: RunStats
) -> tuple[dict[str, Any], dict[str, Path]]:
    """Write every output of the run; return the report and the files written.

    The committed shards are read in batches of `BATCH_ROWS` rows: each batch is appended
    to ``predictions.parquet`` and tallied (`RowTally`), so memory does not grow with the
    number of cells (group runs, whose shards interleave rows, read them whole).
    """
    out = Path(config.out)
    files: dict[str, Path] = {"predictions": out / PREDICTIONS}
    tally = RowTally(source.n_obs, obs_sources(config))
    _write_predictions(store.iter_ordered_rows(plan, BATCH_ROWS), tally, files["predictions"])
    columns = tally.obs_columns()
    scores = None
    if config.label_key is not None or source.has_umap:
        predictions = tally.obs[config.key_added].labels_per_cell()
    if config.label_key is not None:
        scores = score_labels(source.obs[config.label_key].tolist(), predictions)
        files["confusion_matrix"] = out / CONFUSION
        confusion_png(scores, files["confusion_matrix"])
    if source.has_umap:
        files["umap"] = out / UMAP
        umap_png(_read_umap(config.input), predictions, files["umap"])
    files["annotated"] = out / ANNOTATED
    write_annotated(config.input, files["annotated"], columns, provenance(config, tally, scores))
    files["report"] = out / REPORT
    names = {k: str(v) for k, v in files.items()}
    report = build_report(config, source, tally, stats, scores, names)
    atomic.write_json(files["report"], report)
    return report, files


def _write_predictions(batches: Iterator[pa.Table], tally: RowTally, path: Path) -> None:
    """``predictions.parquet`` from the ordered batches, each tallied on the way; nothing
    is written unless every row arrived exactly once."""
    with atomic.replacing(path) as temp:
        writer = None
        try:
            for rows in batches:
                tally.add(rows)
                writer = writer or pq.ParquetWriter(temp, rows.schema)
                writer.write_table(rows, row_group_size=BATCH_ROWS)
                del rows
                release_arrow_memory()
            tally.check_complete()
        finally:
            if writer is not None:
                writer.close()
        if writer is None:
            pq.write_table(ROW_SCHEMA.empty_table(), temp)


def _read_umap(path: Path) -> np.ndarray:
    import anndata.io
    import h5py

    with h5py.File(path, "r") as file:
        return np.asarray(anndata.io.read_elem(file["obsm"]["X_umap"]))


def obs_sources(config: AnnotateConfig) -> dict[str, str]:
    """The ``obs`` columns ``annotated.h5ad`` receives, and the row column of each."""
    key = config.key_added
    sources = {key: "prediction"}
    if config.labels:
        sources[f"{key}_in_label_set"] = "in_label_set"
    if config.label_mode == "scored":
        sources[f"{key}_score"] = "label_score"
    if config.multi_cell:
        sources[f"{key}_group"] = "group_id"
        if config.tissue:
            sources[f"{key}_tissue"] = "tissue"
    return sources


def provenance(
    config: AnnotateConfig, tally: RowTally, scores: LabelScores | None
) -> dict[str, Any]:
    """What ``uns`` records about how the predictions were made."""
    from importlib.metadata import version

    models = sorted(tally.models)
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
