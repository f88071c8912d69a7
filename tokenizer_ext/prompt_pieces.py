"""The pieces prompt ids are assembled from, and the flat batch they are gathered into.

:mod:`tokenizer_ext.prompt_ids` cuts a rendered template at split points into gaps of
fixed text and genes; this module holds how a gap is cut (`layout_gap`), the table of
every piece's ids that a batch gathers from (`SegmentTable`), and the batch itself
(`PromptBatch`).
"""

from __future__ import annotations

import itertools
from collections.abc import Sequence
from dataclasses import dataclass, field
from functools import lru_cache

import numpy as np


@dataclass(frozen=True)
class PromptBatch:
    """Token ids of many prompts, stored flat.

    Attributes
    ----------
    ids : numpy.ndarray
        ``int32`` ids of all prompts, concatenated.
    offsets : numpy.ndarray
        ``int64`` boundaries (``len + 1``) into ``ids``.
    """

    ids: np.ndarray
    offsets: np.ndarray

    def __len__(self) -> int:
        return len(self.offsets) - 1

    def __getitem__(self, i: int) -> list[int]:
        return self.ids[self.offsets[i] : self.offsets[i + 1]].tolist()

    @property
    def n_tokens(self) -> np.ndarray:
        """Token count of each prompt."""
        return np.diff(self.offsets)

    def to_tuples(self) -> list[tuple[int, ...]]:
        """Every prompt's ids as a tuple of Python ints (what an engine's prompt takes)."""
        # Fresh ints from each slice's tolist: with their freeing counted, about 20%
        # cheaper than gathering shared int objects (scattered across the heap).
        ids, bounds = self.ids, self.offsets.tolist()
        return [tuple(ids[a:b].tolist()) for a, b in itertools.pairwise(bounds)]


@dataclass(frozen=True)
class GapLayout:
    """A fixed-text gap cut at its first and last split points."""

    head: str  # glued after the last gene of the run before
    middle: str  # tokenised on its own
    tail: str  # glued before the first gene of the run after
    splittable: bool  # False: a gap between two runs without a split point


@lru_cache(maxsize=4096)
def layout_gap(gap: str, run_before: bool, run_after: bool) -> GapLayout:
    points = _split_points(gap, run_before, run_after)
    if run_before and run_after and not points:
        return GapLayout(gap, "", "", splittable=False)
    start = (points[0] if points else len(gap)) if run_before else 0
    end = (points[-1] if points else 0) if run_after else len(gap)
    return GapLayout(gap[:start], gap[start:end], gap[end:], splittable=True)


def _split_points(gap: str, run_before: bool, run_after: bool) -> list[int]:
    """Indices of single spaces whose neighbours (genes included) are not whitespace."""
    points = []
    last = len(gap) - 1
    for i, ch in enumerate(gap):
        if ch != " ":
            continue
        left_ok = (i > 0 and not gap[i - 1].isspace()) or (i == 0 and run_before)
        right_ok = (i < last and not gap[i + 1].isspace()) or (i == last and run_after)
        if left_ok and right_ok:
            points.append(i)
    return points


@dataclass
class SegmentTable:
    """Token ids of genes (segments ``0..V-1``) plus cached text pieces (``V..``).

    Pieces added since the last `arrays` call are appended to the flat arrays then, so a
    batch that meets a few new boundary pieces costs those pieces, not the whole table.
    """

    gene_ids: np.ndarray
    gene_offsets: np.ndarray
    extra_index: dict[str, int] = field(default_factory=dict)
    extra_ids: list[np.ndarray] = field(default_factory=list)
    _flat: np.ndarray | None = None
    _starts: np.ndarray | None = None
    _lengths: np.ndarray | None = None
    _built_extras: int = 0

    def arrays(self) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """``(flat ids, start, length)`` of every segment."""
        if self._flat is None:
            self._flat = self.gene_ids.astype(np.int32)
            self._lengths = np.diff(self.gene_offsets).astype(np.int64)
            self._starts = self.gene_offsets[:-1].astype(np.int64)
        new = self.extra_ids[self._built_extras :]
        if new:
            lengths = np.fromiter((len(a) for a in new), np.int64, len(new))
            starts = len(self._flat) + np.cumsum(lengths) - lengths
            self._flat = np.concatenate([self._flat, *new])
            self._starts = np.concatenate([self._starts, starts])
            self._lengths = np.concatenate([self._lengths, lengths])
            self._built_extras = len(self.extra_ids)
        return self._flat, self._starts, self._lengths

    def add(self, text: str, ids: Sequence[int]) -> int:
        seg = self.extra_index.get(text)
        if seg is None:
            seg = len(self.gene_offsets) - 1 + len(self.extra_ids)
            self.extra_index[text] = seg
            self.extra_ids.append(np.asarray(ids, dtype=np.int32))
        return seg
