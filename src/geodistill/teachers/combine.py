"""Several teacher answers as one: an ensemble, out-of-fold teachers, the mean over views.

Each combined source answers ``(idx, views, x_u8, feats) -> (logits, None)`` like one
`teachers.cache.TeacherCache`, from the caches of its members: a student step never runs a
teacher. Logits only: features of separately trained networks share no space.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from typing import Literal

import numpy as np
import torch
from torch import Tensor

from geodistill.core.errors import GeodistillError
from geodistill.teachers.cache import TeacherSource

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
    """The combined answer of K teacher sources (`combine_logits`). Logits only: the features of
    separately trained networks do not live in one space, so they are not averaged."""

    def __init__(self, sources: Sequence[TeacherSource], how: Combine = "logits", T: float = 1.0) -> None:
        self.sources, self.how, self.T = list(sources), how, T

    def __call__(
        self, idx: np.ndarray, views: Tensor, x_u8: Tensor | None = None, feats: bool = True
    ) -> tuple[Tensor, Tensor | None]:
        if feats:
            raise GeodistillError(_NO_FEATURES)
        logits = combine_logits([s(idx, views, x_u8, feats=False)[0] for s in self.sources], self.how, self.T)
        return logits, None


class OutOfFoldSource:
    """Out-of-fold soft labels: image ``i`` of the training split is answered by teacher
    ``fold[i]``, the one teacher that did not train on it (`data.folds`).

    ``fold_of`` maps every dataset index to its fold id (-1 outside the training split);
    ``sources[k]`` is teacher k's cache over the images of fold k only. Logits only, as for
    `EnsembleSource`.
    """

    def __init__(self, fold_of: np.ndarray, sources: Sequence[TeacherSource]) -> None:
        self.fold_of, self.sources = np.asarray(fold_of, dtype=np.int64), list(sources)

    def __call__(
        self, idx: np.ndarray, views: Tensor, x_u8: Tensor | None = None, feats: bool = True
    ) -> tuple[Tensor, Tensor | None]:
        if feats:
            raise GeodistillError(_NO_FEATURES)
        idx = np.asarray(idx)
        fold = self.fold_of[idx]
        if (fold < 0).any():
            raise KeyError("out-of-fold teachers asked for an image outside the training split")
        logits: Tensor | None = None
        for k in np.unique(fold).tolist():
            sel = torch.from_numpy(np.flatnonzero(fold == k))
            z, _ = self.sources[k](idx[sel.numpy()], views[sel], None if x_u8 is None else x_u8[sel], feats=False)
            if logits is None:
                logits = z.new_empty((len(idx), z.shape[1]))
            logits[sel] = z
        assert logits is not None
        return logits, None


class ViewMeanSource:
    """The teacher's answer for an image averaged over every view id of the cached view set:
    ``z(x) = 1/V sum_v z_t(v·x)``, whatever view the student sees.

    Scene classes do not change under rotation, flip or a small crop, so this is the teacher
    with test-time augmentation (which is usually more accurate than the teacher on one view),
    read from the same cache at no extra teacher cost. Logits only, like the ensembles.
    """

    def __init__(self, source: TeacherSource, n_views: int) -> None:
        self.source, self.n_views = source, n_views

    def __call__(
        self, idx: np.ndarray, views: Tensor, x_u8: Tensor | None = None, feats: bool = True
    ) -> tuple[Tensor, Tensor | None]:
        if feats:
            raise GeodistillError(_NO_FEATURES)
        total = None
        for v in range(self.n_views):
            z, _ = self.source(idx, torch.full((len(idx),), v, dtype=torch.long), None, feats=False)
            total = z if total is None else total + z
        return total / self.n_views, None


_NO_FEATURES = (
    "feature terms (cos_feat) need a single teacher: features of separately trained networks do not "
    "share one space; use a logit term (kl, cos) with several teachers."
)
