"""Choosing a distillation method on the validation split, never the test split.

Each candidate method is trained on the screening seeds; the chosen one has the highest mean
best-validation accuracy over them (a method with a failed screening run is not chosen)."""

from __future__ import annotations

import statistics
from collections.abc import Sequence

from geodistill.results.result import RunResult


def by_validation(labelled: Sequence[tuple[str, RunResult]]) -> tuple[str | None, dict[str, float]]:
    """(the label with the highest mean best validation accuracy, every label's mean) over
    ``labelled`` (label, result) pairs; None when no label has all its runs finished."""
    runs: dict[str, list[RunResult]] = {}
    for label, r in labelled:
        runs.setdefault(label, []).append(r)
    vals = {
        label: statistics.fmean(r.val_accuracy for r in rs)
        for label, rs in runs.items()
        if all(r.ok and r.val_accuracy is not None for r in rs)
    }
    return (max(vals, key=vals.__getitem__) if vals else None), vals
