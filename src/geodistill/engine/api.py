"""The Python API behind ``geodistill train``, ``distill`` and ``evaluate``.

``train`` (teacher or student alone) and ``distill`` are the same call: ``train`` with
``cfg.distill.teacher`` set and a distillation objective *is* distillation. Each returns the
run's `RunResult`, the same object its results.json holds.
"""

from __future__ import annotations

import json
import logging
import math
import os
import platform
import time
from pathlib import Path

import torch

from geodistill.config.run import RunConfig
from geodistill.core.errors import GeodistillError
from geodistill.core.progress import Job, duration, job
from geodistill.data.prepare import TrainData, checkpoint_data_config, prepare_data
from geodistill.engine.context import RunContext, eval_fabric, run_context, use_threads
from geodistill.engine.convergence import MIN_EPOCHS, run_evidence
from geodistill.engine.evaluate import evaluate_split
from geodistill.engine.objective import checked_objective
from geodistill.engine.precision import precision_note
from geodistill.engine.trainer import TrainState, fit
from geodistill.models import build_model
from geodistill.models.checkpoint import load_checkpoint, load_classifier
from geodistill.models.cost import job_cost
from geodistill.results.files import COST_CACHE_FILE, RESULTS_FILE, read_result, write_result
from geodistill.results.result import Convergence, Cost, Epoch, Metrics, RunResult, hyper, role_of
from geodistill.teachers.sets import load_teachers, teacher_source

logger = logging.getLogger(__name__)


def data_for(cfg: RunConfig, memo: dict) -> TrainData:
    """``prepare_data`` once per distinct data config; ``memo`` maps the config's JSON to it, so
    runs of a study that share data decode (or generate) it once."""
    key = json.dumps(cfg.data.model_dump(), sort_keys=True, default=str)
    if key not in memo:
        memo[key] = prepare_data(cfg)
    return memo[key]


def _machine() -> dict:
    return {
        "platform": platform.platform(),
        "python": platform.python_version(),
        "torch": torch.__version__,
        "cpus": os.cpu_count(),
        "threads": torch.get_num_threads(),
    }


def run_dir_of(cfg: RunConfig) -> Path:
    """A single run's folder: ``out/name``, by default ``out/{model}-{loss}-s{seed}``."""
    return Path(cfg.out) / (cfg.name or f"{cfg.train.model}-{cfg.distill.loss}-s{cfg.train.seed}")


def train(
    cfg: RunConfig,
    run_dir: str | Path | None = None,
    *,
    resume: bool = False,
    data: TrainData | None = None,
    role: str | None = None,
) -> RunResult:
    """Train one model (teacher, student alone, or distilled student); returns its result.

    A finished run (results.json present) is returned as is when ``resume`` is set. The run is
    one run of the process's progress job (`geodistill.core.progress`), or a job of its own.
    """
    run_dir = Path(run_dir or run_dir_of(cfg))
    with job(1) as j:
        if resume and (run_dir / RESULTS_FILE).is_file():
            j.end_run(f"[{run_dir.name}] already finished, skipped ({run_dir})")
            return read_result(run_dir)
        new = [d for d in (run_dir, *run_dir.parents) if not d.exists()]  # folders this run would create
        try:
            return _train(cfg, run_dir, j, resume=resume, data=data, role=role)
        except BaseException:
            j.end_run(None)
            _remove_empty(new)
            raise


def _remove_empty(folders: list[Path]) -> None:
    """Remove the folders a failed run created that it left empty (deepest first)."""
    for d in folders:
        try:
            d.rmdir()
        except OSError:  # not empty (a checkpoint to resume from, another run) or not there
            return


