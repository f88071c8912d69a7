"""Training and evaluation examples of the twelve tasks, drawn from the demo's data.

An example is a task input (the payload the API takes) plus the values of the task's
answer template. Prompts and answers are rendered by the task registry, with the same
templates and cell sentences the server uses; nothing here writes prompt text.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass

import numpy as np

from models.training.dataset import ORGANISM, TISSUE, DemoData, describe_cells
from serving.core.tasks import TaskRegistry
from tokenizer_ext.cell_text import first_genes, multi_cell_text
from tokenizer_ext.sentences import sentence_from_vector
from tokenizer_ext.vocab import GeneVocabulary

#: genes per cell the demo is trained on (its "trained ranges")
PREDICTION_GENES = (50, 200)
GENERATION_GENES = (20, 80)
MULTI_CELL_GENES = (10, 40)
MULTI_CELLS = (2, 5)

#: share of each task in training; cell typing dominates, as the demo is judged on it (a
#: 50% share over 2400 steps did no better than this at 1600 steps, and then overfit)
TASK_WEIGHTS: dict[str, float] = {
    "cell_type_prediction": 0.40,
    "multi_cell_type_prediction": 0.08,
    "cell_type_generation": 0.06,
    "cell_generation": 0.05,
    "multi_cell_generation": 0.04,
    "tissue_prediction": 0.05,
    "tissue_generation": 0.04,
    "multi_cell_type_generation": 0.05,
    "cells_to_abstract": 0.06,
    "abstract_to_cells": 0.05,
    "gene_set_to_genes": 0.06,
    "genes_to_gene_set": 0.06,
}


def task_weights(cell_type_share: float) -> dict[str, float]:
    """`TASK_WEIGHTS` with cell typing at ``cell_type_share``, the others scaled to the rest."""
    if not 0 < cell_type_share < 1:
        raise ValueError(f"cell_type_share must be in (0, 1), got {cell_type_share}")
    base = TASK_WEIGHTS["cell_type_prediction"]
    scale = (1 - cell_type_share) / (1 - base)
    return {
        task: cell_type_share if task == "cell_type_prediction" else weight * scale
        for task, weight in TASK_WEIGHTS.items()
    }


@dataclass(frozen=True)
class Example:
    """One task input and the values of its answer template."""

    task: str
    payload: dict
    answer: dict[str, str]
    template: int
    #: the cell type label(s) behind the example, for evaluation
    labels: tuple[str, ...] = ()


class ExampleDrawer:
    """Draws examples from a set of cells with a seeded generator.

    Parameters
    ----------
    data
        The demo's data.
    cells
        Row indices the examples may use (the train or the held-out part).
    registry
        Gives each task's template count.
    seed
        Seed of the generator.
    gene_dropout
        Share of a cell's genes dropped at random (order kept) before a cell type
        prediction prompt takes its top genes: augmentation, so that 560 training cells
        are not learnt by heart. 0 for evaluation.
    expression_noise
        Standard deviation of Gaussian noise added to a cell's expressed log values before
        a cell type prediction prompt ranks them again: augmentation. Most of a
        pbmc68k_reduced cell's genes tie at one or two counts and C2S orders ties by one
        fixed random draw, so even a small noise shows the model other, equally true
        orders. 0 (the committed sentences) for evaluation.
    cell_mixing
        Share of cell type prediction prompts whose cell is a pseudo-cell: the mean
        expression (in counts, before the log) of the cell and another training cell of
        the same type, ranked again. 0 for evaluation.
    """

    def __init__(
        self,
        data: DemoData,
        cells: np.ndarray,
        registry: TaskRegistry,
        seed: int,
        gene_dropout: float = 0.0,
        expression_noise: float = 0.0,
        cell_mixing: float = 0.0,
    ) -> None:
        self.data = data
        self.gene_dropout = gene_dropout
        self.expression_noise = expression_noise
        self.cell_mixing = cell_mixing
        self._vocab = GeneVocabulary(list(data.genes))
        self.cells = np.asarray(cells)
        # same-type cells of the pool, in pool order, for pseudo-cells (``cell_mixing``)
        self._cells_of_type: dict[str, list[int]] = {}
        for c in self.cells:
            self._cells_of_type.setdefault(data.labels[c], []).append(int(c))
        self.registry = registry
        self.rng = np.random.default_rng(seed)
        self._draw: dict[str, Callable[[], tuple[dict, dict[str, str], tuple[str, ...]]]] = {
            "cell_generation": self._cell_generation,
            "cell_type_prediction": self._cell_type_prediction,
            "cell_type_generation": self._cell_type_generation,
            "multi_cell_generation": self._multi_cell_generation,
            "tissue_prediction": self._tissue_prediction,
            "multi_cell_type_prediction": self._multi_cell_type_prediction,
            "tissue_generation": self._tissue_generation,
            "multi_cell_type_generation": self._multi_cell_type_generation,
            "cells_to_abstract": self._cells_to_abstract,
            "abstract_to_cells": self._abstract_to_cells,
            "gene_set_to_genes": self._gene_set_to_genes,
            "genes_to_gene_set": self._genes_to_gene_set,
        }

    def draw(self, task: str, template: int | None = None) -> Example:
        """One example of ``task``; a random template unless one is given."""
        payload, answer, labels = self._draw[task]()
        if template is None:
            template = int(self.rng.integers(len(self.registry.get(task).templates)))
        return Example(task, payload, answer, template, labels)

    def draw_mixture(self, n: int, weights: dict[str, float] = TASK_WEIGHTS) -> list[Example]:
        """``n`` examples with tasks drawn by ``weights``."""
        names = list(weights)
        p = np.array([weights[t] for t in names], dtype=float)
        tasks = self.rng.choice(len(names), size=n, p=p / p.sum())
        return [self.draw(names[t]) for t in tasks]

    def cell_type_examples(self, n_genes: int, template: int = 0) -> list[Example]:
        """One cell type prediction example per cell, in order (for evaluation)."""
        return [
            Example(
                "cell_type_prediction",
                {"cell": self.data.sentences[c], "n_genes": n_genes, "organism": ORGANISM},
                {"cell_type": self.data.labels[c]},
                template,
                (self.data.labels[c],),
            )
            for c in self.cells
        ]

    # ------------------------------------------------------------ helpers

    def _k(self, bounds: tuple[int, int]) -> int:
        return int(self.rng.integers(bounds[0], bounds[1] + 1))

    def _cell(self) -> int:
        return int(self.rng.choice(self.cells))

    def _group(self) -> list[int]:
        n = self._k(MULTI_CELLS)
        return [int(c) for c in self.rng.choice(self.cells, size=n, replace=False)]

    def _sentence(self, cell: int, k: int) -> str:
        return first_genes(self.data.sentences[cell], k)

    def _expression(self, cell: int) -> np.ndarray:
        """The cell's log expression, or a pseudo-cell of its type (``cell_mixing``)."""
        values = self.data.expression[cell]
        if not self.cell_mixing or self.rng.random() >= self.cell_mixing:
            return values
        peers = [c for c in self._cells_of_type.get(self.data.labels[cell], []) if c != cell]
        if not peers:
            return values
        other = self.data.expression[peers[int(self.rng.integers(len(peers)))]]
        return np.log1p((np.expm1(values) + np.expm1(other)) / 2).astype(values.dtype)

    def _reranked(self, cell: int) -> str:
        """The cell's sentence ranked again from its expression plus ``expression_noise``."""
        values = self._expression(cell)
        expressed = values > 0
        noisy = values + self.rng.normal(0.0, self.expression_noise, values.shape) * expressed
        # noise reorders genes, it never turns an expressed gene off
        noisy = np.where(expressed, np.maximum(noisy, 1e-6), 0.0)
        return sentence_from_vector(noisy, self._vocab)

    def _augmented(self, cell: int) -> str:
        """The cell's sentence, re-ranked with noise and with ``gene_dropout`` of its genes
        dropped (order kept), as the augmentation settings ask."""
        reranked = self.expression_noise or self.cell_mixing
        sentence = self._reranked(cell) if reranked else self.data.sentences[cell]
        if not self.gene_dropout:
            return sentence
        genes = sentence.split(" ")
        kept = self.rng.random(len(genes)) >= self.gene_dropout
        return " ".join(g for g, keep in zip(genes, kept, strict=True) if keep)

    def _labels(self, cells: Sequence[int]) -> tuple[str, ...]:
        return tuple(self.data.labels[c] for c in cells)

    def _cells_answer(self, cells: Sequence[int], k: int) -> dict[str, str]:
        return {"multi_cell_sentences": multi_cell_text([self._sentence(c, k) for c in cells])}

    def _gene_set(self) -> tuple[str, tuple[str, ...]]:
        names = sorted(self.data.gene_sets)
        name = names[int(self.rng.integers(len(names)))]
        return name, self.data.gene_sets[name]

    # ------------------------------------------------------------ single cell

    def _cell_generation(self):
        cell, k = self._cell(), self._k(GENERATION_GENES)
        payload = {"n_genes": k, "organism": ORGANISM}
        return payload, {"cell_sentence": self._sentence(cell, k)}, self._labels([cell])

    def _cell_type_prediction(self):
        cell, k = self._cell(), self._k(PREDICTION_GENES)
        payload = {"cell": self._augmented(cell), "n_genes": k, "organism": ORGANISM}
        label = self.data.labels[cell]
        return payload, {"cell_type": label}, (label,)

    def _cell_type_generation(self):
        cell, k = self._cell(), self._k(GENERATION_GENES)
        label = self.data.labels[cell]
        payload = {"cell_type": label, "n_genes": k, "organism": ORGANISM}
        return payload, {"cell_sentence": self._sentence(cell, k)}, (label,)

    # ------------------------------------------------------------ multi-cell

    def _multi_cell_generation(self):
        cells, k = self._group(), self._k(MULTI_CELL_GENES)
        payload = {"n_genes": k, "n_cells": len(cells), "organism": ORGANISM}
        return payload, self._cells_answer(cells, k), self._labels(cells)

    def _multi_input(self) -> tuple[list[int], int, dict]:
        cells, k = self._group(), self._k(MULTI_CELL_GENES)
        sentences = [self.data.sentences[c] for c in cells]
        return cells, k, {"cells": sentences, "n_genes": k, "organism": ORGANISM}

    def _tissue_prediction(self):
        cells, _, payload = self._multi_input()
        return payload, {"tissue": TISSUE}, self._labels(cells)

    def _multi_cell_type_prediction(self):
        cells, _, payload = self._multi_input()
        labels = self._labels(cells)
        return payload, {"cell_types": multi_cell_text(labels)}, labels

    def _tissue_generation(self):
        cells, k = self._group(), self._k(MULTI_CELL_GENES)
        payload = {"tissue": TISSUE, "n_genes": k, "n_cells": len(cells), "organism": ORGANISM}
        return payload, self._cells_answer(cells, k), self._labels(cells)

    def _multi_cell_type_generation(self):
        cells, k = self._group(), self._k(MULTI_CELL_GENES)
        labels = self._labels(cells)
        payload = {"cell_types": list(labels), "n_genes": k, "organism": ORGANISM}
        return payload, self._cells_answer(cells, k), labels

    def _cells_to_abstract(self):
        cells, _, payload = self._multi_input()
        labels = self._labels(cells)
        return payload, {"abstract": describe_cells(labels)}, labels

    def _abstract_to_cells(self):
        cells, k = self._group(), self._k(MULTI_CELL_GENES)
        # cells in the order the abstract names their types (most common first)
        order = {label: i for i, label in enumerate(dict.fromkeys(_by_count(self._labels(cells))))}
        cells = sorted(cells, key=lambda c: order[self.data.labels[c]])
        labels = self._labels(cells)
        payload = {
            "abstract": describe_cells(labels),
            "n_genes": k,
            "n_cells": len(cells),
            "organism": ORGANISM,
        }
        return payload, self._cells_answer(cells, k), labels

    # ------------------------------------------------------------ gene sets

    def _gene_set_to_genes(self):
        name, genes = self._gene_set()
        payload = {"gene_set_name": name, "organism": ORGANISM}
        return payload, {"genes": " ".join(sorted(genes))}, ()

    def _genes_to_gene_set(self):
        name, genes = self._gene_set()
        n = int(self.rng.integers(len(genes) // 2, len(genes) + 1))
        subset = [str(g) for g in self.rng.choice(genes, size=n, replace=False)]
        payload = {"genes": subset, "organism": ORGANISM}
        return payload, {"gene_set_name": name}, ()


def _by_count(labels: Sequence[str]) -> list[str]:
    """Labels ordered as `describe_cells` names them (most common first)."""
    from collections import Counter

    return [label for label, _ in Counter(labels).most_common()]
