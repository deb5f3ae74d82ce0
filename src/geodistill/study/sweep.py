"""Sweeps: α/β/T/loss grids, the loss ablation and seeds, run as one folder of points.

A sweep folder ``OUT`` holds::

    OUT/sweep.json              the description, the teachers and the points (folder names)
    OUT/teacher-s{seed}/        one teacher per dataset and seed (results.json, model.ckpt)
    OUT/{label}-s{seed}/        one student point: results.json, or failed.json if it failed

(with several datasets every folder name starts with the dataset's name). Rules:

* The teacher is trained (or loaded with ``teacher_ckpt``) once per dataset and seed, and its
  cache of logits/features is built once, before any of its students starts, so every student
  of the sweep reads the same cache.
* A point whose ``results.json`` exists is skipped: re-running a finished sweep trains nothing
  and writes nothing.
* A point that fails is recorded in ``failed.json`` (with its role, objective, α, β, T, seed,
  error) and the sweep goes on; the next run retries it.
* ``workers > 1`` runs points in a ``concurrent.futures.ProcessPoolExecutor`` (spawned
  processes, each with a fair share of the CPU threads and, optionally, its own device).
* ``shard="I/N"`` (1-based, or ``"slurm"``) runs one round-robin share of the points, so N
  processes on machines sharing ``OUT`` split a sweep; a teacher is trained and cached by the
  first shard that needs it, under ``OUT/teacher-…lock``, while the others wait for the lock to
  go (see :mod:`geodistill.study.shards`).

The description (a dict, or a YAML file with the same keys) holds ``recipe`` (a named recipe
under everything else; none if absent), ``base`` (config for teacher and students; its
``teacher``/``student`` sub-sections apply to one role only), ``teacher``, ``student``,
``datasets`` (optional list of names or ``data`` mappings), ``grid`` (field -> values, a
Cartesian product), ``ablation`` (bool) and ``seeds``.
"""

from __future__ import annotations

import hashlib
import itertools
import json
import logging
import multiprocessing
import os
import time
import traceback
import warnings
from collections.abc import Mapping, Sequence
from concurrent.futures import ProcessPoolExecutor, as_completed
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import torch
import yaml

from geodistill.config.merge import deep_merge, load_yaml
from geodistill.config.recipes import get_recipe
from geodistill.config.run import build_config
from geodistill.core import log as gdlog
from geodistill.core import progress
from geodistill.core.atomic import write_json, write_text
from geodistill.core.errors import GeodistillError, GeodistillWarning
from geodistill.data.views import plan_of
from geodistill.engine import api
from geodistill.engine.api import data_for
from geodistill.engine.convergence import NOT_CONVERGED
from geodistill.losses import PRESETS, Objective, get_preset, loss_coords, loss_fragment, loss_needs_teacher, safe_name
from geodistill.losses.presets import check_loss
from geodistill.results.result import FAILED_FILE, RESULTS_FILE, SWEEP_FILE, RunResult, hyper, read_result
from geodistill.study.shards import Shard, describe_owner, parse_shard, release, try_lock, wait_lock
from geodistill.teachers.sets import load_teachers, teacher_source

logger = logging.getLogger(__name__)

THESIS11 = [round(0.05 * i, 2) for i in range(11)]  # 0, 0.05, ..., 0.5
THESIS5 = [0.1, 0.2, 0.3, 0.4, 0.5]
NAMED_GRIDS = {"thesis11": THESIS11, "thesis5": THESIS5}
SWEEPABLE = ("alpha", "beta", "T", "loss")
TEACHER_TIMEOUT_S = 24 * 3600.0  # how long a shard waits for a teacher another shard builds
SWEEP_KEYS = ("recipe", "base", "teacher", "student", "datasets", "grid", "ablation", "seeds")


@dataclass
class Point:
    """One student run of a sweep: its folder name, its config dict, and the name of the
    teacher folder it distils from (None: no teacher, or an external ``teacher_ckpt``)."""

    name: str
    spec: dict
    teacher: str | None = None


@dataclass
class TeacherJob:
    """One teacher of a sweep (one per dataset and seed): folder name and config dict."""

    name: str
    spec: dict


