"""K-fold assignment of the training split, for out-of-fold teachers.

Out-of-fold soft labels: teacher ``k`` trains on every training image outside fold ``k`` and
labels only the images of fold ``k``, so no training image receives a soft label from a teacher
that saw it: the cross-fitting of stacked generalisation (Wolpert, "Stacked generalization",
Neural Networks 1992) applied to distillation targets. Folds are stratified by class and seeded, so the
same (labels, training indices, k, seed) always gives the same folds.
"""

from __future__ import annotations

import numpy as np

from geodistill.core.errors import GeodistillError


def make_folds(labels: np.ndarray, train: np.ndarray, k: int, seed: int = 0) -> np.ndarray:
    """Fold id in ``0..k-1`` for each entry of ``train`` (dataset indices), stratified by class.

    Within each class the images are shuffled with ``default_rng([seed, class])`` and dealt out
    round-robin, starting where the previous class stopped, so fold sizes differ by at most 1.
    """
    if k < 2:
        raise GeodistillError(f"data.folds must be at least 2 for out-of-fold teachers, got {k}.")
    train = np.asarray(train, dtype=np.int64)
    y = np.asarray(labels)[train]
    counts = np.bincount(y) if len(y) else np.zeros(0, dtype=np.int64)
    if len(counts) and counts[counts > 0].min() < k:
        c = int(np.flatnonzero((counts > 0) & (counts < k))[0])
        raise GeodistillError(
            f"class {c} has only {int(counts[c])} training images, fewer than data.folds={k}; "
            "use fewer folds or more data."
        )
    fold = np.empty(len(train), dtype=np.int64)
    start = 0
    for c in np.unique(y):
        pos = np.flatnonzero(y == c)
        pos = pos[np.random.default_rng([seed, int(c)]).permutation(len(pos))]
        fold[pos] = (start + np.arange(len(pos))) % k
        start = (start + len(pos)) % k
    return fold


def fold_split(train: np.ndarray, fold: np.ndarray, fold_id: int) -> tuple[np.ndarray, np.ndarray]:
    """``(fit, held_out)`` dataset indices for teacher ``fold_id``: it trains on ``fit`` and labels ``held_out``."""
    train = np.asarray(train, dtype=np.int64)
    return np.sort(train[fold != fold_id]), np.sort(train[fold == fold_id])
