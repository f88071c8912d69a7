"""Baseline cell type annotators for the demo checkpoint's card.

Besides the majority class and logistic regression on the log expression, a logistic
regression sees what the model sees: the prompt's top genes in their C2S order, each
weighted by its rank. It tells how much of the cell typing a linear read of the same
input already gets. Every baseline is scored twice: on the split's held-out cells, and by
5-fold cross-validation over the training cells alone, since one split of 140 cells can be
easier or harder than the data (the held-out cells are not used by the folds).
"""

from __future__ import annotations

from collections import Counter

import numpy as np

from models.training.dataset import DemoData

#: folds of the cross-validation over the training cells, and its shuffling seed
FOLDS = 5
FOLD_SEED = 0


def rank_features(sentences, genes, n_genes: int) -> np.ndarray:
    """Cells x genes: the j-th of a cell's first ``n_genes`` genes (0-based) weighs
    ``(n_genes - j) / n_genes``; genes outside them weigh 0."""
    column = {gene: i for i, gene in enumerate(genes)}
    features = np.zeros((len(sentences), len(genes)))
    for row, sentence in enumerate(sentences):
        for j, gene in enumerate(sentence.split()[:n_genes]):
            features[row, column[gene]] = (n_genes - j) / n_genes
    return features


def _logistic_regression():
    from sklearn.linear_model import LogisticRegression

    return LogisticRegression(max_iter=3000)


def _held_out_and_folds(features: np.ndarray, data: DemoData) -> tuple[float, float]:
    """Accuracy on the held-out cells, and the mean over folds of the training cells."""
    from sklearn.model_selection import StratifiedKFold, cross_val_score

    y = np.asarray(data.labels)
    fitted = _logistic_regression().fit(features[data.train], y[data.train])
    held_out = float(np.mean(fitted.predict(features[data.held_out]) == y[data.held_out]))
    folds = StratifiedKFold(FOLDS, shuffle=True, random_state=FOLD_SEED)
    scores = cross_val_score(_logistic_regression(), features[data.train], y[data.train], cv=folds)
    return held_out, float(np.mean(scores))


def baselines(data: DemoData, n_genes: int) -> dict[str, float | int]:
    """The baselines' accuracies on the held-out cells (``*_folds``: over training folds)."""
    y = np.asarray(data.labels)
    majority = Counter(y[data.train]).most_common(1)[0][0]
    expression = _held_out_and_folds(data.expression, data)
    ranks = _held_out_and_folds(rank_features(data.sentences, data.genes, n_genes), data)
    return {
        "majority_class": float(np.mean(y[data.held_out] == majority)),
        "logistic_regression": expression[0],
        "logistic_regression_folds": expression[1],
        "logistic_regression_on_ranks": ranks[0],
        "logistic_regression_on_ranks_folds": ranks[1],
        "rank_genes": n_genes,
        "folds": FOLDS,
    }