@dataclass
class SweepPlan:
    """What a sweep will run: teachers first, then the student points."""

    teachers: list[TeacherJob]
    points: list[Point]
    seeds: list[int]
    datasets: list[str]

    def __iter__(self):
        """Unpacks as the earlier ``(teacher spec, seeds, points)`` tuple."""
        return iter((self.teachers[0].spec if self.teachers else None, self.seeds, self.points))


# ---------------------------------------------------------------- grids


def _is_num(v: Any) -> bool:
    return isinstance(v, (int, float)) and not isinstance(v, bool)


def _check_values(key: str, values: list, where: str) -> list:
    """Validate one grid axis; returns its values without duplicates (order kept)."""
    if not values:
        raise GeodistillError(f"{where} has no values; give at least one, e.g. alpha=[0.1,0.3].")
    out: list = []
    for v in values:
        if key == "alpha" and not (_is_num(v) and 0 <= v <= 1):
            raise GeodistillError(f"{where}: alpha value {v!r} is not a number in [0, 1].")
        if key == "beta":
            if isinstance(v, str) and v.strip().lower() in ("tied", "alpha", "none", "null"):
                v = None  # β = α (the presets' default)
            if v is not None and not (_is_num(v) and v >= 0):
                raise GeodistillError(f"{where}: beta value {v!r} is not a number >= 0 (or 'tied' for β = α).")
        if key == "T" and not (_is_num(v) and v > 0):
            raise GeodistillError(f"{where}: T value {v!r} is not a number > 0.")
        if key == "loss":
            if not isinstance(v, str) or not v.strip():
                raise GeodistillError(f"{where}: loss value {v!r} is not a preset name or an objective spec string.")
            v = v.strip()
            check_loss(v, where)
        if _is_num(v):
            v = float(v)
        if v not in out:
            out.append(v)
    return out


def _axis(key: str, raw: Any, where: str) -> list:
    if key not in SWEEPABLE:
        raise GeodistillError(f"{where}: {key!r} is not a sweepable field; use alpha, beta, T or loss.")
    if isinstance(raw, str) and raw.strip() in NAMED_GRIDS:
        if key != "alpha":
            raise GeodistillError(f"{where}: the named grid {raw.strip()!r} is a list of α values; use it with alpha.")
        return list(NAMED_GRIDS[raw.strip()])
    values = list(raw) if isinstance(raw, (list, tuple)) else [raw]
    return _check_values(key, values, where)


def parse_grid(items: Sequence[str]) -> dict[str, list]:
    """``["alpha=thesis5", "beta=[0,tied]", "T=4"]`` -> ``{"alpha": [0.1, …, 0.5], "beta": [0.0,
    None], "T": [4.0]}``. Named α grids: ``thesis11`` (0, 0.05, …, 0.5) and ``thesis5`` (0.1, …,
    0.5); otherwise a YAML value or list. ``beta`` ``tied`` (or ``null``) means β = α."""

    grid: dict[str, list] = {}
    for item in items:
        where = f"Grid entry {item!r}"
        if "=" not in item:
            raise GeodistillError(f"{where} is not name=values (e.g. alpha=thesis5 or beta=[0,0.001]).")
        key, raw = (s.strip() for s in item.split("=", 1))
        if key in grid:
            raise GeodistillError(f"{where}: {key!r} is given twice; put all its values in one list.")
        if raw in NAMED_GRIDS or key not in SWEEPABLE:
            grid[key] = _axis(key, raw, where)
            continue
        if key == "loss" and not raw.startswith("["):
            grid[key] = _axis(key, raw, where)  # one spec string, which may hold ':' and '@'
            continue
        try:
            value = yaml.safe_load(raw)
        except yaml.YAMLError:
            raise GeodistillError(f"{where}: cannot read {raw!r}; write a list such as [0.1, 0.3].") from None
        grid[key] = _axis(key, value, where)
    return grid


def normalize_grid(grid: Mapping[str, Any], where: str = "the sweep's grid") -> dict[str, list]:
    """A grid mapping (from YAML or Python) checked and expanded like :func:`parse_grid`."""
    if not isinstance(grid, Mapping):
        raise GeodistillError(f"{where} must map field names to lists, e.g. grid: {{alpha: [0.1, 0.3]}}.")
    return {str(k): _axis(str(k), v, f"{where}, field {k!r}") for k, v in grid.items()}


