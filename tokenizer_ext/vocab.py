"""Gene vocabulary: the upper-cased symbols C2S writes into cell sentences."""

from __future__ import annotations

import itertools
import re
from collections.abc import Iterable, Sequence
from typing import Literal

import numpy as np

from tokenizer_ext.errors import (
    EnsemblIdError,
    GeneCollisionError,
    InvalidGeneSymbolError,
    UnknownGeneError,
)

HUMAN = "Homo sapiens"
MOUSE = "Mus musculus"
ORGANISMS = (HUMAN, MOUSE)

# ENSG / ENSMUSG / ENST ... with an optional version suffix.
_ENSEMBL_ID = re.compile(r"^ENS[A-Z]*[GTPE]\d{6,}(\.\d+)?$", re.IGNORECASE)
_ENSEMBL_LINE = re.compile(_ENSEMBL_ID.pattern, re.IGNORECASE | re.MULTILINE)
_WHITESPACE = re.compile(r"\s")

OnCollision = Literal["error", "merge"]


def looks_like_ensembl_id(name: str) -> bool:
    """Return whether ``name`` looks like an Ensembl id (``ENSG00000141510``)."""
    return bool(_ENSEMBL_ID.match(name))


def ensembl_mask(names: Sequence[str]) -> np.ndarray:
    """Per name (none holding whitespace): whether it looks like an Ensembl id; one
    search over all names when none does, as in a dataset of symbols."""
    if not _ENSEMBL_LINE.search("\n".join(names)):
        return np.zeros(len(names), dtype=bool)
    return np.fromiter(map(looks_like_ensembl_id, names), dtype=bool, count=len(names))


def guess_organism(names: Iterable[str]) -> str:
    """Guess the organism from symbol casing.

    Mouse symbols are title case (``Cd3e``); human symbols are upper case (``CD3E``).

    Parameters
    ----------
    names : iterable of str
        Gene symbols as stored in the data (before upper-casing).

    Returns
    -------
    str
        ``"Mus musculus"`` when most symbols contain lower-case letters, else
        ``"Homo sapiens"``.
    """
    names = list(names)
    if not names:
        return HUMAN
    lower = sum(n.upper() != n for n in names)  # one C call per name, not one per letter
    return MOUSE if lower > len(names) / 2 else HUMAN


