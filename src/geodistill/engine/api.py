"""The Python API behind ``geodistill train``, ``distill`` and ``evaluate``.

``train`` (teacher or student alone) and ``distill`` are the same call: ``train`` with
``cfg.distill.teacher`` set and a distillation objective *is* distillation.
"""

from __future__ import annotations

import json
import platform
import time
from pathlib import Path

import numpy as np
import torch

from geodistill.config import RunConfig
from geodistill.data.prepare import TrainData, checkpoint_data_config, default_cache_dir, prepare_data
from geodistill.data.transforms import NUM_VIEWS, Normalizer
from geodistill.engine.cache import OnTheFlyTeacher, build_teacher_cache
from geodistill.engine.checkpoint import load_checkpoint, load_classifier
from geodistill.engine.loop import evaluate_split, fit, get_fabric, write_json_atomic
from geodistill.errors import GeodistillError
from geodistill.losses import Objective
from geodistill.models import build_model
from geodistill.profile import torch_cost


def data_for(cfg: RunConfig, memo: dict) -> TrainData:
    """``prepare_data`` once per distinct data config; ``memo`` maps the config's JSON to it, so
    runs of a recipe or sweep that share data decode (or generate) it once."""
    key = json.dumps(cfg.data.model_dump(), sort_keys=True, default=str)
    if key not in memo:
        memo[key] = prepare_data(cfg)
    return memo[key]


def make_objective(cfg: RunConfig, s_dim: int | None, t_dim: int | None) -> Objective:
    """A preset name (student, kl, cos, kl+cos, thesis, dkd, dist) or a spec string."""
    dc = cfg.distill
    from geodistill.losses import PRESETS

    if dc.loss in PRESETS:
        obj = Objective.preset(
            dc.loss,
            alpha=dc.alpha,
            beta=dc.beta,
            T=dc.T,
            s_dim=s_dim,
            t_dim=t_dim,
            label_smoothing=cfg.train.label_smoothing,
        )
    else:
        obj = Objective.parse(dc.loss, s_dim=s_dim, t_dim=t_dim)
    if obj.needs_teacher and not dc.teacher:
        raise GeodistillError(
            f"Objective {dc.loss!r} needs a teacher; pass --teacher PATH/TO/model.ckpt (or use --loss student)."
        )
    return obj


def _machine() -> dict:
    import os

    return {
        "platform": platform.platform(),
        "python": platform.python_version(),
        "torch": torch.__version__,
        "cpus": os.cpu_count(),
        "threads": torch.get_num_threads(),
    }


def _load_teacher(cfg: RunConfig, data: TrainData):
    teacher, meta = load_classifier(cfg.distill.teacher)
    path = cfg.distill.teacher
    if list(meta["classes"]) != data.classes:
        raise GeodistillError(
            f"Teacher {path} was trained on classes {meta['classes'][:4]}... but dataset {cfg.data.dataset!r} has {data.classes[:4]}...; train a teacher on this dataset first."
        )
    if int(meta["in_channels"]) != data.channels:
        raise GeodistillError(
            f"Teacher {path} takes {meta['in_channels']} channels but the dataset gives {data.channels}; set data.channels or use a matching teacher."
        )
    if int(meta["size"]) != data.size:
        raise GeodistillError(
            f"Teacher {path} was trained at {meta['size']} px but this run uses {data.size} px; pass --size {meta['size']} or retrain the teacher."
        )
    return teacher, meta