def load_sweep_file(path: str | Path) -> dict:
    """A sweep description from YAML (keys: see the module docstring), checked."""
    d = load_yaml(path)
    _check_sweep(d, str(path))
    if "grid" in d:
        d["grid"] = normalize_grid(d["grid"] or {}, f"In {path}, grid")
    return d


def _check_sweep(sweep: Mapping, where: str) -> None:
    for k in sweep:
        if k not in SWEEP_KEYS:
            raise GeodistillError(f"In {where}, key {k!r} is unknown; use {', '.join(SWEEP_KEYS)}.")
    for k in ("base", "teacher", "student"):
        if sweep.get(k) is not None and not isinstance(sweep[k], Mapping):
            raise GeodistillError(f"In {where}, {k!r} must be a mapping of config sections (data/train/distill).")
    seeds = sweep.get("seeds")
    if seeds is not None:
        seeds = seeds if isinstance(seeds, list) else [seeds]
        if not seeds or not all(isinstance(s, int) and not isinstance(s, bool) and s >= 0 for s in seeds):
            raise GeodistillError(f"In {where}, 'seeds' must be a list of integers >= 0, e.g. [0, 1, 2].")
    ds = sweep.get("datasets")
    if ds is not None and (not isinstance(ds, list) or not ds or not all(isinstance(x, (str, Mapping)) for x in ds)):
        raise GeodistillError(f"In {where}, 'datasets' must be a list of dataset names or data mappings.")


# ---------------------------------------------------------------- plan


def ablation() -> list[str]:
    """The loss ablation: every registered preset, in registration order."""
    return list(PRESETS)


def point_label(coords: Mapping[str, Any]) -> str:
    """Folder label of a point: ``thesis-a0.3-b0.001-T4`` (the α/β/T its preset uses); ``+`` ->
    ``_`` (``kl_cos``); a spec string becomes a file-safe text plus a short hash so two specs
    never share a folder."""
    return loss_fragment(str(coords["loss"]), coords)


def _coords(combo: Mapping[str, Any]) -> dict:
    return {"loss": combo["loss"], **loss_coords(combo["loss"], combo)}


def _datasets(sweep: Mapping) -> list[tuple[str | None, dict]]:
    raw = sweep.get("datasets")
    if not raw:
        return [(None, {})]
    out = []
    for d in raw:
        over = {"dataset": d} if isinstance(d, str) else dict(d)
        if "dataset" not in over:
            raise GeodistillError(f"Sweep dataset entry {d!r} has no 'dataset' name.")
        out.append((str(over["dataset"]), over))
    names = [n for n, _ in out]
    if len(set(names)) != len(names):
        raise GeodistillError(f"Sweep 'datasets' lists a dataset twice ({', '.join(names)}); give each once.")
    return out


