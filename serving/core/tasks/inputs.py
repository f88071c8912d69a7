"""Pydantic input models of the twelve tasks.

Each model validates one request's task input (unknown keys are errors) and knows how it
fills its task's template placeholders (``template_fields``) and how many genes and cells
its answer holds (``output_size``, which sizes ``max_tokens``). Cells come either as cell
sentences (space-separated gene symbols, most expressed first) or as expression with gene
names, which is ranked into a sentence the way C2S does.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Annotated, ClassVar, Literal

from pydantic import BaseModel, ConfigDict, Field, StringConstraints, field_validator

from tokenizer_ext.cell_text import first_genes, multi_cell_text

Organism = Literal["Homo sapiens", "Mus musculus"]

#: C2S's default genes per cell (``predict_cell_types_of_data``, ``generate_cells_...``)
DEFAULT_GENES_SINGLE = 200
#: inside the model card's trained range for multi-cell prompts (100-400 genes per cell)
DEFAULT_GENES_MULTI = 100
#: inside the model card's trained range of 5-20 cells
DEFAULT_CELLS = 5
#: no 8192-token context holds more; the prompt budget check is the real bound
MAX_GENES = 8192
MAX_CELLS = 64

Label = Annotated[str, StringConstraints(strip_whitespace=True, min_length=1, max_length=200)]
GeneSymbol = Annotated[
    str, StringConstraints(strip_whitespace=True, min_length=1, max_length=64, pattern=r"^\S+$")
]
GeneCount = Annotated[int, Field(ge=1, le=MAX_GENES)]
CellCount = Annotated[int, Field(ge=1, le=MAX_CELLS)]


def _normalise_sentence(text: str) -> str:
    """Upper-case (C2S upper-cases every vocabulary) and join on single spaces."""
    words = text.upper().split()
    if not words:
        raise ValueError("a cell sentence needs at least one gene")
    return " ".join(words)


class ExpressionCell(BaseModel):
    """One cell as expression values with their gene names (any order, zeros allowed).

    Values should be log-normalised counts (``normalize_total`` then ``log1p``), as C2S
    expects; only the order of the non-zero values matters. tokenizer_ext ranks them and
    refuses negative values and names that collide after upper-casing.
    """

    model_config = ConfigDict(extra="forbid", frozen=True)

    genes: list[GeneSymbol] = Field(min_length=1, max_length=100_000)
    values: list[Annotated[float, Field(allow_inf_nan=False)]] = Field(
        min_length=1, max_length=100_000
    )

    @field_validator("values")
    @classmethod
    def _one_value_per_gene(cls, values: list[float], info) -> list[float]:
        genes = info.data.get("genes")
        if genes is not None and len(values) != len(genes):
            raise ValueError(f"{len(values)} values for {len(genes)} genes")
        return values

    def to_sentence(self) -> str:
        """Rank the non-zero genes by descending value, ties broken as C2S does."""
        from serving.core.tasks.sentences import expression_to_sentence

        return expression_to_sentence(self.genes, self.values)


Cell = Annotated[str, StringConstraints(min_length=1)] | ExpressionCell


@dataclass(frozen=True, slots=True)
class OutputSize:
    """How much an answer holds: generated genes in all cells, and the cell count."""

    genes: int = 0
    cells: int = 0


class TaskInput(BaseModel):
    """Fields every task shares; subclasses add theirs."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    #: placeholders this input fills, checked against every template it is rendered with
    placeholders: ClassVar[frozenset[str]] = frozenset({"organism"})

    organism: Organism = "Homo sapiens"

    def template_fields(self) -> dict[str, str]:
        """Values for the template's placeholders (all strings)."""
        return {"organism": self.organism}

    def output_size(self) -> OutputSize:
        """Genes and cells the answer should hold."""
        return OutputSize()

    def prompt_cells(self) -> list[list[str]] | None:
        """The genes of each cell the prompt shows (after the top-k cut), if it shows cells.

        Lets the prompt builder assemble token ids from its per-gene cache.
        """
        return None


def _to_sentence(cell: str | ExpressionCell) -> str:
    # expression is ranked once, at validation; the model then holds only sentences
    return _normalise_sentence(cell) if isinstance(cell, str) else cell.to_sentence()


# ---------------------------------------------------------------- single cell


class CellGenerationInput(TaskInput):
    """Generate one cell with no condition."""

    placeholders: ClassVar = frozenset({"organism", "num_genes"})
    n_genes: GeneCount = DEFAULT_GENES_SINGLE

    def template_fields(self) -> dict[str, str]:
        return {**super().template_fields(), "num_genes": str(self.n_genes)}

    def output_size(self) -> OutputSize:
        return OutputSize(genes=self.n_genes, cells=1)


class CellTypePredictionInput(TaskInput):
    """Predict the cell type of one cell from its first ``n_genes`` genes."""

    placeholders: ClassVar = frozenset({"organism", "num_genes", "cell_sentence"})
    cell: Cell
    n_genes: GeneCount = DEFAULT_GENES_SINGLE

    @field_validator("cell")
    @classmethod
    def _cell(cls, cell: str | ExpressionCell) -> str:
        return _to_sentence(cell)

    def template_fields(self) -> dict[str, str]:
        # C2S writes the requested k even when the cell has fewer genes
        sentence = first_genes(self.cell, self.n_genes)
        return {
            **super().template_fields(),
            "num_genes": str(self.n_genes),
            "cell_sentence": sentence,
        }

    def prompt_cells(self) -> list[list[str]]:
        return [self.cell.split(" ")[: self.n_genes]]


