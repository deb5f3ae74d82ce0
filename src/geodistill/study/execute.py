"""The one executor of a study plan: serially, in a worker pool, or as one shard of many.

Rules (a study folder ``OUT``):

* ``OUT/sweep.json`` holds the study and its run names, the same bytes from every shard.
* Precision ``auto`` is decided for every architecture of the plan before anything trains, and
  recorded in ``OUT/precision/`` (`engine.precision`): every shard and re-run reads it.
* Each teacher is trained (or found) and its cache built once, before any of its students
  starts, under ``OUT/<teacher>.lock`` (`study.shards`): the first shard that needs it builds it,
  the others run their other points first and then wait for the lock.
* A point whose ``results.json`` exists is skipped: re-running a finished study trains nothing.
* A point that fails is recorded in ``failed.json`` and the study goes on (fail-fast studies,
  a recipe's, stop instead); the next run retries it.
* Budget checks run after the point they double, by the shard that owns that point.
"""

from __future__ import annotations

import hashlib
import json
import logging
import time
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from geodistill.config.merge import deep_merge, first_difference
from geodistill.config.run import build_config
from geodistill.core import progress
from geodistill.core.atomic import write_text
from geodistill.core.errors import GeodistillError
from geodistill.data.views import plan_of
from geodistill.engine import api
from geodistill.engine.convergence import NOT_CONVERGED
from geodistill.engine.precision import decide
from geodistill.models import build_model
from geodistill.results.files import FAILED_FILE, STUDY_FILE, ended, finished, read_result
from geodistill.results.result import RunResult
from geodistill.study.estimate import Estimate, estimate
from geodistill.study.plan import Job, StudyPlan, tied_notes
from geodistill.study.runs import record_failure, run_job, run_parallel
from geodistill.study.shards import TEACHER_TIMEOUT_S, Shard, describe_owner, parse_shard, release, try_lock, wait_lock
from geodistill.teachers.sets import load_teachers, teacher_source

logger = logging.getLogger(__name__)
BUSY = "busy"  # what preparing a teacher answers while another shard holds its lock


@dataclass
class Options:
    """How to execute: the shard, a worker pool and its devices, whether to retry failed points,
    how long to wait for a teacher another shard builds, whether a failure stops the study, and
    whether finished runs are trained again (``fresh``)."""

    shard: Shard = field(default_factory=Shard)
    workers: int = 1
    devices: Sequence[str] | None = None
    retry_failed: bool = True
    teacher_timeout: float = TEACHER_TIMEOUT_S
    fail_fast: bool = False
    fresh: bool = False
    what: str = "sweep"  # what the log lines call the study
    dry_run: bool = False  # print the plan and its expected time, write and train nothing


@dataclass
class Outcome:
    """What a study ran: this shard's points (results or failures, plan order) and checks."""

    runs: list[RunResult]
    checks: list[RunResult]
    ran: int


def result_of(out: Path, name: str) -> RunResult:
    """A run's result, or its failure, or a failure saying it was not run."""
    if ended(out / name):
        return read_result(out / name)
    return RunResult(name, "student", status="failed", error="not run")


def decide_precisions(plan: StudyPlan, out: Path) -> None:
    """Record the precision ``auto`` gives each architecture of the plan, before anything trains."""
    seen = set()
    for job in [*plan.teachers, *plan.runs]:
        cfg = build_config(job.spec, where=job.name)
        if cfg.train.precision == "auto" and cfg.train.model not in seen:
            seen.add(cfg.train.model)
            decide(cfg.train, build_model(cfg.train.model, 2, in_channels=cfg.data.channels or 3), out)


def _write_study_file(out: Path, plan: StudyPlan) -> None:
    """``OUT/sweep.json``: nothing shard-specific, written atomically and only when changed."""
    doc = {
        "study": plan.study.model_dump(mode="json"),
        "seeds": plan.study.seeds,
        "teachers": [t.name for t in plan.teachers],
        "points": [j.name for j in plan.runs],
        "checks": [j.name for j in plan.checks],
    }
    text = json.dumps(doc, indent=2, default=str) + "\n"
    path = out / STUDY_FILE
    if not (path.is_file() and path.read_text(encoding="utf-8") == text):
        write_text(path, text)


