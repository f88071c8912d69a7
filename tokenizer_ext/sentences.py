"""Expression -> cell sentences: the text C2S models were trained on.

A cell sentence lists a cell's expressed genes (upper-cased symbols) by
descending expression, separated by single spaces. Top-k is applied at prompt
time, so sentences here hold every expressed gene unless ``top_k`` is given.
"""

from __future__ import annotations

import itertools
from collections.abc import Iterator, Mapping, Sequence
from dataclasses import dataclass

import numpy as np
import scipy.sparse as sp

from tokenizer_ext.expression_source import ExpressionInput, open_expression, row_chunks
from tokenizer_ext.ranking import RankedCells, TieBreak, rank_csr
from tokenizer_ext.vocab import GeneVocabulary

DEFAULT_CHUNK_SIZE = 4096


@dataclass(frozen=True)
class RankedChunk:
    """One row chunk of a matrix, ranked.

    Attributes
    ----------
    start, stop : int
        Row range of the chunk in the whole matrix.
    obs_names : numpy.ndarray
        Names of the chunk's cells.
    ranked : RankedCells
        Word indices of each cell, highest expression first.
    vocabulary : GeneVocabulary
        Vocabulary the word indices refer to.
    """

    start: int
    stop: int
    obs_names: np.ndarray
    ranked: RankedCells
    vocabulary: GeneVocabulary

    def sentences(self, top_k: int | None = None) -> list[str]:
        """The chunk's cell sentences, each cut to ``top_k`` genes."""
        return ranked_to_sentences(self.ranked, self.vocabulary, top_k=top_k)


def ranked_to_sentences(
    ranked: RankedCells, vocabulary: GeneVocabulary, *, top_k: int | None = None
) -> list[str]:
    """Join each cell's symbols with single spaces."""
    symbols = np.asarray(vocabulary.symbols, dtype=object)
    ranked = ranked.truncate(top_k)
    words, offsets = ranked.words, ranked.offsets.tolist()
    return [" ".join(symbols[words[a:b]].tolist()) for a, b in itertools.pairwise(offsets)]


def iter_ranked_chunks(
    data: ExpressionInput,
    *,
    vocabulary: GeneVocabulary | None = None,
    tie_break: TieBreak = "c2s",
    seed: int = 42,
    top_k: int | None = None,
    layer: str | None = None,
    use_raw: bool = False,
    chunk_size: int = DEFAULT_CHUNK_SIZE,
) -> Iterator[RankedChunk]:
    """Rank the cells of an AnnData or ``.h5ad`` file chunk by chunk.

    Only ``chunk_size`` rows are in memory at a time; with ``tie_break="c2s"`` one
    RNG runs through all chunks, so the result does not depend on ``chunk_size``.

    Parameters
    ----------
    data : anndata.AnnData or path
        In-memory (dense, CSR, CSC) or backed AnnData, or an ``.h5ad`` path.
    vocabulary : GeneVocabulary, optional
        Defaults to ``GeneVocabulary(var_names)`` of the chosen matrix.
    tie_break : {"c2s", "stable"}
        ``"c2s"`` is byte-identical to ``cell2sentence.utils.generate_sentences``;
        ``"stable"`` is faster and breaks ties by column order.
    seed : int
        Seed of the ``"c2s"`` tie-break (C2S's ``random_state``).
    top_k : int, optional
        Keep only the first ``top_k`` genes of each cell.
    layer : str, optional
        Use this layer instead of ``X``.
    use_raw : bool
        Use ``.raw.X`` and ``.raw.var_names``.
    chunk_size : int
        Rows read and ranked at a time.

    Yields
    ------
    RankedChunk
    """
    with open_expression(data, layer=layer, use_raw=use_raw) as source:
        vocab = vocabulary if vocabulary is not None else GeneVocabulary(source.var_names)
        if vocab.n_columns != len(source.var_names):
            raise ValueError(
                f"vocabulary has {vocab.n_columns} columns, matrix has {len(source.var_names)}"
            )
        rng = np.random.RandomState(seed) if tie_break == "c2s" else None
        for start, stop in row_chunks(source.n_obs, chunk_size):
            matrix = source.read_rows(start, stop)
            ranked = rank_csr(
                matrix, vocab.column_to_word, tie_break=tie_break, rng=rng, top_k=top_k
            )
            yield RankedChunk(start, stop, source.obs_names[start:stop], ranked, vocab)


def iter_cell_sentences(data: ExpressionInput, **kwargs) -> Iterator[tuple[np.ndarray, list[str]]]:
    """Yield ``(obs_names, sentences)`` per row chunk; arguments as :func:`iter_ranked_chunks`."""
    for chunk in iter_ranked_chunks(data, **kwargs):
        yield chunk.obs_names, chunk.sentences()


def rank_cells(data: ExpressionInput, **kwargs) -> RankedCells:
    """All cells ranked at once; arguments as :func:`iter_ranked_chunks`."""
    return RankedCells.concatenate([c.ranked for c in iter_ranked_chunks(data, **kwargs)])


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
        See :func:`iter_ranked_chunks`.

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
        sentences.extend(chunk.sentences())
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