def _train(cfg: RunConfig, run_dir: Path, j: Job, *, resume: bool, data: TrainData | None, role: str | None):
    """The body of `train`: data, teachers, objective, the run's context, the training loop,
    test metrics, cost."""
    run_dir.mkdir(parents=True, exist_ok=True)
    wall0 = time.perf_counter()
    data = data or prepare_data(cfg)
    teachers = load_teachers(cfg, data)  # each sees its own normalisation, which may differ from the student's
    torch.manual_seed(cfg.train.seed)  # same seed -> same initial weights and projector
    student = build_model(cfg.train.model, len(data.classes), in_channels=data.channels, weights=cfg.train.weights)
    objective = checked_objective(cfg, student.feature_dim, teachers[0][0].feature_dim if teachers else None)
    ctx = run_context(cfg, run_dir, data, student, resume=resume)
    cfg = ctx.cfg
    source, cache_seconds = None, None
    if teachers and objective.needs_teacher:
        source, cache_seconds = teacher_source(cfg, data, teachers, feats=objective.needs_features, fabric=ctx.fabric)
    j.start_run(
        f"[{run_dir.name}] {cfg.train.model} on {cfg.data.dataset} ({len(data.train)} train / "
        f"{len(data.val)} val / {len(data.test)} test, {data.size}px): {objective}, "
        f"{cfg.train.epochs} epochs{' (auto)' if ctx.epochs_auto else ''}{precision_note(ctx.precision)}, "
        f"{_threads(cfg.train.threads)}",
        role=role or "student",
        name=run_dir.name,
    )
    state = fit(ctx, student, objective, source, meta={"arch": cfg.train.model})
    best, _ = load_classifier(ctx.best)
    test = evaluate_split(ctx.fabric, best, data, data.test, channels_last=cfg.train.channels_last)
    cost = job_cost(
        best,
        data.size,
        arch=cfg.train.model,
        num_classes=len(data.classes),
        normalizer=data.normalizer.to_dict(),
        cache_file=run_dir.parent / COST_CACHE_FILE,
    )
    result = _result(ctx, role_of(objective.needs_teacher, role == "teacher"), str(objective), state, test, cost)
    result.wall_time_s, result.teacher_cache_s = time.perf_counter() - wall0, cache_seconds
    if ctx.fabric.is_global_zero:
        write_result(run_dir, result)
        ctx.last.unlink(missing_ok=True)
    ctx.fabric.barrier()
    j.end_run(result_line(result))
    return result


def _threads(n: int) -> str:
    return f"{n} thread{'s' if n != 1 else ''}"


def result_line(r: RunResult) -> str:
    """'[name] test accuracy 85.24%, macro-F1 84.90%; converged (...); 12s': a run's end line."""
    m, conv = r.metrics or Metrics(), r.convergence or Convergence()
    if math.isfinite(conv.late_slope_pts):
        why = (
            f"late slope {conv.late_slope_pts:.2f} points per 10% of the run, final lr {conv.lr_end_ratio:.0%} of peak"
        )
    else:  # too few epochs for a slope
        why = f"{r.epochs} epochs, the rule needs at least {MIN_EPOCHS}"
    return (
        f"[{r.run_id}] test accuracy {100 * m.accuracy:.2f}%, macro-F1 {100 * m.f1_macro:.2f}%; "
        f"{'converged' if conv.converged else 'NOT converged'} ({why}); {duration(r.wall_time_s or 0.0)}"
    )


def _result(ctx: RunContext, role: str, objective: str, state: TrainState, test: dict, cost: dict) -> RunResult:
    """The result of a finished run: identity from the resolved config, the final state, its
    convergence evidence (`engine.convergence.run_evidence`), test metrics and cost."""
    cfg = ctx.cfg
    return RunResult(
        run_id=ctx.run_dir.name,
        role=role,
        dataset=cfg.data.dataset,
        model=cfg.train.model,
        teacher=cfg.distill.teacher,
        objective=objective,
        objective_name="teacher" if role == "teacher" else cfg.distill.loss,
        **hyper(cfg.distill.loss, role, cfg.distill.alpha, cfg.distill.beta, cfg.distill.T),
        seed=cfg.train.seed,
        size=ctx.data.size,
        metrics=Metrics(**test),
        val_accuracy=state.best_val,
        best_epoch=state.best_epoch,
        cost=Cost(**cost),
        epochs=len(state.history),
        epochs_auto=ctx.epochs_auto,
        convergence=Convergence(**run_evidence(state.history, state.best_epoch, cfg.train.lr)),
        train_time_s=sum(row["time_s"] for row in state.history),
        precision=ctx.precision,
        history=[Epoch(**row) for row in state.history],
        config=cfg.model_dump(),
        machine=_machine(),
    )


def distill(cfg: RunConfig, run_dir: str | Path | None = None, **kw) -> RunResult:
    """Train a student under a distillation objective from ``cfg.distill.teacher``."""
    if not cfg.distill.teacher:
        raise GeodistillError("distill needs --teacher PATH/TO/model.ckpt (a checkpoint from 'geodistill train').")
    return train(cfg, run_dir, **kw)


def evaluate(ckpt: str | Path, cfg: RunConfig | None = None, split: str = "test") -> Metrics:
    """Metrics of a checkpoint on one split of a dataset, with the checkpoint's own normalisation.

    ``cfg`` None: the data config the checkpoint trained with (its split files, ``n_per_class``,
    fractions or ratios and split seed), so ``split`` is exactly the trained one.
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
    use_threads(cfg.train)
    return Metrics(**evaluate_split(eval_fabric(cfg.train), model, data, getattr(data, split)))