class _Teachers:
    """Teachers made ready under their lock files, each trained and cached once across shards."""

    def __init__(self, plan: StudyPlan, out: Path, opts: Options) -> None:
        self.plan, self.out, self.opts = plan, out, opts
        self.data: dict = {}
        self.counted: set[str] = set()  # teachers the progress job counts as runs of this process
        self.done: set[str] = set()  # teachers this process made ready

    def _train(self, job: Job, waited: bool) -> str | None:
        """Train (or find) one teacher under its lock; None when ready, else the error text. A
        teacher another shard tried and failed while this one ``waited`` is not tried again."""
        d = self.out / job.name
        if waited and not finished(d) and (d / FAILED_FILE).is_file():
            return f"teacher {job.name} failed: {read_result(d).error}"
        if job.name in self.counted and finished(d):
            self.counted.discard(job.name)  # trained by another shard meanwhile: count it as done here
            if (j := progress.current()) is not None:
                j.end_run(f"[{job.name}] trained by another shard")
        if job.name in self.done or (not self.opts.fresh and finished(d) and (d / "model.ckpt").is_file()):
            return None
        cfg = build_config(job.spec, where=f"the study's teacher {job.name}")
        data = api.data_for(cfg, self.data)  # a data error (missing folder, ...) stops the study here
        try:
            api.train(cfg, d, resume=not self.opts.fresh, data=data, role="teacher")
            (d / FAILED_FILE).unlink(missing_ok=True)
            self.done.add(job.name)
            return None
        except Exception as e:
            if self.opts.fail_fast:
                raise
            result = record_failure(job.spec, d, e, role="teacher")
            logger.info(f"sweep: teacher {job.name} failed: {result.error}")
            return f"teacher {job.name} failed: {result.error}"

    def _locked(self, key: str, block: bool, work) -> str | None:
        """``work(waited)`` under the lock of ``key`` (a teacher or a cache), or BUSY / why not."""
        lock = self.out / f"{key}.lock"
        owner = try_lock(lock, self.opts.shard)
        if owner is not None:
            if not block:
                return BUSY
            owner = wait_lock(lock, self.opts.shard, self.opts.teacher_timeout)
            if owner is not None:
                return (
                    f"teacher {self.out / key} was not ready after {self.opts.teacher_timeout:g}s: "
                    f"{describe_owner(owner)} still holds {lock}; if that process is gone, delete the lock file and "
                    "re-run (or raise --teacher-timeout)"
                )
        try:
            return work(block)
        finally:
            release(lock)

    def prepare(self, group: tuple[str, ...], points: list[Job], block: bool) -> str | None:
        """Make every teacher of ``group`` ready, then build the caches its ``points`` read:
        None when ready, BUSY when another shard holds a lock and ``block`` is False, else why not."""
        for name in group:
            state = self._locked(name, block, lambda waited, n=name: self._train(self.plan.teacher(n), waited))
            if state is not None:
                return state
        key = (
            "teacher-cache-"
            + hashlib.sha256(json.dumps(points[0].spec["distill"].get("teacher")).encode()).hexdigest()[:12]
        )
        return self._locked(key, True, lambda waited: self._warm(points[0]))

    def _warm(self, job: Job) -> None:
        """Build the teacher caches a point reads (no training), so points started in parallel
        find them ready instead of each building them."""
        cfg = build_config(job.spec, where=job.name)
        if plan_of(cfg.data).teacher_runs_live:  # nothing to cache
            return None
        data = api.data_for(cfg, self.data)
        try:
            teacher_source(cfg, data, load_teachers(cfg, data), feats=False)
        except GeodistillError:
            raise
        except Exception as e:
            logger.info(f"sweep: could not pre-build the teacher cache of {job.name} ({type(e).__name__}: {e})")
        return None


def _group(job: Job) -> tuple[str, ...] | None:
    """What must be ready before ``job`` starts: its teacher jobs, or a given checkpoint's cache."""
    if job.teachers:
        return job.teachers
    given = job.spec.get("distill", {}).get("teacher")
    return () if given else None


