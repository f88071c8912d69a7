"""The outputs of a finished run, written once every shard is committed.

``predictions.parquet`` (every row, in input order), ``annotated.h5ad``, ``report.json``
and, when they apply, ``confusion_matrix.png`` and ``umap.png``. Each is written
atomically; a run killed while writing them rewrites them all when resumed.

``annotated.h5ad`` is a copy of the input with the predictions in ``obs`` and the run's
provenance in ``uns``: the copy is made file to file and only the new ``obs`` columns and
one ``uns`` entry are written, so neither the matrices nor the cell names are loaded and
files larger than memory work. The figures use Matplotlib's object API (``Figure``)
without pyplot, so no global backend or figure state is touched.
"""

from __future__ import annotations

import shutil
import time
import warnings
from collections.abc import Iterator, Mapping, Sequence
from pathlib import Path
from typing import Any

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq

from serving.bulk.accuracy import OTHER, LabelScores, score_labels
from serving.bulk.config import AnnotateConfig
from serving.bulk.heap import release_arrow_memory
from serving.bulk.input_file import InputFile
from serving.bulk.plan import ShardPlan
from serving.bulk.report import build_report
from serving.bulk.row_tally import RowTally
from serving.bulk.rows import ROW_SCHEMA
from serving.bulk.stats import RunStats
from serving.bulk.store import ShardStore, replacing, write_json

PREDICTIONS = "predictions.parquet"
ANNOTATED = "annotated.h5ad"
REPORT = "report.json"
CONFUSION = "confusion_matrix.png"
UMAP = "umap.png"
#: the ``uns`` key of the provenance record in ``annotated.h5ad``
UNS_KEY = "c2s_annotation"

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
    write_json(files["report"], report)
    return report, files


def _write_predictions(batches: Iterator[pa.Table], tally: RowTally, path: Path) -> None:
    """``predictions.parquet`` from the ordered batches, each tallied on the way; nothing
    is written unless every row arrived exactly once."""
    with replacing(path) as temp:
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


# ------------------------------------------------------------------ annotated.h5ad


def write_annotated(
    source: Path,
    path: Path,
    columns: Mapping[str, Any],
    provenance: Mapping[str, Any],
) -> None:
    """Copy ``source`` to ``path`` (atomically) with ``columns`` (arrays or categoricals,
    `serving.bulk.row_tally.ObsColumn.finish`) added to ``obs`` and ``provenance`` as
    ``uns[UNS_KEY]``.

    Only the new columns are written into the copy's ``obs`` group (a column of the same
    name is replaced in place), so the cell names and the other columns are never loaded.
    """
    import anndata.io
    import h5py

    with replacing(path) as temp:
        shutil.copyfile(source, temp)
        with h5py.File(temp, "r+") as file:
            obs = file["obs"]
            if str(obs.attrs.get("encoding-version", "")) != "0.2.0":
                _rewrite_obs(file, columns)  # an older layout: rewritten whole
            else:
                order = [str(c) for c in obs.attrs.get("column-order", [])]
                for name, values in columns.items():
                    if name in obs:
                        del obs[name]
                    anndata.io.write_elem(obs, name, values)
                order += [name for name in columns if name not in order]
                obs.attrs["column-order"] = order
            if "uns" in file:
                anndata.io.write_elem(file["uns"], UNS_KEY, _storable(provenance))
            else:
                anndata.io.write_elem(file, "uns", {UNS_KEY: _storable(provenance)})


def _rewrite_obs(file, columns: Mapping[str, Any]) -> None:
    import anndata.io

    obs = anndata.io.read_elem(file["obs"])
    for name, values in columns.items():
        obs[name] = values
    anndata.io.write_elem(file, "obs", obs)


def _storable(value: Any) -> Any:
    """``value`` with what HDF5 cannot hold (``None``, tuples, paths) made storable."""
    if isinstance(value, Mapping):
        return {str(k): _storable(v) for k, v in value.items() if v is not None}
    if isinstance(value, list | tuple):
        return [str(v) for v in value]
    if isinstance(value, Path):
        return str(value)
    return value


# ------------------------------------------------------------------ figures

#: categories drawn in the UMAP legend; rarer ones are drawn grey as "other"
MAX_LEGEND = 20
#: legend entries are cut to this many characters (a generated label can be long)
MAX_LABEL_CHARS = 40


def _save(figure, path: Path) -> None:
    with replacing(path) as temp, warnings.catch_warnings():
        # generated labels may hold characters the default font lacks: draw them as boxes
        warnings.filterwarnings("ignore", message="Glyph .* missing from font")
        figure.savefig(temp, format="png", dpi=120, bbox_inches="tight")


def confusion_png(scores: LabelScores, path: Path, *, title: str = "") -> None:
    """Row-normalised confusion matrix with counts, reference labels down the side."""
    from matplotlib.figure import Figure

    counts = scores.confusion
    shares = counts / np.maximum(counts.sum(axis=1, keepdims=True), 1)
    columns = [*scores.classes, OTHER]
    size = 2.5 + 0.45 * len(columns)
    figure = Figure(figsize=(size + 1.5, size))
    axes = figure.add_subplot()
    image = axes.imshow(shares, cmap="Blues", vmin=0, vmax=1)
    axes.set_xticks(range(len(columns)), labels=columns, rotation=60, ha="right")
    axes.set_yticks(range(len(scores.classes)), labels=scores.classes)
    axes.set_xlabel("prediction")
    axes.set_ylabel("reference label")
    for (i, j), n in np.ndenumerate(counts):
        if n:
            colour = "white" if shares[i, j] > 0.5 else "black"
            axes.text(j, i, str(n), ha="center", va="center", fontsize=7, color=colour)
    axes.set_title(title or f"accuracy {scores.accuracy:.1%} ({scores.n_labelled} cells)")
    figure.colorbar(image, ax=axes, fraction=0.046, label="share of the label's cells")
    _save(figure, path)


def umap_png(coords: np.ndarray, predictions: Sequence[str | None], path: Path) -> None:
    """The cells on their UMAP, coloured by prediction (most frequent in the legend)."""
    from matplotlib import colormaps
    from matplotlib.figure import Figure

    labels = np.asarray([p if p else "(none)" for p in predictions], dtype=object)
    values, counts = np.unique(labels, return_counts=True)
    shown = [str(v) for v in values[np.argsort(-counts, kind="stable")][:MAX_LEGEND]]
    figure = Figure(figsize=(8, 6))
    axes = figure.add_subplot()
    size = max(1.0, min(20.0, 20000 / max(len(labels), 1)))
    rest = ~np.isin(labels, shown)
    if rest.any():
        axes.scatter(*coords[rest, :2].T, s=size, c="lightgrey", label="other", linewidths=0)
    palette = colormaps["tab20"]
    for i, label in enumerate(shown):
        mask = labels == label
        name = label if len(label) <= MAX_LABEL_CHARS else label[: MAX_LABEL_CHARS - 1] + "…"
        axes.scatter(*coords[mask, :2].T, s=size, color=palette(i % 20), label=name, linewidths=0)
    axes.set_xlabel("UMAP 1")
    axes.set_ylabel("UMAP 2")
    axes.set_xticks([])
    axes.set_yticks([])
    axes.set_title("C2S predictions")
    axes.legend(loc="center left", bbox_to_anchor=(1.0, 0.5), fontsize=7, markerscale=2)
    _save(figure, path)
