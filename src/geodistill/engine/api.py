"""The Python API behind ``geodistill train``, ``distill`` and ``evaluate``.

``train`` (teacher or student alone) and ``distill`` are the same call: ``train`` with
``cfg.distill.teacher`` set and a distillation objective *is* distillation.
"""

from __future__ import annotations

import json
import logging
import os
import platform
import time
from pathlib import Path
from typing import Any

import torch

from geodistill.config.run import RunConfig
from geodistill.core.atomic import write_json as write_json_atomic
from geodistill.core.errors import GeodistillError
from geodistill.core.progress import Job, duration, job
from geodistill.data.prepare import TrainData, checkpoint_data_config, prepare_data
from geodistill.engine.convergence import resolve_epochs, run_evidence
from geodistill.engine.evaluate import evaluate_split
from geodistill.engine.precision import decide, precision_note, with_precision
from geodistill.engine.trainer import fit, get_fabric
from geodistill.losses import Objective, get_preset
from geodistill.models import build_model
from geodistill.models.checkpoint import load_checkpoint, load_classifier
from geodistill.models.cost import job_cost
from geodistill.results.result import COST_CACHE_FILE, RunResult, hyper
from geodistill.teachers.sets import describe_method, load_teachers
from geodistill.teachers.sets import teacher_source as teacher_source_for

logger = logging.getLogger(__name__)


def data_for(cfg: RunConfig, memo: dict) -> TrainData:
    """``prepare_data`` once per distinct data config; ``memo`` maps the config's JSON to it, so
    runs of a recipe or sweep that share data decode (or generate) it once."""
    key = json.dumps(cfg.data.model_dump(), sort_keys=True, default=str)
    if key not in memo:
        memo[key] = prepare_data(cfg)
    return memo[key]


def make_objective(cfg: RunConfig, s_dim: int | None, t_dim: int | None) -> Objective:
    """The objective of ``cfg.distill.loss``: a registered preset (at α, β, T) or a spec string."""
    dc = cfg.distill
    if get_preset(dc.loss):
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

    return {
        "platform": platform.platform(),
        "python": platform.python_version(),
        "torch": torch.__version__,
        "cpus": os.cpu_count(),
        "threads": torch.get_num_threads(),
    }


def train(
    cfg: RunConfig,
    run_dir: str | Path | None = None,
    *,
    resume: bool = False,
    data: TrainData | None = None,
    role: str | None = None,
) -> dict:
    """Train one model (teacher, student alone, or distilled student); returns results.json's dict.

    A finished run (results.json present) is returned as is when ``resume`` is set. The run is
    one run of the process's progress job (`geodistill.progress`), or a job of its own.
    """
    run_dir = Path(run_dir or Path(cfg.out) / (cfg.name or f"{cfg.train.model}-{cfg.distill.loss}-s{cfg.train.seed}"))
    results_path = run_dir / "results.json"
    with job(1) as j:
        if resume and results_path.is_file():
            j.end_run(f"[{run_dir.name}] already finished, skipped ({run_dir})")
            return json.loads(results_path.read_text())
        try:
            return _train(cfg, run_dir, j, resume=resume, data=data, role=role)
        except BaseException:
            j.end_run(None)
            raise


