"""Output parsers: generated answer text -> typed result.

Every parser has the signature ``(text, vocabulary) -> result``; ``text`` is what the model
generated after the prompt (the answer, ending in C2S's ``.``), and ``vocabulary`` the
model's gene symbols (upper case) or ``None`` to accept every word as a gene.
"""

from __future__ import annotations

from collections.abc import Callable, Collection
from enum import StrEnum

from serving.tasks.cell_text import split_cell_blocks
from serving.tasks.results import (
    AlphabeticalGenesResult,
    CellGenesResult,
    CellLabelsResult,
    GeneListResult,
    LabelResult,
    TextResult,
)

Vocabulary = Collection[str]
Parser = Callable[[str, Vocabulary | None], object]


class OutputKind(StrEnum):
    """What a task's answer is, which picks its parser."""

    LABEL = "label"
    GENES = "genes"
    ALPHABETICAL_GENES = "alphabetical_genes"
    CELLS = "cells"
    CELL_LABELS = "cell_labels"
    TEXT = "text"


def strip_answer(text: str) -> str:
    """Drop surrounding white space and the one ``.`` every C2S answer ends with."""
    text = text.strip()
    return text[:-1].rstrip() if text.endswith(".") else text


def clean_genes(words: list[str], vocabulary: Vocabulary | None) -> tuple[list[str], int, int]:
    """C2S's post-processing of a generated sentence.

    Upper-case; mark words outside the vocabulary; keep each repeated gene once at the
    integer mean of its positions (marked words still hold their places while the means
    are taken, one gene at a time, as ``post_process_generated_cell_sentences`` in
    cell2sentence 1.2.0 does); then drop the marked words.

    Returns
    -------
    (genes, n_valid, n_invalid)
    """
    upper = [w.upper() for w in words]
    marked = [w if vocabulary is None or w in vocabulary else None for w in upper]
    n_invalid = marked.count(None)
    for gene in dict.fromkeys(w for w in marked if w is not None):
        positions = [i for i, g in enumerate(marked) if g == gene]
        if len(positions) > 1:
            marked = [g for g in marked if g != gene]
            marked.insert(sum(positions) // len(positions), gene)
    genes = [g for g in marked if g is not None]
    return genes, len(upper) - n_invalid, n_invalid


def parse_label(text: str, vocabulary: Vocabulary | None = None) -> LabelResult:
    """A single label: the first line of the answer without its final ``.``."""
    lines = text.strip().splitlines()
    return LabelResult(label=strip_answer(lines[0]) if lines else "")


def parse_genes(text: str, vocabulary: Vocabulary | None = None) -> GeneListResult:
    """A cell sentence, cleaned against the vocabulary."""
    genes, n_valid, n_invalid = clean_genes(strip_answer(text).split(), vocabulary)
    return GeneListResult(genes=genes, n_valid=n_valid, n_invalid=n_invalid)


def parse_alphabetical_genes(
    text: str, vocabulary: Vocabulary | None = None
) -> AlphabeticalGenesResult:
    """A gene list asked for in alphabetical order; reports whether it is."""
    words = [w.upper() for w in strip_answer(text).split()]
    valid = words if vocabulary is None else [w for w in words if w in vocabulary]
    genes = list(dict.fromkeys(valid))
    return AlphabeticalGenesResult(
        genes=genes,
        n_valid=len(valid),
        n_invalid=len(words) - len(valid),
        is_sorted=genes == sorted(genes),
    )


def parse_cells(text: str, vocabulary: Vocabulary | None = None) -> CellGenesResult:
    """Several cell sentences, split on ``Cell N:`` and cleaned one by one."""
    return CellGenesResult(
        cells=[parse_genes(body, vocabulary) for _, body in split_cell_blocks(text)]
    )


def parse_cell_labels(text: str, vocabulary: Vocabulary | None = None) -> CellLabelsResult:
    """One label per ``Cell N:`` block."""
    return CellLabelsResult(labels=[body for _, body in split_cell_blocks(text)])


def parse_text(text: str, vocabulary: Vocabulary | None = None) -> TextResult:
    """Free text without its final ``.``."""
    return TextResult(text=strip_answer(text))


PARSERS: dict[OutputKind, Parser] = {
    OutputKind.LABEL: parse_label,
    OutputKind.GENES: parse_genes,
    OutputKind.ALPHABETICAL_GENES: parse_alphabetical_genes,
    OutputKind.CELLS: parse_cells,
    OutputKind.CELL_LABELS: parse_cell_labels,
    OutputKind.TEXT: parse_text,
}
