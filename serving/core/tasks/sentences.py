"""Expression of one request cell -> cell sentence, through tokenizer_ext's ranking."""

from __future__ import annotations

from collections.abc import Sequence


def expression_to_sentence(genes: Sequence[str], values: Sequence[float]) -> str:
    """Rank one cell's non-zero genes by descending value into a cell sentence.

    Ties are broken as C2S does for a one-cell dataset (numpy seeded with 42, a shuffle,
    then a stable sort), so a cell sent alone gets the sentence C2S would give it.

    Raises
    ------
    ValueError
        If no value is positive, or the values are not valid expression.
    """
    from tokenizer_ext import sentence_from_vector

    sentence = sentence_from_vector(list(values), list(genes), tie_break="c2s", seed=42)
    if not sentence:
        raise ValueError("the cell has no non-zero expression value")
    return sentence