def _train(cfg: RunConfig, run_dir: Path, j: Job, *, resume: bool, data: TrainData | None, role: str | None) -> dict:
    """The body of `train`: data, teachers, objective, the training loop, test metrics, cost."""
    run_dir.mkdir(parents=True, exist_ok=True)
    wall0 = time.perf_counter()
    data = data or prepare_data(cfg)
    cfg, epochs_auto = resolve_epochs(cfg, len(data.train))  # once: schedule, checkpoints, results agree

    teachers = load_teachers(cfg, data)  # each sees its own normalisation, which may differ from the student's
    torch.manual_seed(cfg.train.seed)  # same seed -> same initial weights and projector
    student = build_model(cfg.train.model, len(data.classes), in_channels=data.channels, weights=cfg.train.weights)
    objective = make_objective(cfg, student.feature_dim, teachers[0][0].feature_dim if teachers else None)
    precision = decide(cfg.train, student, run_dir.parent, run_dir / "last.ckpt" if resume else None)
    cfg = cfg.model_copy(update={"train": with_precision(cfg.train, precision)})  # checkpoints record what ran
    fabric = get_fabric(cfg)
    teacher_source, cache_seconds = None, None
    if teachers and objective.needs_teacher:
        teacher_source, cache_seconds = teacher_source_for(
            cfg, data, teachers, feats=objective.needs_features, fabric=fabric
        )
    j.start_run(
        f"[{run_dir.name}] {cfg.train.model} on {cfg.data.dataset} ({len(data.train)} train / "
        f"{len(data.val)} val / {len(data.test)} test, {data.size}px): {objective}, "
        f"{cfg.train.epochs} epochs{' (auto)' if epochs_auto else ''}{precision_note(precision)}",
        role=role or "student",
    )
    state = fit(cfg, data, student, objective, teacher_source, run_dir, meta={"arch": cfg.train.model}, resume=resume)

    best, _ = load_classifier(run_dir / "model.ckpt")
    test = evaluate_split(fabric, best, data, data.test, channels_last=cfg.train.channels_last)
    cost = job_cost(
        best,
        data.size,
        arch=cfg.train.model,
        num_classes=len(data.classes),
        normalizer=data.normalizer.to_dict(),
        cache_file=run_dir.parent / COST_CACHE_FILE,
    )
    results = _run_result(
        cfg,
        run_dir.name,
        role or ("distilled" if objective.needs_teacher else "student"),
        str(objective),
        state,
        size=data.size,
        method=describe_method(cfg),
        metrics=test,
        cost=cost,
        epochs_auto=epochs_auto,
        wall_time_s=time.perf_counter() - wall0,
        teacher_cache_s=cache_seconds,
        precision=precision.to_dict(),
    )
    if fabric.is_global_zero:
        write_json_atomic(run_dir / "results.json", results)
        (run_dir / "last.ckpt").unlink(missing_ok=True)
    fabric.barrier()
    j.end_run(result_line(run_dir.name, results))
    return results


def result_line(name: str, results: dict) -> str:
    """'[name] test accuracy 85.24%, macro-F1 84.90%; converged (...); 12s': a run's end line."""
    test, conv = results["metrics"], results["convergence"]
    return (
        f"[{name}] test accuracy {100 * test['accuracy']:.2f}%, macro-F1 {100 * test['f1_macro']:.2f}%; "
        f"{'converged' if conv['converged'] else 'NOT converged'} (late slope {conv['late_slope_pts']:.2f} "
        f"points per 10% of the run, final lr {conv['lr_end_ratio']:.0%} of peak); {duration(results['wall_time_s'])}"
    )


def _run_result(cfg: RunConfig, run_id: str, role: str, objective: str, state: dict, **measured: Any) -> dict:
    """results.json of a finished run: identity from ``cfg``, ``measured`` (the other `RunResult`
    fields: size, metrics, cost, times), the final ``state`` and the convergence evidence of its
    history (`engine.convergence.run_evidence`)."""
    return RunResult(
        run_id=run_id,
        role=role,
        dataset=cfg.data.dataset,
        model=cfg.train.model,
        teacher=cfg.distill.teacher,
        objective=objective,
        objective_name="teacher" if role == "teacher" else cfg.distill.loss,
        **hyper(cfg.distill.loss, role, cfg.distill.alpha, cfg.distill.beta, cfg.distill.T),
        seed=cfg.train.seed,
        val_accuracy=state["best_val"],
        best_epoch=state["best_epoch"],
        epochs=len(state["history"]),
        train_time_s=sum(row["time_s"] for row in state["history"]),
        convergence=run_evidence(state["history"], state["best_epoch"], cfg.train.lr),
        history=state["history"],
        config=cfg.model_dump(),
        machine=_machine(),
        **measured,
    ).to_dict()


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
    fp32 = cfg.model_copy(update={"train": cfg.train.model_copy(update={"precision": "32-true"})})  # as validation
    return evaluate_split(get_fabric(fp32), model, data, getattr(data, split))