class GeneVocabulary:
    """Upper-cased gene symbols in column order, as C2S builds them.

    Parameters
    ----------
    names : sequence of str
        One name per expression column (``adata.var_names``).
    on_collision : {"error", "merge"}
        What to do when names collide after upper-casing (``Cd3e`` and ``CD3E``).
        ``"error"`` raises :class:`GeneCollisionError` listing them; ``"merge"`` keeps
        one word for all colliding columns, ranked by its strongest column.
    ensembl_threshold : float
        Raise :class:`EnsemblIdError` when at least this fraction of names look like
        Ensembl ids.
    organism : str, optional
        ``"Homo sapiens"`` or ``"Mus musculus"``; guessed from symbol casing if omitted.

    Attributes
    ----------
    symbols : tuple of str
        Unique upper-cased symbols (the words), in order of first column.
    column_to_word : numpy.ndarray
        ``int32`` word index for every input column.
    organism : str
        The organism the symbols belong to.
    """

    def __init__(
        self,
        names: Sequence[str],
        *,
        on_collision: OnCollision = "error",
        ensembl_threshold: float = 0.5,
        organism: str | None = None,
    ):
        names = [str(n) for n in names]
        _check_symbols(names, ensembl_threshold)
        upper = [n.upper() for n in names]
        collisions = _collisions(names, upper)
        if collisions and on_collision == "error":
            raise GeneCollisionError(collisions)
        if on_collision not in ("error", "merge"):
            raise ValueError(f"on_collision must be 'error' or 'merge', got {on_collision!r}")
        # words numbered by first column
        self._index: dict[str, int] = dict(zip(dict.fromkeys(upper), itertools.count()))
        self.symbols: tuple[str, ...] = tuple(self._index)
        self.column_to_word = np.fromiter(
            map(self._index.__getitem__, upper), dtype=np.int32, count=len(upper)
        )
        self.collisions = collisions
        if organism is not None and organism not in ORGANISMS:
            raise ValueError(f"organism must be one of {ORGANISMS}, got {organism!r}")
        self.organism = organism or guess_organism(names)

    @classmethod
    def from_adata(
        cls,
        adata,
        *,
        use_raw: bool = False,
        symbols_column: str | None = None,
        **kwargs,
    ) -> GeneVocabulary:
        """Build the vocabulary of an AnnData's columns.

        Parameters
        ----------
        adata : anndata.AnnData
            In memory or backed.
        use_raw : bool
            Use ``adata.raw.var`` instead of ``adata.var``.
        symbols_column : str, optional
            A ``var`` column holding symbols, when ``var_names`` are Ensembl ids.
        **kwargs
            Passed to :class:`GeneVocabulary`.
        """
        var = adata.raw.var if use_raw else adata.var
        names = var[symbols_column] if symbols_column else var.index
        return cls(list(names.astype(str)), **kwargs)

    @property
    def n_columns(self) -> int:
        """Number of expression columns the vocabulary was built from."""
        return len(self.column_to_word)

    def __len__(self) -> int:
        return len(self.symbols)

    def __iter__(self):
        return iter(self.symbols)

    def __getitem__(self, word: int) -> str:
        return self.symbols[word]

    def __contains__(self, symbol: object) -> bool:
        return isinstance(symbol, str) and symbol.upper() in self._index

    def __repr__(self) -> str:
        return f"GeneVocabulary({len(self)} symbols, organism={self.organism!r})"

    def index(self, symbol: str) -> int:
        """Word index of a symbol (case-insensitive); raises :class:`UnknownGeneError`."""
        try:
            return self._index[symbol.upper()]
        except KeyError:
            raise UnknownGeneError([symbol.upper()]) from None

    def get(self, symbol: str, default: int | None = None) -> int | None:
        """Word index of an upper-cased symbol, or ``default``."""
        return self._index.get(symbol, default)

    def encode(self, symbols: Iterable[str]) -> np.ndarray:
        """Word indices of symbols (case-insensitive).

        Raises
        ------
        UnknownGeneError
            Listing every symbol not in the vocabulary.
        """
        upper = [s.upper() for s in symbols]
        missing = [s for s in upper if s not in self._index]
        if missing:
            raise UnknownGeneError(missing)
        return np.fromiter((self._index[s] for s in upper), dtype=np.int32, count=len(upper))

    def encode_upper(self, symbols: Sequence[str]) -> np.ndarray:
        """Word indices of symbols already upper-cased (a cell sentence's words), looked up
        without a Python loop; raises :class:`UnknownGeneError` like :meth:`encode`."""
        try:
            return np.fromiter(
                map(self._index.__getitem__, symbols), dtype=np.int32, count=len(symbols)
            )
        except KeyError:
            return self.encode(symbols)  # raises, naming every unknown symbol

    def unknown_upper(self, symbols: Iterable[str]) -> list[str]:
        """The upper-cased ``symbols`` that are not words, in order (a C-level filter)."""
        return list(itertools.filterfalse(self._index.__contains__, symbols))

    def decode(self, words: Iterable[int]) -> list[str]:
        """Symbols of word indices."""
        return [self.symbols[w] for w in words]

    def add_symbols(self, symbols: Iterable[str]) -> list[str]:
        """Append words for the upper-cased ``symbols`` not yet known; returns them in order.

        The new words map to no input column (:attr:`column_to_word` is unchanged): they are
        genes of a dataset a prompt cache meets, outside the model's own gene list.
        """
        added = [s for s in dict.fromkeys(str(s).upper() for s in symbols) if s not in self._index]
        bad = [s for s in added if not s or _WHITESPACE.search(s)]
        if bad:
            raise InvalidGeneSymbolError(f"gene names are empty or contain whitespace: {bad[:10]}")
        for symbol in added:
            self._index[symbol] = len(self._index)
        self.symbols = self.symbols + tuple(added)
        return added


def _check_symbols(names: list[str], ensembl_threshold: float) -> None:
    # Names hold no whitespace exactly when their concatenation holds none: one search.
    if all(names) and not _WHITESPACE.search("".join(names)):
        bad = []
    else:
        bad = [n for n in names if not n or _WHITESPACE.search(n)]
    if bad:
        raise InvalidGeneSymbolError(
            f"{len(bad)} gene name(s) are empty or contain whitespace (C2S splits "
            f"sentences on spaces): {bad[:10]}"
        )
    ensembl = [n for n, flagged in zip(names, ensembl_mask(names), strict=True) if flagged]
    if names and ensembl and len(ensembl) / len(names) >= ensembl_threshold:
        raise EnsemblIdError(ensembl[:5], len(ensembl) / len(names))


def _collisions(names: list[str], upper: list[str]) -> dict[str, list[str]]:
    if len(set(upper)) == len(upper):
        return {}
    seen: dict[str, list[str]] = {}
    for name, symbol in zip(names, upper, strict=True):
        seen.setdefault(symbol, []).append(name)
    return {symbol: group for symbol, group in seen.items() if len(group) > 1}
