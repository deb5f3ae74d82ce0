"""Where a student's teacher answers come from: one teacher, an ensemble, or out-of-fold teachers.

``distill.teacher`` names one checkpoint or several; `teacher_source` loads them, builds (or
reuses) each one's exact cache over the run's view set, and combines them as
``distill.ensemble`` says. Every source answers ``(idx, views, x_u8, feats) -> (logits,
features)`` like one `engine.cache.TeacherCache`, by looking up caches: a student step never
runs a teacher (except for random crops, which no cache holds: then one teacher runs live).
"""

from __future__ import annotations

import logging
import math
import time
from collections.abc import Sequence
from typing import Literal

import numpy as np
import torch
from torch import Tensor, nn

from geodistill.config import RunConfig
from geodistill.data.folds import make_folds
from geodistill.data.prepare import TrainData, default_cache_dir, prepare_data
from geodistill.data.transforms import Normalizer
from geodistill.data.views import plan_of
from geodistill.engine.cache import OnTheFlyTeacher, TeacherSource, build_teacher_cache
from geodistill.engine.checkpoint import load_classifier
from geodistill.errors import GeodistillError

logger = logging.getLogger(__name__)

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
_SAME_SPLIT = ("dataset", "fractions", "split_seed", "split_files", "n_per_class", "train_ratio", "val_ratio")


def describe_method(cfg: RunConfig) -> str:
    """The run's method beyond its loss, in words ('' for one teacher on the default views):
    what results.json records as ``method`` and tables group by."""
    parts = []
    n = len(teacher_paths(cfg))
    if n > 1 and cfg.distill.ensemble == "out_of_fold":
        parts.append(f"{n} out-of-fold teachers")
    elif n > 1:
        parts.append(f"an ensemble of {n} teachers (mean {cfg.distill.ensemble})")
    d = cfg.data
    if cfg.distill.view_mean:
        parts.append(f"teacher averaged over {plan_of(d).views} views")
    if d.augment == "dihedral+grid":
        parts.append(f"{d.crop_grid}x{d.crop_grid} crop views")
    if d.folds is not None:
        parts.append(f"fold {d.hold_out} of {d.folds} held out")
    return ", ".join(parts)


def teacher_paths(cfg: RunConfig) -> list[str]:
    """``distill.teacher`` as a list of checkpoint paths (empty without a teacher)."""
    t = cfg.distill.teacher
    return [] if not t else [t] if isinstance(t, str) else list(t)


def load_teacher(path: str, data: TrainData, dataset: str = "") -> tuple[nn.Module, dict]:
    """The classifier at ``path`` and its metadata, checked against the run's classes and
    channels (one sentence naming what differs otherwise); it may answer at another size."""
    teacher, meta = load_classifier(path)
    if list(meta["classes"]) != data.classes:
        raise GeodistillError(
            f"Teacher {path} was trained on classes {meta['classes'][:4]}... but dataset "
            f"{dataset!r} has {data.classes[:4]}...; train a teacher on this dataset first."
        )
    if int(meta["in_channels"]) != data.channels:
        raise GeodistillError(
            f"Teacher {path} takes {meta['in_channels']} channels but the dataset gives {data.channels}; "
            "set data.channels or use a matching teacher."
        )
    return teacher, meta


def teacher_data(cfg: RunConfig, data: TrainData, meta: dict) -> TrainData:
    """The run's images at the size the teacher answers at (``distill.teacher_size``, else its
    checkpoint's): ``data`` itself at the student's size, else the same images in the same order
    decoded at the teacher's size. Views outside the dihedral group (crops) are defined in the
    student's pixels, so a teacher of another size needs ``data.augment`` dihedral or none."""
    size = int(cfg.distill.teacher_size or meta["size"])
    if size == data.size:
        return data
    if cfg.data.augment not in ("dihedral", "none"):
        raise GeodistillError(
            f"A teacher at {size} px teaching a {data.size} px student needs data.augment=dihedral (or none): the "
            f"crops of {cfg.data.augment} are defined in the student's pixels; set distill.teacher_size={data.size}."
        )
    bigger = prepare_data(cfg.data.model_copy(update={"size": size}), normalizer=meta["normalizer"])
    if bigger.dataset.paths != data.dataset.paths:
        raise GeodistillError(
            f"The dataset read at {size} px has other images than at {data.size} px; check that {cfg.data.root} "
            "did not change while the run started."
        )
    return bigger


def load_teachers(cfg: RunConfig, data: TrainData) -> list[tuple[nn.Module, dict]]:
    """Every checkpoint of ``distill.teacher``, loaded and checked (`load_teacher`)."""
    return [load_teacher(p, data, cfg.data.dataset) for p in teacher_paths(cfg)]


