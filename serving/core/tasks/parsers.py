"""Output parsers: generated answer text -> typed result.

Every parser has the signature ``(text, vocabulary) -> result``; ``text`` is what the model
generated after the prompt (the answer, ending in C2S's ``.``), and ``vocabulary`` the
model's gene symbols (upper case) or ``None`` to accept every word as a gene.
"""

from __future__ import annotations

from collections.abc import Callable, Collection
from enum import StrEnum

from serving.core.tasks.results import (
    AlphabeticalGenesResult,
    CellGenesResult,
    CellLabelsResult,
    GeneListResult,
    LabelResult,
    TextResult,
)
from tokenizer_ext.cell_text import split_multi_cell_text

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


class _AnyWord:
    """A vocabulary that holds every word (when the model's genes are not known)."""

    def __contains__(self, word: object) -> bool:
        return True


def clean_genes(text: str, vocabulary: Vocabulary | None) -> tuple[list[str], int, int]:
    """C2S's post-processing of a generated sentence, by tokenizer_ext.

    Upper-case, split on single spaces, drop words outside the vocabulary, and keep each
    repeated gene once at the integer mean of its positions.

    Returns
    -------
    (genes, n_valid, n_invalid)
        ``n_valid`` counts vocabulary words with their repeats.
    """
    from tokenizer_ext import clean_generated_sentence

    answer = strip_answer(text)
    if not answer:
        return [], 0, 0
    n_words = len(answer.split(" "))
    cleaned = clean_generated_sentence(text, vocabulary if vocabulary is not None else _AnyWord())
    return cleaned.genes, n_words - cleaned.n_dropped, cleaned.n_dropped


def parse_label(text: str, vocabulary: Vocabulary | None = None) -> LabelResult:
    """A single label: the first line of the answer without its final ``.``."""
    lines = text.strip().splitlines()
    return LabelResult(label=strip_answer(lines[0]) if lines else "")


def parse_genes(text: str, vocabulary: Vocabulary | None = None) -> GeneListResult:
    """A cell sentence, cleaned against the vocabulary."""
    genes, n_valid, n_invalid = clean_genes(text, vocabulary)
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
        cells=[parse_genes(body, vocabulary) for body in split_multi_cell_text(text)]
    )


def parse_cell_labels(text: str, vocabulary: Vocabulary | None = None) -> CellLabelsResult:
    """One label per ``Cell N:`` block."""
    return CellLabelsResult(labels=[body for body in split_multi_cell_text(text)])


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
