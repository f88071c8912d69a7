"""The demo's data: scanpy's pbmc68k_reduced as cell sentences, labels and a fixed split.

pbmc68k_reduced ships inside the scanpy wheel (no download): 700 PBMCs x 765 genes, with
log-normalised values in ``.raw`` and cell types in ``obs["bulk_labels"]``. Labels the
dataset lacks are derived from what it has: the tissue is peripheral blood, gene sets are
the top marker genes per cell type in ``uns["rank_genes_groups"]``, and abstracts are a
short description written here.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Sequence
from dataclasses import dataclass, replace

import numpy as np

TISSUE = "peripheral blood"
ORGANISM = "Homo sapiens"
#: the split the C2S reference baselines use: 80/20 stratified by bulk_labels, seed 0
SPLIT_SEED = 0
HELD_OUT_FRACTION = 0.2
#: marker genes per gene set (of the 100 ranked per cell type)
GENE_SET_SIZE = 20

ABSTRACT_LEAD = (
    "Single-cell RNA sequencing of peripheral blood mononuclear cells from a healthy human "
    "donor (10x Genomics PBMC 68k)."
)


@dataclass(frozen=True)
class DemoData:
    """Cell sentences, labels, the split and the gene sets of the demo.

    Attributes
    ----------
    sentences
        Full cell sentence of every cell (C2S ranking of ``.raw``), in row order.
    labels
        ``bulk_labels`` of every cell.
    train, held_out
        Row indices of the two parts of the split.
    gene_sets
        Gene set name -> its genes (marker genes of one cell type).
    genes
        The dataset's gene symbols, upper-cased, in column order.
    expression
        Dense log-normalised expression (cells x genes), for the baselines.
    """

    sentences: tuple[str, ...]
    labels: tuple[str, ...]
    train: np.ndarray
    held_out: np.ndarray
    gene_sets: dict[str, tuple[str, ...]]
    genes: tuple[str, ...]
    expression: np.ndarray


def gene_set_name(cell_type: str) -> str:
    """The name given to a cell type's marker gene set."""
    return f"PBMC68K {cell_type} markers"


def describe_cells(labels: Sequence[str]) -> str:
    """The abstract of a group of cells: the dataset, then its composition.

    Written without a final ``.``: C2S's answer template adds it.
    """
    counts = Counter(labels).most_common()
    parts = [f"{n} {label}" for label, n in counts]
    listed = parts[0] if len(parts) == 1 else ", ".join(parts[:-1]) + " and " + parts[-1]
    noun = "cell" if len(labels) == 1 else "cells"
    return f"{ABSTRACT_LEAD} The {len(labels)} {noun} shown are {listed} {noun}"


def stratified_split(
    labels: Sequence[str], test_size: float | int = HELD_OUT_FRACTION
) -> tuple[np.ndarray, np.ndarray]:
    """Positions of the train and held-out parts (80/20 by default, stratified, seed 0)."""
    from sklearn.model_selection import train_test_split

    rows = np.arange(len(labels))
    train, held_out = train_test_split(
        rows, test_size=test_size, stratify=list(labels), random_state=SPLIT_SEED
    )
    return np.sort(train), np.sort(held_out)


def validation_split(data: DemoData, n_cells: int) -> DemoData:
    """The data of a pilot run: ``n_cells`` training cells (stratified) play the held-out part.

    The 140 held-out cells are left out entirely, so choosing a recipe on this split never
    looks at them.
    """
    train_labels = [data.labels[c] for c in data.train]
    fit, validation = stratified_split(train_labels, test_size=n_cells)
    return replace(data, train=data.train[fit], held_out=data.train[validation])


def marker_gene_sets(adata, size: int = GENE_SET_SIZE) -> dict[str, tuple[str, ...]]:
    """Top ``size`` marker genes of each group of ``uns["rank_genes_groups"]``."""
    names = adata.uns["rank_genes_groups"]["names"]
    return {
        gene_set_name(group): tuple(str(g).upper() for g in names[group][:size])
        for group in names.dtype.names
    }


def load_demo_data() -> DemoData:
    """Load pbmc68k_reduced and derive everything the demo trains and evaluates on."""
    import scanpy as sc

    from tokenizer_ext import cell_sentences

    adata = sc.datasets.pbmc68k_reduced()
    labels = tuple(str(x) for x in adata.obs["bulk_labels"])
    sentences = tuple(cell_sentences(adata, use_raw=True, tie_break="c2s", seed=42))
    train, held_out = stratified_split(labels)
    return DemoData(
        sentences=sentences,
        labels=labels,
        train=train,
        held_out=held_out,
        gene_sets=marker_gene_sets(adata),
        genes=tuple(str(g).upper() for g in adata.raw.var_names),
        expression=np.asarray(adata.raw.X.toarray(), dtype=np.float32),
    )
