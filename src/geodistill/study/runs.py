"""Running a study's jobs: one at a time in this process, or in a pool of spawned workers.

A job that fails leaves ``failed.json`` (its identity as a finished run records it, the error
and the traceback) and the study goes on, unless it runs fail-fast (a recipe): then the error
stops the study. A finished job's ``failed.json`` is removed (it is stale).
"""

from __future__ import annotations

import logging
import multiprocessing
import os
import traceback
from collections.abc import Sequence
from concurrent.futures import ProcessPoolExecutor, as_completed
from pathlib import Path
from typing import Any

import torch

from geodistill.config.run import build_config
from geodistill.core import log as gdlog
from geodistill.core import progress
from geodistill.core.errors import GeodistillError
from geodistill.engine import api
from geodistill.engine.objective import objective_of
from geodistill.losses import loss_needs_teacher
from geodistill.results.files import FAILED_FILE, write_result
from geodistill.results.result import RunResult, hyper, role_of

logger = logging.getLogger(__name__)


def failure_result(
    spec: dict[str, Any], run_dir: str | Path, error: BaseException | str, tb: str | None = None, role: str = ""
) -> RunResult:
    """What ``failed.json`` holds: the run's identity and coordinates, recorded as a finished run
    records them (its formula from `engine.objective.objective_of`), and the error."""
    try:
        cfg = build_config(dict(spec), where="a study's run")
        d, t, objective = cfg.distill, cfg.train, str(objective_of(cfg))
        config, data = cfg.model_dump(), cfg.data
    except Exception:  # the config itself is what failed: record what was asked for
        return RunResult(Path(run_dir).name, role or "student", status="failed", error=_text(error), config=dict(spec))
    try:
        needs = loss_needs_teacher(d.loss)
    except GeodistillError:
        needs = True
    role = role or role_of(needs)
    return RunResult(
        run_id=Path(run_dir).name,
        role=role,
        dataset=data.dataset,
        model=t.model,
        teacher=d.teacher,
        objective=objective,
        objective_name="teacher" if role == "teacher" else d.loss,
        **hyper(d.loss, role, d.alpha, d.beta, d.T),
        seed=t.seed,
        size=data.size,
        config=config,
        status="failed",
        error=_text(error),
        traceback=tb,
    )


def _text(error: BaseException | str) -> str:
    return error if isinstance(error, str) else f"{type(error).__name__}: {error}"


def record_failure(spec: dict[str, Any], run_dir: str | Path, error: BaseException | str, tb: str | None = None,
                   role: str = "") -> RunResult:  # fmt: skip
    """`failure_result`, written to the run's ``failed.json``."""
    result = failure_result(spec, run_dir, error, tb, role)
    Path(run_dir).mkdir(parents=True, exist_ok=True)
    write_result(run_dir, result)
    return result


def run_job(spec: dict, run_dir: str, role: str | None = None, fail_fast: bool = False, resume: bool = True):
    """Train one job (resuming a half-done one); a failure becomes ``failed.json`` (or, fail-fast,
    stops the study)."""
    d = Path(run_dir)
    try:
        result = api.train(build_config(spec, where=f"the study's run {d.name}"), d, resume=resume, role=role)
        (d / FAILED_FILE).unlink(missing_ok=True)  # an earlier failure is now stale
        return result
    except Exception as e:
        if fail_fast:
            raise
        logger.info(f"[{d.name}] failed: {type(e).__name__}: {e}")
        return record_failure(spec, d, e, traceback.format_exc(limit=6), role or "")


def worker_threads(workers: int) -> int:
    """CPU threads per worker: the usable cores divided evenly, at least 1."""
    try:
        cores = len(os.sched_getaffinity(0))
    except AttributeError:  # not on Linux
        cores = os.cpu_count() or 1
    return max(1, cores // max(1, workers))


def _init_worker(threads: int, devices: Sequence[str] | None, slots: Any, printing: bool, verbose: bool) -> None:
    """Pool worker start-up: a fair share of CPU threads, with ``devices`` one device, and the
    parent's console output when it had one: warnings and errors only (the parent prints one
    line per finished point and the progress view), everything with ``verbose``."""
    progress.disable_live()
    if printing:
        gdlog.setup(verbose=verbose)
        if not verbose:
            logging.getLogger(gdlog.ROOT).setLevel(logging.WARNING)
    slot = slots.get() if slots is not None else 0
    if devices:
        os.environ["CUDA_VISIBLE_DEVICES"] = str(devices[slot % len(devices)])
    for var in ("OMP_NUM_THREADS", "MKL_NUM_THREADS"):
        os.environ[var] = str(threads)
    torch.set_num_threads(threads)


def run_parallel(jobs: list[tuple[dict, str]], workers: int, devices: Sequence[str] | None, j: progress.Job) -> None:
    """Run jobs in a process pool of spawned workers (torch is not fork-safe once its thread
    pools exist); a worker that dies records its job as failed. One line per finished job."""
    ctx = multiprocessing.get_context("spawn")
    n = min(workers, len(jobs))
    slots = ctx.Queue()
    for i in range(n):
        slots.put(i)
    threads = worker_threads(n)
    on = f", devices {', '.join(map(str, devices))}" if devices else ""
    logger.info(f"sweep: {len(jobs)} points on {n} worker processes, {threads} thread(s) each{on}")
    verbose = logging.getLogger(gdlog.ROOT).getEffectiveLevel() <= logging.DEBUG
    args = (threads, list(devices) if devices else None, slots, gdlog.is_setup(), verbose)
    with ProcessPoolExecutor(max_workers=n, mp_context=ctx, initializer=_init_worker, initargs=args) as pool:
        futures = {pool.submit(run_job, spec, run_dir): (spec, run_dir) for spec, run_dir in jobs}
        for f in as_completed(futures):
            spec, run_dir = futures[f]
            try:
                result = f.result()
            except Exception as e:
                result = record_failure(spec, run_dir, f"worker process failed: {type(e).__name__}: {e}")
            j.end_run(api.result_line(result) if result.ok else f"[{result.run_id}] failed: {result.error}")
