"""Typed results of the task parsers, one model per output kind.

Each carries a ``kind`` literal so that a union of them serialises and validates as a
discriminated union (``TaskResult``).
"""

from __future__ import annotations

from typing import Annotated, Literal

from pydantic import BaseModel, ConfigDict, Field


class _Result(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class LabelResult(_Result):
    """One label: a cell type, a tissue or a gene set name."""

    kind: Literal["label"] = "label"
    label: str


class GeneListResult(_Result):
    """A generated cell sentence after cleaning.

    Attributes
    ----------
    genes
        Vocabulary genes in generated order, each once (a repeated gene is kept at the mean
        of its positions, as C2S's post-processing does).
    n_valid
        Generated words that are genes of the vocabulary, repeats included.
    n_invalid
        Generated words that are not, which were dropped.
    """

    kind: Literal["genes"] = "genes"
    genes: list[str]
    n_valid: int
    n_invalid: int


class AlphabeticalGenesResult(_Result):
    """A gene set's genes, asked for in alphabetical order.

    ``genes`` keeps the valid genes once each, in generated order; ``is_sorted`` says
    whether the model kept the order asked for.
    """

    kind: Literal["alphabetical_genes"] = "alphabetical_genes"
    genes: list[str]
    n_valid: int
    n_invalid: int
    is_sorted: bool


class CellGenesResult(_Result):
    """Several generated cells, split on their ``Cell N:`` headers."""

    kind: Literal["cells"] = "cells"
    cells: list[GeneListResult]


class CellLabelsResult(_Result):
    """One label per cell, split on the ``Cell N:`` headers."""

    kind: Literal["cell_labels"] = "cell_labels"
    labels: list[str]


class TextResult(_Result):
    """Free text, such as an abstract."""

    kind: Literal["text"] = "text"
    text: str


TaskResult = Annotated[
    LabelResult
    | GeneListResult
    | AlphabeticalGenesResult
    | CellGenesResult
    | CellLabelsResult
    | TextResult,
    Field(discriminator="kind"),
]