class CellTypeGenerationInput(CellGenerationInput):
    """Generate one cell of a given cell type."""

    placeholders: ClassVar = frozenset({"organism", "num_genes", "cell_type"})
    cell_type: Label

    def template_fields(self) -> dict[str, str]:
        return {**super().template_fields(), "cell_type": self.cell_type}


# ---------------------------------------------------------------- multi-cell


class MultiCellGenerationInput(TaskInput):
    """Generate ``n_cells`` cells with no condition."""

    placeholders: ClassVar = frozenset({"organism", "num_genes", "num_cells"})
    n_genes: GeneCount = DEFAULT_GENES_MULTI
    n_cells: CellCount = DEFAULT_CELLS

    def template_fields(self) -> dict[str, str]:
        return {
            **super().template_fields(),
            "num_genes": str(self.n_genes),
            "num_cells": str(self.n_cells),
        }

    def output_size(self) -> OutputSize:
        return OutputSize(genes=self.n_genes * self.n_cells, cells=self.n_cells)


class MultiCellInput(TaskInput):
    """Several cells, each cut to the same first ``n_genes`` genes."""

    placeholders: ClassVar = frozenset(
        {"organism", "num_genes", "num_cells", "multi_cell_sentences"}
    )
    cells: list[Cell] = Field(min_length=1, max_length=MAX_CELLS)
    n_genes: GeneCount = DEFAULT_GENES_MULTI

    @field_validator("cells")
    @classmethod
    def _cells(cls, cells: list[str | ExpressionCell]) -> list[str]:
        return [_to_sentence(c) for c in cells]

    def sentences(self) -> list[str]:
        """Each cell's sentence cut to ``n_genes`` genes."""
        return [first_genes(c, self.n_genes) for c in self.cells]

    def template_fields(self) -> dict[str, str]:
        return {
            **super().template_fields(),
            "num_genes": str(self.n_genes),
            "num_cells": str(len(self.cells)),
            "multi_cell_sentences": multi_cell_text(self.sentences()),
        }

    def prompt_cells(self) -> list[list[str]]:
        return [s.split(" ") for s in self.sentences()]


class TissuePredictionInput(MultiCellInput):
    """Predict the tissue that several cells come from."""


class MultiCellTypePredictionInput(MultiCellInput):
    """Predict the cell type of each of several cells."""

    def output_size(self) -> OutputSize:
        return OutputSize(cells=len(self.cells))


class CellsToAbstractInput(MultiCellInput):
    """Write an abstract summarising several cells."""


class TissueGenerationInput(MultiCellGenerationInput):
    """Generate ``n_cells`` cells from a given tissue."""

    placeholders: ClassVar = frozenset({"organism", "num_genes", "num_cells", "tissue"})
    tissue: Label

    def template_fields(self) -> dict[str, str]:
        return {**super().template_fields(), "tissue": self.tissue}


class AbstractToCellsInput(MultiCellGenerationInput):
    """Generate ``n_cells`` cells that an abstract describes."""

    placeholders: ClassVar = frozenset({"organism", "num_genes", "num_cells", "abstract"})
    abstract: Annotated[str, StringConstraints(strip_whitespace=True, min_length=1)] = Field(
        max_length=20_000
    )

    def template_fields(self) -> dict[str, str]:
        return {**super().template_fields(), "abstract": self.abstract}


class MultiCellTypeGenerationInput(TaskInput):
    """Generate one cell per given cell type."""

    placeholders: ClassVar = frozenset({"organism", "num_genes", "num_cells", "cell_types"})
    cell_types: list[Label] = Field(min_length=1, max_length=MAX_CELLS)
    n_genes: GeneCount = DEFAULT_GENES_MULTI

    def template_fields(self) -> dict[str, str]:
        return {
            **super().template_fields(),
            "num_genes": str(self.n_genes),
            "num_cells": str(len(self.cell_types)),
            "cell_types": multi_cell_text(self.cell_types),
        }

    def output_size(self) -> OutputSize:
        n = len(self.cell_types)
        return OutputSize(genes=self.n_genes * n, cells=n)


# ---------------------------------------------------------------- gene sets


class GeneSetToGenesInput(TaskInput):
    """List the genes of a named gene set, alphabetically."""

    placeholders: ClassVar = frozenset({"organism", "gene_set_name"})
    gene_set_name: Label
    n_genes: GeneCount = Field(
        default=100, description="the most genes the answer may list (sizes max_tokens only)"
    )

    def template_fields(self) -> dict[str, str]:
        return {**super().template_fields(), "gene_set_name": self.gene_set_name}

    def output_size(self) -> OutputSize:
        return OutputSize(genes=self.n_genes)


class GenesToGeneSetInput(TaskInput):
    """Name the gene set that some genes form (rendered in alphabetical order)."""

    placeholders: ClassVar = frozenset({"organism", "num_genes", "genes"})
    genes: list[GeneSymbol] = Field(min_length=1, max_length=MAX_GENES)

    @field_validator("genes")
    @classmethod
    def _upper_unique(cls, genes: list[str]) -> list[str]:
        # a gene set is a set: order and repeats carry nothing
        return sorted({g.upper() for g in genes})

    def template_fields(self) -> dict[str, str]:
        return {
            **super().template_fields(),
            "num_genes": str(len(self.genes)),
            "genes": " ".join(self.genes),
        }
