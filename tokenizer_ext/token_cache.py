"""Per-gene token ids, so prompts are assembled without re-tokenising genes.

Byte-level BPE tokenizers of the GPT-2 family (GPT-NeoX/Pythia included) split
text before ``" X"`` whenever the preceding character is not whitespace. Genes in
a cell sentence are separated by single spaces, so the ids of ``" " + GENE`` do
not depend on the neighbouring genes and a sentence's ids are their
concatenation. :mod:`tokenizer_ext.prompt_ids` relies on this and checks it.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence

import numpy as np

from tokenizer_ext.text_encoder import TextEncoder, TokenizerLike
from tokenizer_ext.vocab import GeneVocabulary

#: genes tokenised per call when a dataset adds its own
ENCODE_SLICE = 2048


class GeneTokenCache:
    """Token ids of ``" " + SYMBOL`` for every word of a vocabulary.

    Parameters
    ----------
    tokenizer : tokenizers.Tokenizer, TextEncoder, path or transformers tokenizer
        The model's tokenizer (Pythia or a project "demo" tokenizer).
    vocabulary : GeneVocabulary or sequence of str
        The genes to cache.

    Attributes
    ----------
    encoder : TextEncoder
    vocabulary : GeneVocabulary
    token_ids : numpy.ndarray
        ``int32`` ids of all genes, concatenated in word order.
    token_offsets : numpy.ndarray
        ``int64`` boundaries (``len(vocabulary) + 1``) into ``token_ids``.
    """

    def __init__(self, tokenizer: TokenizerLike, vocabulary: GeneVocabulary | Sequence[str]):
        self.encoder = TextEncoder.load(tokenizer)
        self.vocabulary = (
            vocabulary if isinstance(vocabulary, GeneVocabulary) else GeneVocabulary(vocabulary)
        )
        self._gene_ids: list[tuple[int, ...]] = []
        self.token_offsets = np.zeros(1, dtype=np.int64)
        self.token_ids = np.zeros(0, dtype=np.int32)
        self._append_ids(self.vocabulary.symbols)

    def add_genes(self, symbols: Iterable[str]) -> int:
        """Cache genes outside the vocabulary (each tokenised once); returns how many were new.

        They become new words of :attr:`vocabulary`, so prompts holding them are assembled
        from pieces like any other; a dataset wider than the model's gene list is then
        tokenised once per process, not once per cell.
        """
        added = self.vocabulary.add_symbols(symbols)
        self._append_ids(added)
        return len(added)

    def _append_ids(self, symbols: Sequence[str]) -> None:
        # in slices: one batch of a 50k-gene dataset holds tens of MB of Encodings at once
        per_gene = [
            tuple(ids)
            for start in range(0, len(symbols), ENCODE_SLICE)
            for ids in self.encoder.encode_batch(
                [" " + s for s in symbols[start : start + ENCODE_SLICE]]
            )
        ]
        self._gene_ids.extend(per_gene)
        counts = np.fromiter((len(t) for t in per_gene), dtype=np.int64, count=len(per_gene))
        ends = self.token_offsets[-1] + np.cumsum(counts)
        self.token_offsets = np.concatenate([self.token_offsets, ends])
        new_ids = np.fromiter(
            (i for t in per_gene for i in t), dtype=np.int32, count=int(counts.sum())
        )
        self.token_ids = np.concatenate([self.token_ids, new_ids])

    def __len__(self) -> int:
        return len(self._gene_ids)

    @property
    def token_counts(self) -> np.ndarray:
        """Tokens of ``" " + SYMBOL`` for each word."""
        return np.diff(self.token_offsets)

    def gene_ids(self, gene: int | str) -> tuple[int, ...]:
        """Ids of ``" " + SYMBOL`` for a word index or a symbol (case-insensitive)."""
        word = gene if isinstance(gene, int | np.integer) else self.vocabulary.index(gene)
        return self._gene_ids[word]

    def sentence_ids(self, genes: Iterable[int] | Iterable[str]) -> list[int]:
        """Ids of ``" G1 G2 ... Gn"`` (every gene with its leading space).

        Parameters
        ----------
        genes : iterable of int or str
            Word indices or symbols, in sentence order.
        """
        words = _as_words(self.vocabulary, genes)
        gene_ids = self._gene_ids
        return [i for w in words for i in gene_ids[w]]


def _as_words(vocabulary: GeneVocabulary, genes) -> list[int]:
    if isinstance(genes, np.ndarray) and genes.dtype.kind in "iu":
        return genes.tolist()
    genes = list(genes)
    if genes and isinstance(genes[0], str):
        return vocabulary.encode(genes).tolist()
    return [int(g) for g in genes]