def _run(jobs: list[Job], broken: dict, out: Path, opts: Options, j: progress.Job, data: dict) -> int:
    """Run ``jobs`` (in a pool when ``opts.workers > 1``); a job whose teachers broke gets its
    failed.json instead. Returns how many ran."""
    todo = []
    for job in jobs:
        if (why := broken.get(_group(job))) is not None:
            record_failure(job.spec, out / job.name, why)
            j.end_run(f"[{job.name}] not run: {why}")
        else:
            todo.append((job.spec, str(out / job.name)))
    if opts.workers > 1 and len(todo) > 1:
        run_parallel(todo, opts.workers, opts.devices, j, opts.what)
        if opts.fail_fast:  # a recipe stops at its first failure, in a pool as it does serially
            failed = [r for r in (result_of(out, Path(d).name) for _, d in todo) if not r.ok]
            if failed:
                raise GeodistillError(f"Run {failed[0].run_id} failed: {failed[0].error}")
    else:
        for spec, run_dir in todo:
            run_job(spec, run_dir, fail_fast=opts.fail_fast, resume=not opts.fresh, data=data)
    return len(todo)


def _run_todo(todo: list[Job], teachers: _Teachers, out: Path, opts: Options, j: progress.Job) -> int:
    """Prepare the teachers no other shard is building, run the points that are then ready
    (student-alone points included), then wait for each teacher another shard was building and
    run its points. Shard I starts at its own teacher, so shards build different teachers at once."""
    groups: dict[tuple | None, list[Job]] = {}
    for job in todo:
        groups.setdefault(_group(job), []).append(job)
    keys = [k for k in groups if k is not None]
    turn = (opts.shard.index - 1) % len(keys) if keys else 0
    broken: dict[tuple, str] = {}
    busy: list[tuple] = []
    for key in keys[turn:] + keys[:turn]:
        state = teachers.prepare(key, groups[key], block=False)
        if state == BUSY:
            busy.append(key)
        elif state is not None:
            broken[key] = state
    n = _run([job for job in todo if _group(job) not in busy], broken, out, opts, j, teachers.data)
    for key in busy:
        if (state := teachers.prepare(key, groups[key], block=True)) is not None:
            broken[key] = state
            logger.warning(f"sweep: {state}")
        n += _run(groups[key], broken, out, opts, j, teachers.data)
    return n


def _checks(plan: StudyPlan, mine: list[Job], out: Path, opts: Options, data: dict) -> list[RunResult]:
    """The budget checks of this shard's points: each doubles its point's resolved epochs."""
    results = []
    for check in (c for c in plan.checks if c.double_of in {m.name for m in mine}):
        source = result_of(out, check.double_of)
        if source.ok and (opts.fresh or not finished(out / check.name)):
            spec = deep_merge(check.spec, {"train": {"epochs": 2 * int(source.epochs or 0)}})
            run_job(spec, str(out / check.name), fail_fast=opts.fail_fast, resume=not opts.fresh, data=data)
        results.append(result_of(out, check.name))
    return results


def _log_summary(out: Path, plan: StudyPlan, opts: Options, results: list[RunResult], ran: int, took: float) -> None:
    """The closing lines: points run, done and failed (with errors), how many converged; for a
    shard, how many points of the other shards have no result yet; where the results are."""
    failed = [r for r in results if not r.ok]
    w = opts.what
    text = f"{w}: {ran} points run in {took:.0f}s; {len(results) - len(failed)} done, {len(failed)} failed"
    text += "".join(f"\n  {r.run_id}: {r.error}" for r in failed)
    flags = [r.converged for r in results if r.converged is not None]
    if flags:
        text += f"\n{w}: {sum(flags)} of {len(flags)} finished points converged"
        text += "" if all(flags) else f" (the others: {NOT_CONVERGED}; train longer, train.epochs=auto)"
    if not opts.shard.whole:
        mine = {r.run_id for r in results}
        others = [p.name for p in plan.runs if p.name not in mine and not finished(out / p.name)]
        text += f"\n{w}: shard {opts.shard} is through; points of other shards without a result yet: {len(others)}"
    logger.info(text + f"\n{w}: results in {out}; write the report with: geodistill report {out}")


@dataclass
class _Work:
    """What this process has to do: its share of the points, those not finished, the teachers
    they need that are not finished, and the budget checks of its points."""

    mine: list[Job]
    todo: list[Job]
    teachers: list[str]
    checks: list[Job]