def plan(sweep: Mapping[str, Any], teacher_ckpt: str | None = None) -> SweepPlan:
    """Expand a sweep description into teachers and student points (nothing is run).

    Config precedence, lowest first: recipe base, recipe role (teacher/student), ``base``,
    ``base.teacher``/``base.student``, ``teacher``/``student``, then the point's coordinates.
    The ablation takes each objective's α/β/T from the recipe's ``objectives`` when it lists
    that loss; grid points take them from the grid, else from the config. Student-alone runs
    come first; a point that two parts of the sweep share runs once.
    """
    _check_sweep(sweep, "the sweep description")
    recipe = sweep.get("recipe")
    r = get_recipe(recipe) if recipe else {"base": {}, "teacher": {}, "student": {}, "objectives": [], "seeds": [0]}
    user_base = dict(sweep.get("base") or {})
    role_over = {
        role: deep_merge(dict(user_base.pop(role, None) or {}), dict(sweep.get(role) or {}))
        for role in ("teacher", "student")
    }
    specs = {
        role: deep_merge(deep_merge(deep_merge(r["base"], r[role]), user_base), role_over[role])
        for role in ("teacher", "student")
    }
    teacher_ckpt = teacher_ckpt or (specs["student"].get("distill") or {}).get("teacher")
    seeds = sweep.get("seeds") if sweep.get("seeds") is not None else (r.get("seeds") or [0])
    seeds = [int(s) for s in (seeds if isinstance(seeds, list) else [seeds])]
    grid = normalize_grid(sweep.get("grid") or {})

    combos: list[dict] = [{"loss": "student"}]
    if sweep.get("ablation"):
        params = {o["loss"]: {k: o[k] for k in ("alpha", "beta", "T") if k in o} for o in r.get("objectives", [])}
        combos += [{**params.get(name, {}), "loss": name} for name in ablation()]
    if grid:
        grid.setdefault("loss", ["thesis"])
        keys = list(grid)
        combos += [dict(zip(keys, vals)) for vals in itertools.product(*(grid[k] for k in keys))]
    if len(combos) == 1:
        raise GeodistillError("The sweep has no points; give --grid (e.g. alpha=thesis5) and/or --ablation.")

    datasets = _datasets(sweep)
    if teacher_ckpt and len(datasets) > 1:
        raise GeodistillError("A teacher checkpoint serves one dataset; drop --teacher or sweep one dataset at a time.")
    teachers: dict[str, TeacherJob] = {}
    points: dict[str, Point] = {}
    for ds, data_over in datasets:
        prefix = f"{safe_name(ds)}-" if len(datasets) > 1 else ""
        for seed in seeds:
            tname = f"teacher-{prefix}s{seed}"
            for c in combos:
                coords = _coords(c)
                name = f"{prefix}{point_label(coords)}-s{seed}"
                if name in points:
                    continue
                distill = dict(coords)
                uses_teacher = loss_needs_teacher(coords["loss"])
                if uses_teacher and teacher_ckpt:
                    distill["teacher"] = str(teacher_ckpt)
                spec = deep_merge(specs["student"], {"data": data_over, "train": {"seed": seed}, "distill": distill})
                build_config(spec, where=f"sweep point {name}")
                points[name] = Point(name, spec, tname if uses_teacher and not teacher_ckpt else None)
                if points[name].teacher and tname not in teachers:
                    tspec = deep_merge(specs["teacher"], {"data": data_over, "train": {"seed": seed}})
                    tspec.setdefault("distill", {}).update({"teacher": None, "loss": "student"})
                    build_config(tspec, where=f"sweep teacher {tname}")
                    teachers[tname] = TeacherJob(tname, tspec)
    if teachers:
        t_model = next(iter(teachers.values())).spec.get("train", {}).get("model")
        s_model = specs["student"].get("train", {}).get("model")
        if t_model == s_model:
            warnings.warn(
                f"The sweep's teacher and student are both {t_model or 'the default cnn3'}; set "
                "teacher.train.model (or pick a recipe, e.g. thesis) to distil from a larger model.",
                GeodistillWarning,
                stacklevel=2,
            )
    return SweepPlan(
        list(teachers.values()),
        list(points.values()),
        seeds,
        [ds or specs["student"].get("data", {}).get("dataset", "synthetic") for ds, _ in datasets],
    )


# ---------------------------------------------------------------- one point


def failure_row(
    spec: Mapping[str, Any],
    run_dir: str | Path,
    error: BaseException | str,
    tb: str | None = None,
    role: str | None = None,
) -> dict:
    """What ``failed.json`` holds: a `RunResult` with status 'failed' carrying the identity and
    coordinates of the point (recorded as a finished run records them) + the error."""
    try:
        cfg = build_config(dict(spec), where="sweep point").model_dump()
    except GeodistillError:
        cfg = dict(spec)
    data, train, distill = cfg.get("data") or {}, cfg.get("train") or {}, cfg.get("distill") or {}
    loss = distill.get("loss", "student")
    objective = None
    try:
        preset = get_preset(loss)
        obj = (
            Objective.preset(loss, alpha=distill.get("alpha", 0.5), beta=distill.get("beta"), T=distill.get("T", 4.0))
            if preset
            else Objective.parse(loss)
        )
        objective = str(obj)
    except Exception:
        pass
    role = role or ("distilled" if _needs_teacher(loss) else "student")
    return RunResult(
        run_id=Path(run_dir).name,
        status="failed",
        error=error if isinstance(error, str) else f"{type(error).__name__}: {error}",
        role=role,
        dataset=data.get("dataset"),
        model=train.get("model"),
        teacher=distill.get("teacher"),
        objective=objective,
        objective_name=loss,
        **hyper(loss, role, distill.get("alpha"), distill.get("beta"), distill.get("T")),
        seed=train.get("seed"),
        size=data.get("size"),
        traceback=tb,
        config=cfg,
    ).to_dict()


