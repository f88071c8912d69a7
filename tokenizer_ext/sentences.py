"""Expression -> cell sentences: the text C2S models were trained on.

A cell sentence lists a cell's expressed genes (upper-cased symbols) by
descending expression, separated by single spaces. Top-k is applied at prompt
time, so sentences here hold every expressed gene unless ``top_k`` is given.
"""

from __future__ import annotations

import itertools
from collections.abc import Sequence

import numpy as np
import scipy.sparse as sp

from tokenizer_ext.expression_source import DEFAULT_CHUNK_SIZE, ExpressionInput, iter_ranked_chunks
from tokenizer_ext.ranking import RankedCells, TieBreak, rank_csr
from tokenizer_ext.vocab import GeneVocabulary


def ranked_to_sentences(
    ranked: RankedCells, vocabulary: GeneVocabulary, *, top_k: int | None = None
) -> list[str]:
    """Join each cell's symbols with single spaces."""
    symbols = np.asarray(vocabulary.symbols, dtype=object)
    ranked = ranked.truncate(top_k)
    words, offsets = ranked.words, ranked.offsets.tolist()
    return [" ".join(symbols[words[a:b]].tolist()) for a, b in itertools.pairwise(offsets)]


def cell_sentences(
    data: ExpressionInput,
    *,
    tie_break: TieBreak = "c2s",
    seed: int = 42,
    top_k: int | None = None,
    layer: str | None = None,
    use_raw: bool = False,
    vocabulary: GeneVocabulary | None = None,
    chunk_size: int = DEFAULT_CHUNK_SIZE,
) -> list[str]:
    """Cell sentences of every cell of an AnnData or ``.h5ad`` file.

    With the defaults the output is byte-identical to
    ``cell2sentence.utils.generate_sentences(adata, vocab, random_state=42)``,
    except that explicitly stored zeros are left out (C2S appends them last).

    Parameters
    ----------
    data : anndata.AnnData or path
        Cells x genes, non-negative (normalised, log1p) expression.
    tie_break, seed, top_k, layer, use_raw, vocabulary, chunk_size
        See :func:`tokenizer_ext.expression_source.iter_ranked_chunks`.

    Returns
    -------
    list of str
        One sentence per cell, in row order.

    Examples
    --------
    >>> sentences = cell_sentences(adata, use_raw=True, top_k=200)  # doctest: +SKIP
    """
    sentences: list[str] = []
    for chunk in iter_ranked_chunks(
        data,
        vocabulary=vocabulary,
        tie_break=tie_break,
        seed=seed,
        top_k=top_k,
        layer=layer,
        use_raw=use_raw,
        chunk_size=chunk_size,
    ):
        sentences.extend(ranked_to_sentences(chunk.ranked, chunk.vocabulary))
    return sentences


def rank_vector(
    values,
    genes: Sequence[str] | GeneVocabulary,
    *,
    tie_break: TieBreak = "c2s",
    seed: int = 42,
    top_k: int | None = None,
) -> np.ndarray:
    """Word indices of one cell's expressed genes, highest first.

    Parameters
    ----------
    values : array-like or scipy sparse row
        Expression of one cell, one value per gene.
    genes : sequence of str or GeneVocabulary
        Gene names in the order of ``values``.
    tie_break, seed, top_k
        As in :func:`cell_sentences`; ``"c2s"`` equals C2S on a one-cell AnnData.
    """
    vocab = genes if isinstance(genes, GeneVocabulary) else GeneVocabulary(list(genes))
    row = sp.csr_matrix(values if sp.issparse(values) else np.asarray(values).reshape(1, -1))
    if row.shape != (1, vocab.n_columns):
        raise ValueError(f"expected one row of {vocab.n_columns} values, got shape {row.shape}")
    rng = np.random.RandomState(seed) if tie_break == "c2s" else None
    return rank_csr(row, vocab.column_to_word, tie_break=tie_break, rng=rng, top_k=top_k).row(0)


def sentence_from_vector(
    values,
    genes: Sequence[str] | GeneVocabulary,
    *,
    tie_break: TieBreak = "c2s",
    seed: int = 42,
    top_k: int | None = None,
) -> str:
    """Cell sentence of one expression vector; arguments as :func:`rank_vector`."""
    vocab = genes if isinstance(genes, GeneVocabulary) else GeneVocabulary(list(genes))
    words = rank_vector(values, vocab, tie_break=tie_break, seed=seed, top_k=top_k)
    return " ".join(vocab.decode(words.tolist()))
