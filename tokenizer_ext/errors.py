"""Typed exceptions raised by ``tokenizer_ext``.

Every error subclasses :class:`TokenizerExtError` and also a builtin
(``ValueError``) so that callers who only know the builtin still catch it.
"""

from __future__ import annotations


class TokenizerExtError(Exception):
    """Base class of every error raised by this package."""


class GeneVocabularyError(TokenizerExtError, ValueError):
    """The gene names cannot form a C2S vocabulary."""


class GeneCollisionError(GeneVocabularyError):
    """Distinct gene names become the same symbol after upper-casing.

    Attributes
    ----------
    collisions : dict[str, list[str]]
        Upper-cased symbol -> the original names that map to it.
    """

    def __init__(self, collisions: dict[str, list[str]]):
        self.collisions = collisions
        shown = "; ".join(f"{sym}: {names}" for sym, names in list(collisions.items())[:10])
        more = f" (+{len(collisions) - 10} more)" if len(collisions) > 10 else ""
        super().__init__(
            f"{len(collisions)} gene symbol(s) collide after upper-casing: {shown}{more}. "
            "Rename them, or pass on_collision='merge' to keep each symbol once "
            "(its strongest column wins)."
        )


class EnsemblIdError(GeneVocabularyError):
    """The gene names look like Ensembl ids rather than symbols.

    Attributes
    ----------
    examples : list[str]
        A few of the offending names.
    fraction : float
        Fraction of all names that look like Ensembl ids.
    """

    def __init__(self, examples: list[str], fraction: float):
        self.examples = examples
        self.fraction = fraction
        super().__init__(
            f"{fraction:.0%} of gene names look like Ensembl ids (e.g. {examples}). "
            "C2S models were trained on gene symbols: map the ids to symbols first, "
            "e.g. GeneVocabulary.from_adata(adata, symbols_column='feature_name') or "
            "adata.var_names = adata.var['gene_symbols']."
        )


class InvalidGeneSymbolError(GeneVocabularyError):
    """A gene name is empty or contains whitespace (sentences are split on spaces)."""


class UnknownGeneError(TokenizerExtError, KeyError):
    """Genes asked for are not in the vocabulary.

    Attributes
    ----------
    genes : list[str]
        The unknown (upper-cased) symbols.
    """

    def __init__(self, genes: list[str]):
        self.genes = genes
        super().__init__(f"{len(genes)} gene(s) not in the vocabulary: {genes[:10]}")

    def __str__(self) -> str:  # KeyError would repr() the message
        return self.args[0]


class ExpressionValueError(TokenizerExtError, ValueError):
    """Expression values that C2S ranking cannot use (negative, NaN)."""


class TemplateError(TokenizerExtError, ValueError):
    """A prompt template is malformed or a field it needs is missing."""


class TokenizationMismatchError(TokenizerExtError, AssertionError):
    """Piecewise token ids differ from tokenising the rendered text in one go."""
