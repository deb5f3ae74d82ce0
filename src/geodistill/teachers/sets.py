"""Where a student's teacher answers come from: one teacher, an ensemble, or out-of-fold teachers.

``distill.teacher`` names one checkpoint or several; `teacher_source` loads them, builds (or
reuses) each one's exact cache over the run's view set, and combines them as
``distill.ensemble`` says. Every source answers ``(idx, views, x_u8, feats) -> (logits,
features)`` like one `engine.cache.TeacherCache`, by looking up caches: a student step never
runs a teacher (except for random crops, which no cache holds: then one teacher runs live).
"""

from __future__ import annotations

import logging
import time
from collections.abc import Sequence

import numpy as np
from torch import nn

from geodistill.config.run import RunConfig
from geodistill.core.errors import GeodistillError
from geodistill.data.folds import make_folds
from geodistill.data.prepare import TrainData, default_cache_dir, prepare_data
from geodistill.data.transforms import Normalizer
from geodistill.data.views import plan_of
from geodistill.models.checkpoint import load_classifier
from geodistill.teachers.cache import OnTheFlyTeacher, TeacherSource, build_teacher_cache
from geodistill.teachers.combine import _NO_FEATURES, EnsembleSource, OutOfFoldSource, ViewMeanSource

logger = logging.getLogger(__name__)

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
