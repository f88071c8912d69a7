"""What counts as a valid output, and a correct one, for each task of the demo."""

from __future__ import annotations

from dataclasses import dataclass

from models.training.dataset import TISSUE
from models.training.examples import Example
from serving.core.tasks.results import (
    AlphabeticalGenesResult,
    CellGenesResult,
    CellLabelsResult,
    GeneListResult,
    LabelResult,
    TextResult,
)


@dataclass(frozen=True)
class KnownLabels:
    """The labels the demo was trained on."""

    cell_types: frozenset[str]
    gene_sets: frozenset[str]

    def for_task(self, task: str) -> frozenset[str]:
        if task == "tissue_prediction":
            return frozenset({TISSUE})
        if task == "genes_to_gene_set":
            return self.gene_sets
        return self.cell_types


def clean_gene_list(result: GeneListResult) -> bool:
    """At least one gene and every word a vocabulary gene.

    Repeats are allowed: C2S's post-processing merges them (`score` reports how many).
    """
    return bool(result.genes) and result.n_invalid == 0


def distinct_share(result: GeneListResult) -> float:
    """Share of the generated vocabulary genes that are not repeats."""
    return len(result.genes) / result.n_valid if result.n_valid else 0.0


def is_valid(example: Example, result: object, known: KnownLabels) -> bool:
    """Whether ``result`` is a well-formed answer of the kind ``example``'s task asks for.

    Labels must be ones the model was trained on; gene lists must hold only vocabulary
    genes; multi-cell answers must have one block per requested cell;
    alphabetical lists must be sorted; free text must be non-empty.
    """
    match result:
        case LabelResult(label=label):
            return label in known.for_task(example.task)
        case GeneListResult():
            return clean_gene_list(result)
        case CellGenesResult(cells=cells):
            return len(cells) == _cells_asked(example) and all(map(clean_gene_list, cells))
        case CellLabelsResult(labels=labels):
            return len(labels) == len(example.payload["cells"]) and all(
                label in known.cell_types for label in labels
            )
        case AlphabeticalGenesResult():
            return bool(result.genes) and result.n_invalid == 0 and result.is_sorted
        case TextResult(text=text):
            return bool(text.strip())
    return False


def score(example: Example, result: object) -> float | None:
    """Task accuracy where the task has a right answer, else ``None``.

    Labels: exact match. Per-cell labels: fraction of cells right. Gene set genes: Jaccard
    overlap with the true set. Generated cells: the share of distinct genes. Abstracts:
    exact match with the reference abstract (which states the cells' composition).
    """
    match result:
        case GeneListResult():
            return distinct_share(result)
        case CellGenesResult(cells=cells):
            return sum(map(distinct_share, cells)) / len(cells) if cells else 0.0
        case LabelResult(label=label):
            truth = next(iter(example.answer.values()))
            return float(label == truth)
        case CellLabelsResult(labels=labels):
            truth = example.labels
            right = sum(a == b for a, b in zip(labels, truth, strict=False))
            return right / len(truth)
        case AlphabeticalGenesResult(genes=genes):
            truth = set(example.answer["genes"].split())
            return len(truth & set(genes)) / len(truth | set(genes))
        case TextResult(text=text):
            return float(text == example.answer["abstract"])
    return None


def _cells_asked(example: Example) -> int:
    payload = example.payload
    if "n_cells" in payload:
        return payload["n_cells"]
    return len(payload["cell_types"])