def _needs_teacher(loss: str) -> bool:
    """`loss_needs_teacher`, True for a loss that does not parse (a failure row still records it)."""
    try:
        return loss_needs_teacher(loss)
    except GeodistillError:
        return True


def _write_failure(
    spec: Mapping[str, Any],
    run_dir: str | Path,
    error: BaseException | str,
    tb: str | None = None,
    role: str | None = None,
) -> dict:
    row = failure_row(spec, run_dir, error, tb, role)
    Path(run_dir).mkdir(parents=True, exist_ok=True)
    write_json(Path(run_dir) / FAILED_FILE, row)
    return row


def _record_coordinates(run_dir: Path, res: dict, spec: Mapping[str, Any]) -> dict:
    """A preset point at α = 0 (e.g. thesis, β tied) does not use its teacher, so the engine
    records α/β/T as None; the sweep writes back the coordinates it asked for, so the point
    stays on its α curve."""
    d = build_config(dict(spec), where="sweep point").distill
    preset = get_preset(d.loss)
    if (
        res.get("status") != "ok"
        or preset is None
        or "alpha" not in preset.uses
        or res.get("alpha") is not None
        or res.get("role") == "teacher"
    ):
        return res
    res = dict(res, alpha=d.alpha, beta=d.beta, T=d.T)
    write_json(run_dir / RESULTS_FILE, res)
    return res


def _run_point(spec: dict, run_dir: str) -> dict:
    """Train one point (resuming a half-done one); a failure becomes ``failed.json``."""

    d = Path(run_dir)
    try:
        res = api.train(build_config(spec, where=f"sweep point {d.name}"), d, resume=True)
        res = _record_coordinates(d, res, spec)
        (d / FAILED_FILE).unlink(missing_ok=True)  # an earlier failure is now stale
        return res
    except Exception as e:
        logger.info(f"[{d.name}] failed: {type(e).__name__}: {e}")
        return _write_failure(spec, d, e, traceback.format_exc(limit=6))


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


