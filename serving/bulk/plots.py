"""PNG figures of a run: the confusion matrix and a UMAP coloured by prediction.

Matplotlib's object API (``Figure``) is used without pyplot, so no global backend or
figure state is touched.
"""

from __future__ import annotations

import warnings
from collections.abc import Sequence
from pathlib import Path

import numpy as np

from serving.bulk import atomic
from serving.bulk.accuracy import OTHER, LabelScores

#: categories drawn in the UMAP legend; rarer ones are drawn grey as "other"
MAX_LEGEND = 20


#: legend entries are cut to this many characters (a generated label can be long)
MAX_LABEL_CHARS = 40


def _save(figure, path: Path) -> None:
    with atomic.replacing(path) as temp, warnings.catch_warnings():
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
