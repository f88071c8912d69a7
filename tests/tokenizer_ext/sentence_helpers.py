"""Conveniences over `tokenizer_ext` that only the tests use (kept out of its public API)."""

from __future__ import annotations

from collections.abc import Iterator, Mapping

import numpy as np

from tokenizer_ext import RankedCells, iter_ranked_chunks, ranked_to_sentences
from tokenizer_ext.expression_source import ExpressionInput
from tokenizer_ext.ranking import TieBreak
from tokenizer_ext.sentences import sentence_from_vector


def iter_cell_sentences(data: ExpressionInput, **kwargs) -> Iterator[tuple[np.ndarray, list[str]]]:
    """Yield ``(obs_names, sentences)`` per row chunk; arguments as `iter_ranked_chunks`."""
    for chunk in iter_ranked_chunks(data, **kwargs):
        yield chunk.obs_names, ranked_to_sentences(chunk.ranked, chunk.vocabulary)


def rank_cells(data: ExpressionInput, **kwargs) -> RankedCells:
    """All cells ranked at once; arguments as `iter_ranked_chunks`."""
    return RankedCells.concatenate([c.ranked for c in iter_ranked_chunks(data, **kwargs)])


def sentence_from_mapping(
    expression: Mapping[str, float],
    *,
    tie_break: TieBreak = "c2s",
    seed: int = 42,
    top_k: int | None = None,
) -> str:
    """Cell sentence of a ``{gene: value}`` mapping (insertion order is column order)."""
    genes = list(expression)
    values = np.fromiter(expression.values(), dtype=np.float64, count=len(genes))
    return sentence_from_vector(values, genes, tie_break=tie_break, seed=seed, top_k=top_k)