def _work(plan: StudyPlan, out: Path, opts: Options) -> _Work:
    def pending(job: Job) -> bool:
        d = out / job.name
        return opts.fresh or (not finished(d) and (opts.retry_failed or not (d / FAILED_FILE).is_file()))

    mine = opts.shard.take(plan.runs)
    todo = [job for job in mine if pending(job)]
    needed = dict.fromkeys(t for job in todo for t in job.teachers)
    teachers = [t for t in needed if opts.fresh or not finished(out / t)]
    _warn_stale(
        [j for j in mine if j not in todo] + [t for t in plan.teachers if t.name in needed and t.name not in teachers],
        out,
    )
    names = {m.name for m in mine}
    checks = [c for c in plan.checks if c.double_of in names and (opts.fresh or not finished(out / c.name))]
    return _Work(mine, todo, teachers, checks)


NOT_COMPARED = ("data.cache_dir", "train.progress", "distill.teacher", "out", "name")
"""Config keys a reused run may differ in without a warning: where caches and outputs go, whether
progress is shown, and the teachers' paths (the plan names each teacher, compared as a run)."""


def _warn_stale(reused: list[Job], out: Path) -> None:
    """One warning for the finished runs reused although the plan now configures them otherwise."""
    stale = {}
    for job in reused:
        stored = read_result(out / job.name).config if finished(out / job.name) else {}
        if diff := first_difference(job.spec, stored, NOT_COMPARED):
            stale[job.name] = diff
    if stale:
        first, diff = next(iter(stale.items()))
        logger.warning(f"{len(stale)} finished run(s) in {out} are reused as trained although their config has "
                       f"changed, e.g. {first} ({diff}); delete their folders to train them again")  # fmt: skip


def _estimate(plan: StudyPlan, out: Path, opts: Options, work: _Work, data: dict) -> Estimate | None:
    """The expected time of the work, logged before it starts (None when it could not be timed:
    the estimate never stops a study, except for a user error, which training would meet too)."""
    jobs = [plan.teacher(t) for t in work.teachers] + work.todo
    doubled = [(c, next(j for j in plan.runs if j.name == c.double_of)) for c in work.checks]
    try:
        e = estimate(jobs, out, teachers=plan.teachers, data=data, record=not opts.dry_run, doubled=doubled,
                     resume=not opts.fresh)  # fmt: skip
    except GeodistillError:
        raise
    except Exception as err:
        logger.warning(f"{opts.what}: no time estimate ({type(err).__name__}: {err})")
        return None
    logger.info(e.line(opts.what, parallel=opts.workers))
    return e


def execute(plan: StudyPlan, out: str | Path, opts: Options | None = None, **kw: Any) -> Outcome:
    """Run (or resume) ``plan`` in ``out``, or one shard of it (``opts``, or its fields as keywords);
    with ``opts.dry_run`` only say what would run and how long it is expected to take."""
    opts = opts or Options(**kw)
    opts.shard = parse_shard(opts.shard)
    if opts.workers < 1:
        raise GeodistillError(f"--workers must be at least 1, not {opts.workers}.")
    out = Path(out)
    if not opts.dry_run:
        out.mkdir(parents=True, exist_ok=True)
        _write_study_file(out, plan)
        decide_precisions(plan, out)
    work = _work(plan, out, opts)
    share = "" if opts.shard.whole else f"; shard {opts.shard} runs {len(work.mine)} of them"
    done = len(work.mine) - len(work.todo)
    logger.info(f"{opts.what}: {len(plan.runs)} points{share}, {done} already done, {len(work.todo)} to run")
    for note in tied_notes(plan):
        logger.info(f"{opts.what}: {note}")
    teachers = _Teachers(plan, out, opts)
    e = _estimate(plan, out, opts, work, teachers.data)
    if opts.dry_run:
        logger.info(e.table() if e is not None else "\n".join(f"  {j.name}" for j in work.todo))
        return Outcome([], [], 0)
    teachers.counted = set(work.teachers)
    t0 = time.perf_counter()
    with progress.job(len(teachers.counted) + len(work.todo) + len(work.checks)) as j:
        if e is not None:
            j.expect(e.expected(opts.workers))
        ran = _run_todo(work.todo, teachers, out, opts, j)
        check_results = _checks(plan, work.mine, out, opts, teachers.data)
    results = [result_of(out, job.name) for job in work.mine]
    _log_summary(out, plan, opts, results, ran, time.perf_counter() - t0)
    return Outcome(results, check_results, ran)