def worker_threads(workers: int) -> int:
    """CPU threads per worker: the usable cores divided evenly, at least 1."""
    try:
        cores = len(os.sched_getaffinity(0))
    except AttributeError:  # not on Linux
        cores = os.cpu_count() or 1
    return max(1, cores // max(1, workers))


def _run_parallel(jobs: list[tuple[dict, str]], workers: int, devices: Sequence[str] | None, j: progress.Job) -> None:
    """Run points in a process pool of spawned workers (torch is not fork-safe once its thread
    pools exist); a worker that dies records its point as failed. One line per finished point."""
    ctx = multiprocessing.get_context("spawn")
    n = min(workers, len(jobs))
    slots = ctx.Queue()
    for i in range(n):
        slots.put(i)
    threads = worker_threads(n)
    logger.info(
        f"sweep: {len(jobs)} points on {n} worker processes, {threads} thread(s) each"
        + (f", devices {', '.join(map(str, devices))}" if devices else "")
    )
    with ProcessPoolExecutor(
        max_workers=n,
        mp_context=ctx,
        initializer=_init_worker,
        initargs=(
            threads,
            list(devices) if devices else None,
            slots,
            gdlog.is_setup(),
            logging.getLogger(gdlog.ROOT).getEffectiveLevel() <= logging.DEBUG,
        ),
    ) as pool:
        futures = {pool.submit(_run_point, spec, run_dir): (spec, run_dir) for spec, run_dir in jobs}
        for f in as_completed(futures):
            spec, run_dir = futures[f]
            try:
                row = f.result()
            except Exception as e:
                row = _write_failure(spec, run_dir, f"worker process failed: {type(e).__name__}: {e}")
            name = Path(run_dir).name
            ok = row.get("status") != "failed"
            j.end_run(api.result_line(name, row) if ok else f"[{name}] failed: {row.get('error')}")


# ---------------------------------------------------------------- teachers and caches


def _run_teacher(job: TeacherJob, out: Path, data_cache: dict) -> str | None:
    """Train (or find) one teacher; returns None when it is ready, else the error text."""

    d = out / job.name
    if (d / RESULTS_FILE).is_file() and (d / "model.ckpt").is_file():
        return None
    cfg = build_config(job.spec, where=f"sweep teacher {job.name}")
    data = _data_for(cfg, data_cache)  # a data error (missing folder, ...) stops the sweep here
    try:
        api.train(cfg, d, resume=True, data=data, role="teacher")
        (d / FAILED_FILE).unlink(missing_ok=True)
        return None
    except Exception as e:
        row = _write_failure(job.spec, d, e, traceback.format_exc(limit=6), role="teacher")
        logger.info(f"sweep: teacher {job.name} failed: {row['error']}")
        return row["error"]


def _data_for(cfg, data_cache: dict):

    return data_for(cfg, data_cache)


def _warm_cache(spec: dict, data_cache: dict) -> None:
    """Build the teacher caches a point will read (no training), so that students started in
    parallel find them ready instead of each building them."""

    cfg = build_config(spec, where="sweep")
    if plan_of(cfg.data).teacher_runs_live:  # nothing to cache
        return
    data = _data_for(cfg, data_cache)
    teacher_source(cfg, data, load_teachers(cfg, data), feats=False)


# ---------------------------------------------------------------- the sweep


def _write_if_changed(path: Path, obj: Any) -> None:
    text = json.dumps(obj, indent=2, default=str) + "\n"
    if path.is_file() and path.read_text(encoding="utf-8") == text:
        return
    write_text(path, text)


def _result_of(out: Path, name: str) -> dict:
    for f in (RESULTS_FILE, FAILED_FILE):
        if (out / name / f).is_file():
            row = json.loads((out / name / f).read_text())
            return dict(row, status="failed") if f == FAILED_FILE else row
    return {"run_id": name, "status": "failed", "error": "not run"}


class _Busy:
    """What :func:`_prepare_teacher` answers while another shard holds the teacher's lock."""


BUSY = _Busy()


@dataclass
class _Teachers:
    """What preparing a sweep's teachers needs: the folder, this shard, how long to wait for a
    teacher another shard builds, the sweep's teacher jobs by folder name and a data memo."""

    out: Path
    shard: Shard
    timeout_s: float
    jobs: dict[str, TeacherJob]
    data_cache: dict = field(default_factory=dict)
    counted: set[str] = field(default_factory=set)  # teachers the progress job counts as runs of this process

    def lock(self, key: str) -> Path:
        """``OUT/teacher-s0.lock`` for a sweep teacher; ``OUT/teacher-cache-<hash>.lock`` for a
        given checkpoint (its cache is built once too)."""
        if key in self.jobs:
            return self.out / f"{key}.lock"
        return self.out / f"teacher-cache-{hashlib.sha256(key.encode()).hexdigest()[:12]}.lock"


def teacher_key(pt: Point) -> str | None:
    """What must be ready before point ``pt`` starts: its sweep teacher's folder name, or its
    given teacher checkpoint(s) as JSON (whose cache is built first), or None."""
    if pt.teacher:
        return pt.teacher
    given = pt.spec["distill"].get("teacher")
    return json.dumps(given) if given and _needs_teacher(pt.spec["distill"].get("loss", "student")) else None


def _teacher_ready(key: str, points: list[Point], ctx: _Teachers, waited: bool) -> str | None:
    """Under the teacher's lock: train (or find) sweep teacher ``key``, then build the cache its
    ``points`` read; None when ready, else why not. A teacher that another shard tried and
    failed while this one ``waited`` is not tried again (the next run of the sweep retries it)."""
    job = ctx.jobs.get(key)
    if job is not None:
        d = ctx.out / key
        if waited and not (d / RESULTS_FILE).is_file() and (d / FAILED_FILE).is_file():
            return f"teacher {key} failed: {read_result(d / FAILED_FILE).get('error')}"
        if key in ctx.counted and (d / RESULTS_FILE).is_file() and (d / "model.ckpt").is_file():
            ctx.counted.discard(key)  # trained by another shard meanwhile: count it as done here
            j = progress.current()
            if j is not None:
                j.end_run(f"[{key}] trained by another shard")
        err = _run_teacher(job, ctx.out, ctx.data_cache)
        if err:
            return f"teacher {key} failed: {err}"
    try:
        _warm_cache(points[0].spec, ctx.data_cache)
    except GeodistillError:
        raise
    except Exception as e:
        logger.info(f"sweep: could not pre-build the teacher cache of {key} ({type(e).__name__}: {e})")
    return None


def _prepare_teacher(key: str, points: list[Point], ctx: _Teachers, block: bool) -> str | _Busy | None:
    """Make teacher ``key`` ready for ``points`` under its lock file, so that across shards it is
    trained and cached once: None when ready, the error text when not, ``BUSY`` when another
    shard holds the lock and ``block`` is False (with ``block``: wait up to the timeout)."""
    lock = ctx.lock(key)
    owner = try_lock(lock, ctx.shard)
    if owner is not None:
        if not block:
            return BUSY
        owner = wait_lock(lock, ctx.shard, ctx.timeout_s)
        if owner is not None:
            where = ctx.out / key if key in ctx.jobs else key
            return (
                f"teacher {where} was not ready after {ctx.timeout_s:g}s: {describe_owner(owner)} still holds "
                f"{lock}; if that process is gone, delete the lock file and re-run (or raise --teacher-timeout)"
            )
    try:
        return _teacher_ready(key, points, ctx, waited=block)
    finally:
        release(lock)


def _run_points(
    points: list[Point],
    broken: dict[str, str],
    out: Path,
    workers: int,
    devices: Sequence[str] | None,
    j: progress.Job,
) -> int:
    """Run ``points`` (in a process pool when ``workers > 1``); a point whose teacher is in
    ``broken`` gets its failed.json instead. Returns how many were run."""
    jobs = []
    for pt in points:
        key = teacher_key(pt)
        if key in broken:
            _write_failure(pt.spec, out / pt.name, broken[key])
            j.end_run(f"[{pt.name}] not run: {broken[key]}")
        else:
            jobs.append((pt.spec, str(out / pt.name)))
    if workers > 1 and len(jobs) > 1:
        _run_parallel(jobs, workers, devices, j)
    else:
        for spec, run_dir in jobs:
            _run_point(spec, run_dir)
    return len(jobs)


def _run_todo(todo: list[Point], ctx: _Teachers, workers: int, devices: Sequence[str] | None, j: progress.Job) -> int:
    """Prepare the teachers no other shard is building, run the points that are then ready
    (student-alone points included), then wait for each teacher another shard was building and
    run its points. Shard I starts at its own teacher, so shards build different teachers at once."""
    groups: dict[str | None, list[Point]] = {}
    for pt in todo:
        groups.setdefault(teacher_key(pt), []).append(pt)
    keys = [k for k in groups if k is not None]
    turn = (ctx.shard.index - 1) % len(keys) if keys else 0
    broken: dict[str, str] = {}
    busy: list[str] = []
    for key in keys[turn:] + keys[:turn]:
        state = _prepare_teacher(key, groups[key], ctx, block=False)
        if state is BUSY:
            busy.append(key)
        elif isinstance(state, str):
            broken[key] = state
    n = _run_points([pt for pt in todo if teacher_key(pt) not in busy], broken, ctx.out, workers, devices, j)
    for key in busy:
        state = _prepare_teacher(key, groups[key], ctx, block=True)
        if isinstance(state, str):
            broken[key] = state
            logger.warning(f"sweep: {state}")
        n += _run_points(groups[key], broken, ctx.out, workers, devices, j)
    return n


def _write_sweep_file(out: Path, sweep: Mapping[str, Any], p: SweepPlan) -> None:
    """``OUT/sweep.json``: the same bytes from every shard (nothing shard-specific in it), written
    atomically and only when changed, so shards started together never race on it."""
    _write_if_changed(
        out / SWEEP_FILE,
        {
            "sweep": dict(sweep),
            "datasets": p.datasets,
            "seeds": p.seeds,
            "teachers": [t.name for t in p.teachers],
            "points": [pt.name for pt in p.points],
        },
    )


def _log_summary(out: Path, p: SweepPlan, shard: Shard, results: list[dict], ran: int, took: float) -> None:
    """The closing lines: points run, done and failed (with errors), how many finished points
    converged (of those that record it); for a shard, how many points of the other shards have
    no result yet."""
    failed = [r for r in results if r.get("status") == "failed"]
    text = f"sweep: {ran} points run in {took:.0f}s; {len(results) - len(failed)} done, {len(failed)} failed" + "".join(
        f"\n  {r['run_id']}: {r.get('error')}" for r in failed
    )
    flags = [c["converged"] for r in results if isinstance(c := r.get("convergence"), dict) and "converged" in c]
    if flags:
        text += f"\nsweep: {sum(flags)} of {len(flags)} finished points converged"
        text += "" if all(flags) else f" (the others: {NOT_CONVERGED}; train longer, train.epochs=auto)"
    if not shard.whole:
        mine = {r["run_id"] for r in results}
        others = [pt.name for pt in p.points if pt.name not in mine and not (out / pt.name / RESULTS_FILE).is_file()]
        text += f"\nsweep: shard {shard} is through; points of other shards without a result yet: {len(others)}"
    logger.info(text + f"\nsweep: results in {out}; write the report with: geodistill report {out}")


def _teachers_to_train(todo: list[Point], out: Path) -> list[str]:
    """The teacher folders the pending points need that hold no finished teacher yet."""
    names = dict.fromkeys(pt.teacher for pt in todo if pt.teacher)
    return [t for t in names if not ((out / t / RESULTS_FILE).is_file() and (out / t / "model.ckpt").is_file())]


def run_sweep(
    sweep: Mapping[str, Any],
    out: str | Path,
    *,
    workers: int = 1,
    teacher_ckpt: str | None = None,
    devices: Sequence[str] | None = None,
    retry_failed: bool = True,
    shard: Shard | str | None = None,
    teacher_timeout: float = TEACHER_TIMEOUT_S,
) -> list[dict]:
    """Run (or resume) a sweep, or one shard of it, under ``out``; returns one dict per student
    point of the shard (its results.json, or its failed.json with ``status: failed``), in plan order.

    ``workers``: points run in that many spawned processes; ``devices``: e.g. ``["0", "1"]``,
    worker k sees only device ``devices[k % len(devices)]`` (CUDA_VISIBLE_DEVICES);
    ``teacher_ckpt``: distil every point from this checkpoint instead of training teachers;
    ``retry_failed``: re-run points that failed before (else keep their failed.json);
    ``shard``: ``"I/N"`` (1-based), ``"slurm"`` or a `Shard`: run only the points at plan positions
    ``k ≡ I − 1 (mod N)`` (see `experiments.shards`); ``teacher_timeout``: seconds to wait for a
    teacher another shard is building before failing the points that need it.
    """
    shard = parse_shard(shard)
    if workers < 1:
        raise GeodistillError(f"--workers must be at least 1, not {workers}.")
    if teacher_ckpt and not Path(teacher_ckpt).is_file():
        raise GeodistillError(
            f"Teacher checkpoint {teacher_ckpt} does not exist; give the model.ckpt of a trained teacher."
        )
    teacher_ckpt = str(Path(teacher_ckpt).resolve()) if teacher_ckpt else None
    out = Path(out)
    p = plan(sweep, teacher_ckpt=teacher_ckpt)
    out.mkdir(parents=True, exist_ok=True)
    out_abs = out.resolve()
    for pt in p.points:
        if pt.teacher:
            pt.spec["distill"]["teacher"] = str(out_abs / pt.teacher / "model.ckpt")
    _write_sweep_file(out, sweep, p)

    def pending(pt: Point) -> bool:
        d = out / pt.name
        return not (d / RESULTS_FILE).is_file() and (retry_failed or not (d / FAILED_FILE).is_file())

    mine = shard.take(p.points)
    todo = [pt for pt in mine if pending(pt)]
    share = "" if shard.whole else f"; shard {shard} runs {len(mine)} of them"
    logger.info(f"sweep: {len(p.points)} points{share}, {len(mine) - len(todo)} already done, {len(todo)} to run")
    t0 = time.perf_counter()
    ctx = _Teachers(out, shard, teacher_timeout, {t.name: t for t in p.teachers})
    ctx.counted = set(_teachers_to_train(todo, out))
    with progress.job(len(ctx.counted) + len(todo)) as j:
        ran = _run_todo(todo, ctx, workers, devices, j)
    results = [_result_of(out, pt.name) for pt in mine]
    _log_summary(out, p, shard, results, ran, time.perf_counter() - t0)
    return results


__all__ = [
    "THESIS5",
    "THESIS11",
    "Point",
    "SweepPlan",
    "TeacherJob",
    "ablation",
    "failure_row",
    "load_sweep_file",
    "normalize_grid",
    "parse_grid",
    "plan",
    "point_label",
    "run_sweep",
    "teacher_key",
    "worker_threads",
]