def oof_assignment(cfg: RunConfig, data: TrainData, metas: Sequence[dict]) -> tuple[np.ndarray, list[int]]:
    """``fold_of`` (fold id per dataset index, -1 outside the training split) and each teacher's
    held-out fold, from the teachers' saved data configs (``data.folds``, ``data.hold_out``).

    Checks that the teachers split the same data the same way as this run and that their held-out
    folds are exactly ``0..K-1`` once each, so every training image has one teacher that never
    trained on it.
    """
    saved = [(m.get("config") or {}).get("data") or {} for m in metas]
    ks = {d.get("folds") for d in saved}
    if len(ks) != 1 or None in ks:
        raise GeodistillError(
            "distill.ensemble=out_of_fold needs teachers trained with data.folds=K and data.hold_out=0..K-1 "
            f"(one per fold); these were trained with folds {sorted(map(str, ks))}."
        )
    k = int(ks.pop())
    held = [int(d["hold_out"]) for d in saved]
    if sorted(held) != list(range(k)):
        raise GeodistillError(
            f"out-of-fold teachers must hold out folds 0..{k - 1} once each; they hold out {sorted(held)}."
        )
    if cfg.data.folds is not None:
        raise GeodistillError(
            "distill.ensemble=out_of_fold needs the student trained on the whole training split: unset "
            "data.folds and data.hold_out (on a fold-reduced split the folds would differ from the teachers')."
        )
    mine = cfg.data.model_dump()
    for path, d in zip(teacher_paths(cfg), saved, strict=True):
        diff = [f for f in _SAME_SPLIT if d.get(f) != mine.get(f) and not (f == "fractions" and tuple(d[f]) == mine[f])]
        if diff:
            raise GeodistillError(
                f"Teacher {path} split the data differently from this run (data.{diff[0]}); "
                "out-of-fold labels are only exact on the split the teachers were folded from."
            )
    fold_of = np.full(len(data.images), -1, dtype=np.int64)
    fold_of[data.train] = make_folds(data.labels, data.train, k, cfg.data.split_seed)
    return fold_of, held


def _cached(cfg: RunConfig, data: TrainData, teacher: nn.Module, meta: dict, indices: np.ndarray, fabric) -> tuple:
    """One teacher's exact cache over ``indices`` (rank 0 builds it; the others open it after the
    barrier); returns (cache, build seconds or None when reused)."""
    tdata = teacher_data(cfg, data, meta)
    kw = dict(data_key=tdata.key, size=tdata.size, views=plan_of(cfg.data).viewset, cache_root=default_cache_dir(cfg))
    norm = Normalizer.from_dict(meta["normalizer"])
    cache, seconds = None, None
    if fabric is None or fabric.is_global_zero:
        t0 = time.perf_counter()
        cache = build_teacher_cache(teacher, tdata.images, indices, norm, **kw)
        seconds = None if cache.hit else time.perf_counter() - t0
    if fabric is not None:
        fabric.barrier()
    if cache is None:
        cache = build_teacher_cache(teacher, tdata.images, indices, norm, **kw)
    return cache, seconds


def teacher_source(
    cfg: RunConfig, data: TrainData, teachers: Sequence[tuple[nn.Module, dict]], *, feats: bool, fabric=None
) -> tuple[TeacherSource, float | None]:
    """The answers for the student's batches and the seconds spent building caches (None: all
    reused). ``fabric`` None builds in this process alone (e.g. a sweep warming caches)."""
    if feats and (len(teachers) > 1 or cfg.distill.view_mean):
        raise GeodistillError(_NO_FEATURES)
    if plan_of(cfg.data).teacher_runs_live:
        if len(teachers) > 1 or cfg.distill.view_mean:
            raise GeodistillError(
                "several teachers and distill.view_mean need a cached view set; "
                "use data.augment=dihedral or dihedral+grid, not dihedral+crop."
            )
        logger.info("note: random crops are outside the cached view set, so the teacher runs on the fly every step")
        model, meta = teachers[0]
        teacher_data(cfg, data, meta)  # a teacher of another size cannot see the student's crops
        device = "cpu" if fabric is None else fabric.device
        return OnTheFlyTeacher(model.to(device), Normalizer.from_dict(meta["normalizer"])), None
    oof = cfg.distill.ensemble == "out_of_fold"
    if oof and len(teachers) < 2:
        raise GeodistillError(
            "distill.ensemble=out_of_fold needs the K >= 2 fold teachers in distill.teacher (one per data.hold_out); "
            f"got {len(teachers)}."
        )
    if oof:
        fold_of, held = oof_assignment(cfg, data, [m for _, m in teachers])
        rows = [np.flatnonzero(fold_of == h) for h in held]
    else:
        rows = [np.sort(data.train)] * len(teachers)
    built = [_cached(cfg, data, t, m, r, fabric) for (t, m), r in zip(teachers, rows, strict=True)]
    caches, secs = [c for c, _ in built], [s for _, s in built if s is not None]
    seconds = sum(secs) if secs else None
    if len(caches) == 1:
        source = caches[0]
    elif oof:
        source = OutOfFoldSource(fold_of, [caches[held.index(k)] for k in range(len(caches))])
    else:
        source = EnsembleSource(caches, cfg.distill.ensemble, cfg.distill.T)
    if cfg.distill.view_mean:
        source = ViewMeanSource(source, plan_of(cfg.data).views)
    return source, seconds
