"""Predictions against reference labels: accuracy, per-class recall, confusion matrix."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np

#: the confusion matrix's last column: predictions that are no reference label
OTHER = "(other)"


@dataclass(frozen=True)
class LabelScores:
    """How predictions compare with the reference labels of the labelled cells.

    Attributes
    ----------
    n_labelled
        Cells with a reference label (cells without one are left out).
    n_correct
        Cells whose prediction equals their label exactly.
    valid_label_rate
        Fraction of predictions that are one of the reference labels.
    classes
        The reference labels, sorted.
    confusion
        Counts: one row per class, one column per class then `OTHER`.
    """

    n_labelled: int
    n_correct: int
    valid_label_rate: float
    classes: tuple[str, ...]
    confusion: np.ndarray

    @property
    def accuracy(self) -> float:
        return self.n_correct / self.n_labelled if self.n_labelled else 0.0

    def per_class(self) -> dict[str, dict[str, float | int]]:
        """Cells, correct cells and recall of each class."""
        out = {}
        for i, label in enumerate(self.classes):
            n = int(self.confusion[i].sum())
            correct = int(self.confusion[i, i])
            out[label] = {"cells": n, "correct": correct, "recall": correct / n if n else 0.0}
        return out

    def to_dict(self) -> dict[str, object]:
        return {
            "n_labelled": self.n_labelled,
            "n_correct": self.n_correct,
            "accuracy": self.accuracy,
            "valid_label_rate": self.valid_label_rate,
            "per_class": self.per_class(),
        }


def _is_label(value: object) -> bool:
    return value is not None and value == value and str(value) != ""  # NaN != NaN


def score_labels(truth: Sequence[object], predicted: Sequence[str | None]) -> LabelScores:
    """Compare ``predicted`` with ``truth`` cell by cell (exact string match)."""
    pairs = [
        (str(t), p if p is not None else "")
        for t, p in zip(truth, predicted, strict=True)
        if _is_label(t)
    ]
    classes = tuple(sorted({t for t, _ in pairs}))
    column = {label: i for i, label in enumerate(classes)}
    confusion = np.zeros((len(classes), len(classes) + 1), dtype=np.int64)
    for t, p in pairs:
        confusion[column[t], column.get(p, len(classes))] += 1
    n_valid = sum(p in column for _, p in pairs)
    return LabelScores(
        n_labelled=len(pairs),
        n_correct=sum(t == p for t, p in pairs),
        valid_label_rate=n_valid / len(pairs) if pairs else 0.0,
        classes=classes,
        confusion=confusion,
    )
