"""Cell sentences -> expression: the C2S inverse transform.

C2S models expression as linear in log rank: ``expr = intercept + slope *
log10(1 + rank)`` (rank 0-based), fitted per dataset by ordinary least squares on
the non-zero entries whose ``log10(1 + rank) < 3``. C2S does not clip; negative
predictions (past rank ~2000) are clipped to 0 here unless ``clip=False``.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Sequence
from dataclasses import asdict, dataclass

import numpy as np
import scipy.sparse as sp

from tokenizer_ext.expression_source import ExpressionInput, open_expression, row_chunks
from tokenizer_ext.ranking import _check_values
from tokenizer_ext.row_order import offsets_from_lengths, ranked_entries
from tokenizer_ext.vocab import GeneVocabulary

LOG_RANK_THRESHOLD = 3.0


@dataclass(frozen=True)
class RankExpressionFit:
    """Linear model of expression on ``log10(1 + rank)``.

    Attributes
    ----------
    slope, intercept : float
        The fitted line (fit on points with ``log10(1 + rank) < threshold``).
    r_squared, pearson_r : float
        Quality of the line over all non-zero points, as C2S reports them.
    n_points : int
        Non-zero entries the line was fitted on.
    n_cells : int
        Cells used.
    threshold : float
        The log-rank cut-off of the fit.
    """

    slope: float
    intercept: float
    r_squared: float = float("nan")
    pearson_r: float = float("nan")
    n_points: int = 0
    n_cells: int = 0
    threshold: float = LOG_RANK_THRESHOLD

    def predict(self, ranks, *, clip: bool = True) -> np.ndarray:
        """Expression at 0-based ``ranks`` (clipped at 0 unless ``clip=False``)."""
        values = self.intercept + self.slope * np.log10(1 + np.asarray(ranks, dtype=np.float64))
        return np.maximum(values, 0) if clip else values

    def to_dict(self) -> dict:
        """Plain-dict form (for ``uns`` or JSON)."""
        return asdict(self)


class _Sums:
    """Running sums for least squares of y on x."""

    def __init__(self) -> None:
        self.n = 0
        self.x = self.y = self.xx = self.xy = self.yy = 0.0

    def add(self, x: np.ndarray, y: np.ndarray) -> None:
        self.n += len(x)
        self.x += float(x.sum())
        self.y += float(y.sum())
        self.xx += float(x @ x)
        self.xy += float(x @ y)
        self.yy += float(y @ y)

    def line(self) -> tuple[float, float]:
        sxx = self.xx - self.x * self.x / self.n
        sxy = self.xy - self.x * self.y / self.n
        slope = sxy / sxx
        return slope, (self.y - slope * self.x) / self.n

    def r_squared(self, slope: float, intercept: float) -> float:
        residual = (
            self.yy
            - 2 * intercept * self.y
            - 2 * slope * self.xy
            + self.n * intercept**2
            + 2 * intercept * slope * self.x
            + slope**2 * self.xx
        )
        total = self.yy - self.y**2 / self.n
        return 1 - residual / total

    def pearson(self) -> float:
        sxx = self.xx - self.x**2 / self.n
        syy = self.yy - self.y**2 / self.n
        sxy = self.xy - self.x * self.y / self.n
        return sxy / np.sqrt(sxx * syy)


def fit_rank_expression(
    data: ExpressionInput,
    *,
    layer: str | None = None,
    use_raw: bool = False,
    max_cells: int | None = None,
    seed: int = 42,
    chunk_size: int = 4096,
) -> RankExpressionFit:
    """Fit slope and intercept of expression on log rank (the C2S method).

    Tie-breaking does not matter here: whichever tied gene takes a rank, the
    (rank, value) pairs of a cell are the same.

    Parameters
    ----------
    data : anndata.AnnData or path
        Normalised, log1p expression (dense, sparse or backed).
    layer, use_raw
        Which matrix to read (see :func:`tokenizer_ext.cell_sentences`).
    max_cells : int, optional
        Fit on a random subset of this many cells (C2S samples 1024).
    seed : int
        Seed of the subset.
    chunk_size : int
        Rows read at a time.

    Returns
    -------
    RankExpressionFit
    """
    fitted, everything = _Sums(), _Sums()
    with open_expression(data, layer=layer, use_raw=use_raw) as source:
        selected = _cells_to_use(source.n_obs, max_cells, seed)
        for start, stop in row_chunks(source.n_obs, chunk_size):
            rows = selected[(selected >= start) & (selected < stop)] - start
            if len(rows) == 0:
                continue
            chunk = source.read_rows(start, stop)
            log_rank, values = _log_rank_points(chunk if len(rows) == stop - start else chunk[rows])
            everything.add(log_rank, values)
            below = log_rank < LOG_RANK_THRESHOLD
            fitted.add(log_rank[below], values[below])
    if fitted.n < 2:
        raise ValueError("need at least two non-zero entries to fit expression on rank")
    slope, intercept = fitted.line()
    return RankExpressionFit(
        slope=float(slope),
        intercept=float(intercept),
        r_squared=float(everything.r_squared(slope, intercept)),
        pearson_r=float(np.sign(slope) * everything.pearson()),
        n_points=fitted.n,
        n_cells=len(selected),
    )


def _cells_to_use(n_obs: int, max_cells: int | None, seed: int) -> np.ndarray:
    if max_cells is None or max_cells >= n_obs:
        return np.arange(n_obs)
    return np.sort(np.random.RandomState(seed).choice(n_obs, size=max_cells, replace=False))


def _log_rank_points(matrix: sp.csr_matrix) -> tuple[np.ndarray, np.ndarray]:
    """``log10(1 + rank)`` and value of every non-zero entry."""
    _check_values(matrix.data)
    order, lengths = ranked_entries(matrix.data, matrix.indptr, None)
    rank = np.arange(len(order)) - np.repeat(offsets_from_lengths(lengths)[:-1], lengths)
    return np.log10(1 + rank), matrix.data[order].astype(np.float64)


@dataclass(frozen=True)
class CleanedSentence:
    """A generated sentence reduced to vocabulary genes.

    Attributes
    ----------
    genes : list of str
        Upper-cased vocabulary genes in order, each once.
    n_dropped : int
        Words that were not vocabulary genes.
    """

    genes: list[str]
    n_dropped: int


def clean_generated_sentence(text: str, vocabulary: GeneVocabulary) -> CleanedSentence:
    """Clean one generated cell sentence as C2S's post-processing does.

    The trailing ``"."`` of the answer is stripped, words are upper-cased and
    split on single spaces, non-genes are counted and dropped, and a gene that
    appears several times is kept once at the integer mean of its positions
    (duplicates handled one gene at a time, in order of first appearance, with
    the dropped words still holding their places, as in C2S).

    Parameters
    ----------
    text : str
        The model's answer, e.g. ``"CD3D CD3E ... LTB."``.
    vocabulary : GeneVocabulary
        Genes that count as real.
    """
    words = [w if w in vocabulary else None for w in _strip_answer(text).upper().split(" ")]
    n_dropped = sum(w is None for w in words)
    placed = list(words)
    for gene, count in Counter(words).items():
        if gene is None or count < 2:
            continue
        positions = [i for i, w in enumerate(placed) if w == gene]
        mean_position = int(sum(positions) / len(positions))
        placed = [w for w in placed if w != gene]
        placed.insert(mean_position, gene)
    return CleanedSentence([w for w in placed if w is not None], n_dropped)


def _strip_answer(text: str) -> str:
    text = text.strip()
    if text.endswith("."):
        text = text[:-1].rstrip()
    return text


def reconstruct_expression(
    sentence: str | Sequence[str],
    vocabulary: GeneVocabulary,
    fit: RankExpressionFit,
    *,
    clip: bool = True,
) -> np.ndarray:
    """Expression vector (one value per vocabulary word) from a cell sentence.

    C2S semantics: the word at 0-based position ``p`` gets
    ``intercept + slope * log10(1 + p)``; words not in the vocabulary keep their
    position but set nothing; a repeated gene keeps its last value. Clean the
    sentence first (:func:`clean_generated_sentence`) for generated text.

    Returns
    -------
    numpy.ndarray
        ``float32`` of length ``len(vocabulary)``.
    """
    words = sentence.split(" ") if isinstance(sentence, str) else list(sentence)
    expression = np.zeros(len(vocabulary), dtype=np.float32)
    values = fit.predict(np.arange(len(words)), clip=clip)
    for position, word in enumerate(words):
        index = vocabulary.get(word)
        if index is not None:
            expression[index] = values[position]
    return expression
