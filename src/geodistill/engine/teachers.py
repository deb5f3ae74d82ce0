"""Teacher sources built from several cached teachers: ensembles and out-of-fold teachers.

Every source answers ``(idx, views, x_u8, feats) -> (logits, features)`` like one
`engine.cache.TeacherCache`, by looking up caches: a student step never runs a teacher.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from typing import Literal

import numpy as np
import torch
from torch import Tensor

from geodistill.engine.cache import TeacherSource
from geodistill.errors import GeodistillError

Combine = Literal["logits", "probs"]


def combine_logits(logits: Sequence[Tensor], how: Combine = "logits", T: float = 1.0) -> Tensor:
    """One set of logits from K teachers' logits ``z_1..z_K`` (each B x classes).

    ``"logits"``: ``z = 1/K sum_k z_k``. Averaging logits is a geometric mean of the teachers'
    probabilities (a product of experts): classes every teacher finds plausible keep their mass.
    ``"probs"``: ``z = T log(1/K sum_k softmax(z_k / T))``, chosen so that ``softmax(z / T)`` is
    exactly the arithmetic mean of the tempered probabilities (the ensemble target of Hinton et
    al., "Distilling the Knowledge in a Neural Network", 2015); it then feeds any KL(T) term
    unchanged. The default is ``"logits"``: it is independent of T, so the same cached ensemble
    serves every temperature and the cosine-on-logits terms.
    """
    if not logits:
        raise GeodistillError("a teacher ensemble needs at least one teacher.")
    z = torch.stack([t.float() for t in logits])
    if how == "logits":
        return z.mean(0)
    if how == "probs":
        log_mean = torch.logsumexp(torch.log_softmax(z / T, dim=-1), dim=0) - math.log(len(logits))
        return T * log_mean
    raise GeodistillError(f"distill.ensemble_combine must be 'logits' or 'probs', not {how!r}.")


class EnsembleSource:
    """The combined answer of K teacher sources (`combine_logits`); features are averaged when
    every teacher has the same width (same architecture), else unavailable."""

    def __init__(self, sources: Sequence[TeacherSource], how: Combine = "logits", T: float = 1.0) -> None:
        self.sources, self.how, self.T = list(sources), how, T

    def __call__(
        self, idx: np.ndarray, views: Tensor, x_u8: Tensor | None = None, feats: bool = True
    ) -> tuple[Tensor, Tensor | None]:
        answers = [s(idx, views, x_u8, feats=feats) for s in self.sources]
        logits = combine_logits([a[0] for a in answers], self.how, self.T)
        if not feats:
            return logits, None
        fs = [a[1] for a in answers]
        if any(f is None for f in fs) or len({f.shape[1] for f in fs}) != 1:
            raise GeodistillError(
                "the ensemble's teachers have features of different widths; use a logit-only objective "
                "(no cos_feat) or teachers of one architecture."
            )
        return logits, torch.stack(fs).mean(0)


class OutOfFoldSource:
    """Out-of-fold soft labels: image ``i`` of the training split is answered by teacher
    ``fold[i]``, the one teacher that did not train on it (`data.folds`).

    ``fold_of`` maps every dataset index to its fold id (-1 outside the training split);
    ``sources[k]`` is teacher k's cache over the images of fold k only.
    """

    def __init__(self, fold_of: np.ndarray, sources: Sequence[TeacherSource]) -> None:
        self.fold_of, self.sources = np.asarray(fold_of, dtype=np.int64), list(sources)

    def __call__(
        self, idx: np.ndarray, views: Tensor, x_u8: Tensor | None = None, feats: bool = True
    ) -> tuple[Tensor, Tensor | None]:
        idx = np.asarray(idx)
        fold = self.fold_of[idx]
        if (fold < 0).any():
            raise KeyError("out-of-fold teachers asked for an image outside the training split")
        logits: Tensor | None = None
        f_out: Tensor | None = None
        for k in np.unique(fold).tolist():
            rows = np.flatnonzero(fold == k)
            sel = torch.from_numpy(rows)
            z, f = self.sources[k](idx[rows], views[sel], None if x_u8 is None else x_u8[sel], feats=feats)
            if logits is None:
                logits = z.new_empty((len(idx), z.shape[1]))
            logits[sel] = z
            if f is not None:
                if f_out is None:
                    f_out = f.new_empty((len(idx), f.shape[1]))
                f_out[sel] = f
        assert logits is not None
        return logits, f_out
