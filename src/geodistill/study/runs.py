"""Running a study's jobs: one at a time in this process, or in a pool of spawned workers.

A job that fails leaves ``failed.json`` (its identity as a finished run records it, the error
and the traceback) and the study goes on, unless it runs fail-fast (a recipe): then the error
stops the study. A finished job's ``failed.json`` is removed (it is stale).
"""

from __future__ import annotations

import contextlib
import logging
import multiprocessing
import os
import traceback
from collections.abc import Sequence
from concurrent.futures import ProcessPoolExecutor, as_completed
from pathlib import Path
from typing import Any

from geodistill.config.run import build_config
from geodistill.core import interrupt, progress
from geodistill.core import log as gdlog
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


_worker_data: dict | None = None  # a pool worker's prepared data, shared by the jobs it runs


def run_job(
    spec: dict, run_dir: str, role: str | None = None, fail_fast: bool = False, resume: bool = True,
    data: dict | None = None,
):  # fmt: skip
    """Train one job (resuming a half-done one); a failure becomes ``failed.json`` (or, fail-fast,
    stops the study). ``data``: the study's memo of prepared data (`api.data_for`), so runs on the
    same data do not prepare it again (a pool worker keeps its own)."""
    d = Path(run_dir)
    memo = data if data is not None else _worker_data
    try:
        cfg = build_config(spec, where=f"the study's run {d.name}")
        prepared = api.data_for(cfg, memo) if memo is not None else None
        result = api.train(cfg, d, resume=resume, role=role, data=prepared)
        (d / FAILED_FILE).unlink(missing_ok=True)  # an earlier failure is now stale
        return result
    except Exception as e:
        if fail_fast:
            raise
        logger.info(f"[{d.name}] failed: {type(e).__name__}: {e}")
        return record_failure(spec, d, e, traceback.format_exc(limit=6), role or "")


def _init_worker(devices: Sequence[str] | None, slots: Any, printing: bool, verbose: bool) -> None:
    """Pool worker start-up: with ``devices`` one device, signals recorded (a run checkpoints at
    its next step and stops; a copy forwarded by the parent, or one that comes while the worker
    waits, changes nothing more), and the parent's console output when it had one: warnings and errors only (the
    parent prints one line per finished point and the progress view), everything with
    ``verbose``. Each run sets its own CPU threads (``train.threads``)."""
    global _worker_data
    _worker_data = {}
    progress.disable_live()
    interrupt.handle_signals(record_only=True)
    if printing:
        gdlog.setup(verbose=verbose)
        if not verbose:
            logging.getLogger(gdlog.ROOT).setLevel(logging.WARNING)
    slot = slots.get() if slots is not None else 0
    if devices:
        os.environ["CUDA_VISIBLE_DEVICES"] = str(devices[slot % len(devices)])


def _forward(signum: int) -> None:
    """Pass a signal on to the worker processes, which checkpoint their runs and stop."""
    for child in multiprocessing.active_children():
        with contextlib.suppress(ProcessLookupError):
            os.kill(child.pid, signum)


def run_parallel(
    jobs: list[tuple[dict, str]], workers: int, devices: Sequence[str] | None, j: progress.Job, what: str = "sweep"
) -> None:
    """Run jobs in a process pool of spawned workers (torch is not fork-safe once its thread
    pools exist); a worker that dies records its job as failed. One line per finished job."""
    ctx = multiprocessing.get_context("spawn")
    n = min(workers, len(jobs))
    slots = ctx.Queue()
    for i in range(n):
        slots.put(i)
    threads = sorted({build_config(spec, where="a study's run").train.threads for spec, _ in jobs})
    on = f", devices {', '.join(map(str, devices))}" if devices else ""
    each = "/".join(map(str, threads))
    logger.info(f"{what}: {len(jobs)} points on {n} worker processes, {each} thread(s) each (train.threads){on}")
    verbose = logging.getLogger(gdlog.ROOT).getEffectiveLevel() <= logging.DEBUG
    args = (list(devices) if devices else None, slots, gdlog.is_setup(), verbose)
    with ProcessPoolExecutor(max_workers=n, mp_context=ctx, initializer=_init_worker, initargs=args) as pool:
        futures = {pool.submit(run_job, spec, run_dir): (spec, run_dir) for spec, run_dir in jobs}
        try:
            for f in as_completed(futures):
                spec, run_dir = futures[f]
                try:
                    result = f.result()
                except Exception as e:
                    result = record_failure(spec, run_dir, f"worker process failed: {type(e).__name__}: {e}")
                line = api.result_line(result) if result.ok else f"[{result.run_id}] failed: {result.error}"
                j.end_run(line, name=result.run_id)
        except interrupt.Interrupted as e:  # the workers checkpoint their runs; then the parent stops
            _forward(e.signum)
            pool.shutdown(wait=True, cancel_futures=True)
            raise