def train(
    cfg: RunConfig,
    run_dir: str | Path | None = None,
    *,
    resume: bool = False,
    data: TrainData | None = None,
    role: str | None = None,
    log=print,
) -> dict:
    """Train one model (teacher, student alone, or distilled student); returns results.json's dict.

    A finished run (results.json present) is returned as is when ``resume`` is set.
    """
    run_dir = Path(run_dir or Path(cfg.out) / (cfg.name or f"{cfg.train.model}-{cfg.distill.loss}-s{cfg.train.seed}"))
    results_path = run_dir / "results.json"
    if resume and results_path.is_file():
        log(f"{run_dir}: already finished, skipped")
        return json.loads(results_path.read_text())
    run_dir.mkdir(parents=True, exist_ok=True)
    fabric = get_fabric(cfg)
    wall0 = time.perf_counter()
    data = data or prepare_data(cfg)

    teacher_source, teacher_meta, t_dim, cache_seconds = None, None, None, None
    if cfg.distill.teacher:
        teacher, teacher_meta = _load_teacher(cfg, data)
        t_dim = teacher.feature_dim
        # the student may be normalised differently from the teacher: each sees its own
        t_norm = Normalizer.from_dict(teacher_meta["normalizer"])
    torch.manual_seed(cfg.train.seed)  # same seed -> same initial weights and projector
    student = build_model(cfg.train.model, len(data.classes), in_channels=data.channels, weights=cfg.train.weights)
    objective = make_objective(cfg, student.feature_dim, t_dim)
    if cfg.distill.teacher and objective.needs_teacher:
        if cfg.data.augment == "dihedral+crop":
            log("note: random crops are outside the cached view set, so the teacher runs on the fly every step")
            teacher_source = OnTheFlyTeacher(teacher.to(fabric.device), t_norm)
        else:
            n_views = NUM_VIEWS if cfg.data.augment == "dihedral" else 1
            cache_root = default_cache_dir(cfg)
            kw = dict(data_key=data.key, size=data.size, n_views=n_views, cache_root=cache_root)
            if fabric.is_global_zero:  # rank 0 builds; the others open it after the barrier
                t0 = time.perf_counter()
                teacher_source = build_teacher_cache(teacher, data.images, np.sort(data.train), t_norm, log=log, **kw)
                cache_seconds = None if teacher_source.hit else time.perf_counter() - t0  # None: reused
            fabric.barrier()
            if teacher_source is None:
                teacher_source = build_teacher_cache(
                    teacher, data.images, np.sort(data.train), t_norm, log=lambda *_: None, **kw
                )
    log(
        f"[{run_dir.name}] {cfg.train.model} on {cfg.data.dataset} ({len(data.train)} train / {len(data.val)} val / {len(data.test)} test, {data.size}px): {objective}"
    )
    meta = {"arch": cfg.train.model}
    state = fit(cfg, data, student, objective, teacher_source, run_dir, meta=meta, resume=resume, log=log)

    best, best_meta = load_classifier(run_dir / "model.ckpt")
    test = evaluate_split(fabric, best, data, data.test, channels_last=cfg.train.channels_last)
    cost = torch_cost(
        best, data.size, batches=(1, 32), normalizer=data.normalizer.to_dict(), warmup=2, repeats=15, max_seconds=3.0
    )
    role = role or ("distilled" if objective.needs_teacher else "student")
    distilling = role != "teacher" and cfg.distill.loss != "student"
    results = {
        "run_id": run_dir.name,
        "role": role,
        "dataset": cfg.data.dataset,
        "model": cfg.train.model,
        "teacher": cfg.distill.teacher,
        "objective": str(objective),
        "objective_name": "teacher" if role == "teacher" else cfg.distill.loss,
        # α/β/T are recorded for every distillation preset, even where α = 0 switches the
        # teacher off, so such a run stays on its α curve
        "alpha": cfg.distill.alpha if distilling else None,
        "beta": cfg.distill.beta if distilling else None,
        "T": cfg.distill.T if distilling else None,
        "seed": cfg.train.seed,
        "size": data.size,
        "metrics": test,
        "val_accuracy": state["best_val"],
        "best_epoch": state["best_epoch"],
        "cost": cost,
        "epochs": len(state["history"]),
        "wall_time_s": time.perf_counter() - wall0,
        "teacher_cache_s": cache_seconds,
        "history": state["history"],
        "config": cfg.model_dump(),
        "machine": _machine(),
        "status": "ok",
        "error": None,
    }
    if fabric.is_global_zero:
        write_json_atomic(results_path, results)
        (run_dir / "last.ckpt").unlink(missing_ok=True)
    fabric.barrier()
    log(f"[{run_dir.name}] test accuracy {test['accuracy']:.4f}, macro-F1 {test['f1_macro']:.4f}")
    return results


def distill(cfg: RunConfig, run_dir: str | Path | None = None, **kw) -> dict:
    """Train a student under a distillation objective from ``cfg.distill.teacher``."""
    if not cfg.distill.teacher:
        raise GeodistillError("distill needs --teacher PATH/TO/model.ckpt (a checkpoint from 'geodistill train').")
    return train(cfg, run_dir, **kw)


def evaluate(ckpt: str | Path, cfg: RunConfig | None = None, split: str = "test") -> dict:
    """Metrics of a checkpoint on one split of a dataset, with the checkpoint's own normalisation.

    ``cfg`` None: the data config the checkpoint trained with (its split files, ``n_per_class``,
    fractions and split seed), so ``split`` is exactly the trained one.
    """
    if split not in ("train", "val", "test"):
        raise GeodistillError(f"--split must be train, val or test, not {split!r}.")
    meta = load_checkpoint(ckpt)
    if cfg is None:
        d = checkpoint_data_config(meta, where=f"the config saved in {ckpt}")
        if d is None:
            raise GeodistillError(f"Checkpoint {ckpt} records no dataset; pass the data config to evaluate it on.")
        cfg = RunConfig(data=d)
    elif cfg.data.size != meta["size"]:
        cfg = cfg.model_copy(update={"data": cfg.data.model_copy(update={"size": meta["size"]})})
    data = prepare_data(cfg, normalizer=meta["normalizer"])
    if list(meta["classes"]) != data.classes:
        raise GeodistillError(
            f"Checkpoint {ckpt} knows classes {meta['classes'][:4]}... but dataset {cfg.data.dataset!r} has "
            f"{data.classes[:4]}...; evaluate it on the dataset it was trained on."
        )
    model, _ = load_classifier(ckpt)
    return evaluate_split(get_fabric(cfg), model, data, getattr(data, split))
