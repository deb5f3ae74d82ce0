"""Converged distillation on AID (issue 11): does any method beat the student alone once every
run has converged?

Data: ``../shared/data/aid150`` (AID, 30 classes), dataset ``folder``, the 60/20/20 split with
split seed 0, 32 px; CNN4 teachers -> CNN3 students; accuracy on the held-out test split of
each run's best-validation checkpoint; every setting is chosen on validation accuracy.

Schedules (see BENCHMARKS.md): teachers 150 epochs AdamW lr 3e-3; students 300 epochs AdamW lr
1e-2 (150 epochs screens the methods: it fails the budget check), batch 64, 1 epoch warm-up,
cosine decay to 0. Every run's ``converged`` flag and the budget checks (seed 0 at twice the
epochs; the compared budget on seeds 0-2, their mean deciding) are reported.

Methods (each a config of the product, fed by the exact teacher cache):
``alone`` (CE); ``kl`` (one teacher); ``kl_grid`` (8 dihedral x 3x3 crop views, cached);
``kl_tta`` (the teacher's answer averaged over the 8 views of each image: test-time
augmentation read from the same cache); ``kl_feat`` (KL + feature cosine); ``dist`` (CE +
DIST, Huang et al. 2022, built for a student far weaker than its teacher); ``ens3`` (mean
logits of 3 teachers, seeds 0-2); ``oof3`` (3 fold teachers, each image labelled by the teacher
that did not train on it).

Plan: KL's (α, T) tuned on seed 0 by validation; every method screened on seed 0 at 150
epochs (an order only: that budget is not converged); every method and the student alone over
5 seeds at 300 epochs, KL's (α, T) and DIST's τ checked again there on seed 0. Tier 2
(MobileNetV2) runs the screening's pick, DIST. The 300-epoch budget then failed its check over
seeds 0-2, so the student alone and the four methods that validated best there run at 600
epochs over 5 seeds, with a 1200-epoch check (``double_plan``), summarised as a tier of their
own (``TIERS``). A tier's best method is the one with the best mean validation accuracy over
the seeds every method has (its object in ``results/converged.json``); at 600 epochs that is
the 3-teacher ensemble, which the ``thesis`` recipe ships.

Resumable and parallel by lanes: ``python -m benchmarks.converged --lane teachers`` and
``--lane students`` in two shells (one torch thread each); a run whose teachers or whose
selected method are not ready yet waits. ``--summarise`` writes ``results/converged.json`` and
the Markdown section from the finished runs (labelled partial while runs are missing).
"""

from __future__ import annotations

import argparse
import datetime as dt
import json
import logging
import os
import shutil
import statistics
import time
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch

from benchmarks.__main__ import assemble, machine
from benchmarks.aid import _ci, _pm, paired
from geodistill.analysis.intervals import image_gains, image_variance
from geodistill.config.run import build_config
from geodistill.data.prepare import prepare_data
from geodistill.data.transforms import Normalizer, apply_view
from geodistill.engine.api import train
from geodistill.engine.convergence import BUDGET_GAIN, budget_check, evidence
from geodistill.models.checkpoint import load_classifier
from geodistill.study.shards import Shard, describe_owner, release, try_lock

HERE = Path(__file__).resolve().parent
AID = Path(os.environ.get("GEODISTILL_AID", HERE.parents[1] / "shared" / "data" / "aid150"))
RESULTS = HERE / "results"
SEEDS = [0, 1, 2, 3, 4]
FOLDS = 3
TEACHER = {"model": "cnn4", "epochs": 150, "lr": 3e-3}
SCREEN = {"model": "cnn3", "epochs": 150, "lr": 1e-2}  # screening budget: fails the budget check (+1.35 val at 2x)
STUDENT = {**SCREEN, "epochs": 300}  # the compared budget (its own budget check: e600_alone_s0..2)
# seeds of the compared budget's check: one seed's check is noise-bound (seed 0 at 600 epochs gave
# -0.05 validation points at 2 threads, +0.75 at 1 thread, resumed once; the seeds' sd is ~0.9)
CHECK_SEEDS = (0, 1, 2)
# the paper's student at CPU scale, 32 px, never passed a budget check: at lr 3e-3 60, 120 and 240
# epochs gained +7.7, +5.6 and +1.45 validation points at twice the epochs, at lr 1e-2 (run names
# f"{FAST}{epochs}_alone_s0") 60 and 240 gained +10.05 and > +2. Its 960-epoch check (~3.7 h a run
# at 1 thread) does not fit this machine, so tier 2 is reported at its longest budget, 480 epochs
# at lr 1e-2 (~112 min a run), seed 0 only, labelled not shown converged
SCREEN2 = {"model": "mobilenet_v2", "epochs": 60, "lr": 3e-3}
FAST2, FAST = {**SCREEN2, "lr": 1e-2}, "mnv2f"
STUDENT2 = {**FAST2, "epochs": 480}
PROBE2, PAPER = "mnv2_", "mnv2f480_"  # run-name prefixes of tier 2's probe (60 epochs) and compared budget
METHODS = [
    "kl",
    "kl_tta",
    "kl_grid",
    "kl_feat",
    "dist",
    "ens3",
    "oof3",
]  # the order they run: one-teacher methods first
TUNE = [(0.5, 4.0), (0.9, 4.0), (0.5, 2.0), (0.9, 8.0)]  # (α, T) of KL, tried on seed 0 by validation
LONG = "e300_"  # run-name prefix of the compared (converged) budget
DOUBLE = "e600_"  # twice it: the student alone there is its budget check, the methods its next tier
QUAD = "e1200_"  # twice that: the 600-epoch tier's budget check
DOUBLE_METHODS = ("dist", "kl_tta", "ens3", "kl")  # the best-validating methods at 300 epochs, run at 600
STUDENT_X2 = {**STUDENT, "epochs": 2 * STUDENT["epochs"]}  # the students of the DOUBLE runs
BF16 = "bf16_"  # the same runs under bf16 autocast (CPU AMX): does precision "auto" keep accuracy?


def base(out: Path, cache: Path, train_over: dict, data_over: dict | None = None) -> dict:
    """The run spec shared by every run: AID at 32 px, split seed 0, batch 64."""
    data = {"dataset": "folder", "root": str(AID), "size": 32, "split_seed": 0, "cache_dir": str(cache)}
    return {
        "data": {**data, **(data_over or {})},
        "train": {"batch_size": 64, "warmup_epochs": 1, "progress": False, **train_over},
        "out": str(out),
    }


def teacher_runs(out: Path, cache: Path) -> dict[str, dict]:
    """Three full-data teachers (seeds 0-2) and ``FOLDS`` fold teachers (seed 0)."""
    runs = {f"t4_s{s}": base(out, cache, {**TEACHER, "seed": s}) for s in (0, 1, 2)}
    for k in range(FOLDS):
        runs[f"t4_fold{k}"] = base(out, cache, {**TEACHER, "seed": 0}, {"folds": FOLDS, "hold_out": k})
    return runs


def teacher_check(out: Path, cache: Path) -> tuple[str, dict]:
    """The teacher's budget check: seed 0 at twice the epochs."""
    return "t4x2_s0", base(out, cache, {**TEACHER, "seed": 0, "epochs": 2 * TEACHER["epochs"]})


def method_distill(out: Path, method: str, alpha: float, T: float) -> tuple[dict, dict]:
    """(data override, distill section) of a method at (α, T)."""
    ckpt = lambda name: str(out / name / "model.ckpt")  # noqa: E731
    kl = {"loss": "kl", "alpha": alpha, "T": T, "teacher": ckpt("t4_s0")}
    return {
        "kl": ({}, kl),
        "kl_grid": ({"augment": "dihedral+grid", "crop_grid": 3, "crop_pad": 4}, kl),
        "kl_tta": ({}, {**kl, "view_mean": True}),
        "kl_feat": ({}, {**kl, "loss": "kl+feat", "beta": 1.0}),
        "dist": ({}, {**kl, "loss": "dist", "T": 1.0}),  # made for a large teacher-student gap (tau = 1)
        "ens3": ({}, {**kl, "teacher": [ckpt(f"t4_s{s}") for s in (0, 1, 2)], "ensemble": "logits"}),
        "oof3": ({}, {**kl, "teacher": [ckpt(f"t4_fold{k}") for k in range(FOLDS)], "ensemble": "out_of_fold"}),
    }[method]


def student_run(
    out: Path, cache: Path, method: str, seed: int, alpha: float = 0.5, T: float = 4.0, student: dict = SCREEN
) -> dict:
    """The spec of one student (``student``: its train section): alone, or a method at (α, T)."""
    if method == "alone":
        return base(out, cache, {**student, "seed": seed})
    data_over, distill = method_distill(out, method, alpha, T)
    return {**base(out, cache, {**student, "seed": seed}, data_over), "distill": distill}


def _teachers_of(spec: dict) -> list[str]:
    t = (spec.get("distill") or {}).get("teacher")
    return [] if not t else [t] if isinstance(t, str) else t


def run_one(name: str, spec: dict, out: Path, role: str | None = None) -> dict | None:
    """Train ``name`` unless finished (resumes a half-finished run); waits for its teachers. A run
    another lane is training (its lock ``name.lock`` is held) is left to it: None."""
    while not all(Path(t).is_file() and (Path(t).parent / "results.json").is_file() for t in _teachers_of(spec)):
        time.sleep(30)
    lock = out / f"{name}.lock"
    out.mkdir(parents=True, exist_ok=True)
    if (owner := try_lock(lock, Shard())) is not None:
        logging.info(f"[{name}] trained by another lane ({describe_owner(owner)}), skipped here")
        return None
    try:
        return train(build_config(spec, where=name), out / name, resume=True, role=role)
    finally:
        release(lock)


def _val(out: Path, name: str) -> float | None:
    f = out / name / "results.json"
    return json.loads(f.read_text())["val_accuracy"] if f.is_file() else None


def tuned(out: Path) -> tuple[float, float] | None:
    """The (α, T) of KL with the best validation accuracy on seed 0 (None until all are done)."""
    vals = {at: _val(out, f"tune_a{at[0]}_T{at[1]:g}") for at in TUNE}
    if any(v is None for v in vals.values()):
        return None
    return max(vals, key=lambda at: vals[at])


def screen_plan(out: Path, cache: Path, alpha: float, T: float) -> list[tuple[str, dict]]:
    """The screening budget (150 epochs): every method on seed 0 at the tuned (α, T); KL and
    KL from the 8-view teacher also on seeds 1-4 (measured before the budget check failed)."""
    plan = [(f"{m}_s0", student_run(out, cache, m, 0, alpha, T)) for m in METHODS]
    return plan + [(f"{m}_s{s}", student_run(out, cache, m, s, alpha, T)) for m in ("kl", "kl_tta") for s in SEEDS[1:]]


def selected(out: Path, wait: bool = True) -> str | None:
    """The method with the best seed-0 validation accuracy at the screening budget (waits until
    every method's screening run has finished, unless ``wait`` is false)."""
    while True:
        vals = {m: _val(out, f"{m}_s0") for m in METHODS}
        if all(v is not None for v in vals.values()):
            return max(vals, key=lambda m: vals[m])
        if not wait:
            return None
        time.sleep(30)


def long_run(out: Path, cache: Path, method: str, seed: int, alpha: float, T: float) -> tuple[str, dict]:
    """One run at the compared budget (``STUDENT``: 300 epochs)."""
    return f"{LONG}{method}_s{seed}", student_run(out, cache, method, seed, alpha, T, STUDENT)


def retune_plan(out: Path, cache: Path) -> list[tuple[str, dict]]:
    """KL's (α, T) grid and DIST's τ = 4 (its CIFAR setting) again at the compared budget, seed 0:
    the screening budget they were tuned at was not converged. A check, not applied: the compared
    runs keep the screening's settings, and the summary says if another one validates higher."""
    plan = [(f"{LONG}tune_a{a}_T{T:g}_s0", student_run(out, cache, "kl", 0, a, T, STUDENT)) for a, T in TUNE]
    dist = student_run(out, cache, "dist", 0, student=STUDENT)
    return plan + [(f"{LONG}tune_dist_T4_s0", {**dist, "distill": {**dist["distill"], "T": 4.0}})]


def methods_plan(out: Path, cache: Path, alpha: float, T: float) -> list[tuple[str, dict]]:
    """Every method at the compared budget, seed by seed (so a stopped plan still has pairs on
    the first seeds), the re-tuning check after seed 1; runs already finished (KL, DIST) are
    skipped by ``run_one``, and the re-tuning run equal to KL's seed 0 is copied from it."""
    runs = [long_run(out, cache, m, s, alpha, T) for s in SEEDS for m in METHODS]
    return runs[: 2 * len(METHODS)] + retune_plan(out, cache) + runs[2 * len(METHODS) :]


def converged_best(
    rows: dict[str, dict], prefix: str = LONG, methods: tuple[str, ...] = tuple(METHODS)
) -> tuple[str | None, list[int]]:
    """The method with the best mean validation accuracy at budget ``prefix``, over the seeds
    every one of ``methods`` has finished there (None while one has none), and those seeds."""
    val = {m: {r["seed"]: r["val_accuracy"] for r in _rows_of(rows, prefix + m)} for m in methods}
    common = sorted(set.intersection(*(set(v) for v in val.values())))
    if not common:
        return None, []
    mean = {m: statistics.fmean(val[m][s] for s in common) for m in methods}
    return max(mean, key=lambda m: mean[m]), common


def alone_check(out: Path, cache: Path, seed: int) -> tuple[str, dict]:
    """The compared budget's own budget check on ``seed``: the student alone at twice its epochs."""
    return f"{DOUBLE}alone_s{seed}", base(out, cache, {**STUDENT_X2, "seed": seed})


def double_plan(out: Path, cache: Path, alpha: float, T: float) -> list[tuple[str, dict]]:
    """The compared budget failed its 3-seed check (+1.57 validation points at 600 epochs), so the
    student alone and the methods that validated best at 300 epochs run at 600, seed by seed;
    the 600-epoch budget's own check (1200 epochs, seeds 0-2) runs right after seed 0, since
    whether 600 converges decides what the other seeds are worth."""
    runs = [
        (f"{DOUBLE}{m}_s{s}", student_run(out, cache, m, s, alpha, T, STUDENT_X2))
        for s in SEEDS
        for m in ("alone", *DOUBLE_METHODS)
    ]
    twice = {**STUDENT_X2, "epochs": 2 * STUDENT_X2["epochs"]}
    check = [(f"{QUAD}alone_s{s}", base(out, cache, {**twice, "seed": s})) for s in CHECK_SEEDS]
    return runs[: 1 + len(DOUBLE_METHODS)] + check + runs[1 + len(DOUBLE_METHODS) :]


def paper_plan(out: Path, cache: Path, method: str, alpha: float, T: float) -> list[tuple[str, dict]]:
    """Tier 2: the probe (60 epochs at lr 3e-3: the MobileNetV2 student alone and with tier 1's
    selected method, seed 0, and the budget checks at 120 and 240 epochs), then at ``STUDENT2``
    both, seed by seed (so a stopped plan still has pairs); seed 0's student alone there is the
    lr-1e-2 ladder's run of the same name."""
    at = lambda e: {**SCREEN2, "epochs": e}  # noqa: E731
    probe = [(f"{PROBE2}alone_s0", student_run(out, cache, "alone", 0, student=SCREEN2))]
    probe += [(f"{PROBE2}{method}_s0", student_run(out, cache, method, 0, alpha, T, SCREEN2))]
    probe += [(f"{PROBE2}alone2x_s0", student_run(out, cache, "alone", 0, student=at(120)))]
    probe += [("mnv2e120_alone2x_s0", student_run(out, cache, "alone", 0, student=at(240)))]
    plan = []
    for s in SEEDS:
        plan += [(f"{PAPER}alone_s{s}", student_run(out, cache, "alone", s, student=STUDENT2))]
        plan += [(f"{PAPER}{method}_s{s}", student_run(out, cache, method, s, alpha, T, STUDENT2))]
    return probe + plan


def ladder_plan(out: Path, cache: Path) -> list[tuple[str, dict]]:
    """Tier 2's schedule at lr 1e-2, seed 0: the student alone at 60, 120, 240 and 480 epochs
    (each the budget check of the one before)."""
    at = lambda e: {**FAST2, "epochs": e}  # noqa: E731
    return [(f"{FAST}{e}_alone_s0", student_run(out, cache, "alone", 0, student=at(e))) for e in (60, 120, 240, 480)]


def _copy_run(out: Path, src: str, name: str) -> None:
    """Copy finished run ``src`` to ``name`` unless it exists, under ``name``'s lock (both lanes
    may reach the same copy)."""
    if (out / name).exists() or try_lock(out / f"{name}.lock", Shard()) is not None:
        return
    try:
        if not (out / name).exists():
            shutil.copytree(out / src, out / name)
            logging.info(f"[{name}] the same run as {src}: copied")
    finally:
        release(out / f"{name}.lock")


def run_plan(plan: list[tuple[str, dict]], out: Path) -> None:
    """``run_one`` over ``plan``, a run whose spec equals an earlier finished run's copied from it."""
    done: dict[str, str] = {}
    for name, spec in plan:
        key = json.dumps(build_config(spec, where=name).model_dump(), sort_keys=True, default=str)
        if key in done and (out / done[key] / "results.json").is_file():
            _copy_run(out, done[key], name)
        run_one(name, spec, out)
        done.setdefault(key, name)


def lane_teachers(out: Path, cache: Path) -> None:
    """Teachers; the out-of-fold screening run (it needs the fold teachers); the selected
    method's seeds 4 and 3; the teacher's own budget check; tier 2's probe and its seed-0 pair at
    ``STUDENT2`` (480 epochs at lr 1e-2, the ladder's last rung); KL at 300 epochs, seeds 1-4
    (tier 1's table asks for KL on every seed); every other method at 300 epochs (shared with the
    students lane); the 600-epoch checks on seeds 0-2 (one seed's check is within seed noise). Tier 2's
    seeds 1-4 are not planned: no budget that fits this machine passed its check."""
    for name, spec in teacher_runs(out, cache).items():
        run_one(name, spec, out, role="teacher")
    alpha, T = tuned(out)
    run_one("oof3_s0", student_run(out, cache, "oof3", 0, alpha, T), out)
    best = selected(out)
    for s in (4, 3):
        run_one(*long_run(out, cache, best, s, alpha, T), out)
    run_one(*teacher_check(out, cache), out, role="teacher")
    run_plan(ladder_plan(out, cache)[:1], out)
    plan = paper_plan(out, cache, best, alpha, T)
    run_plan(plan[: [name for name, _ in plan].index(f"{PAPER}{best}_s0") + 1], out)
    for s in SEEDS[1:]:  # KL at the compared budget on every seed (seed 0 ran in the students lane)
        run_one(*long_run(out, cache, "kl", s, alpha, T), out)
    run_plan(ladder_plan(out, cache)[3:], out)
    run_plan(methods_plan(out, cache, alpha, T), out)
    for s in CHECK_SEEDS:
        run_one(*alone_check(out, cache, s), out)
    run_plan(double_plan(out, cache, alpha, T), out)


def precision_plan(out: Path, cache: Path, alpha: float, T: float) -> list[tuple[str, dict]]:
    """The student alone and DIST at the compared budget under bf16-mixed, seeds 0-4 (0-2 first),
    each paired with the fp32 run of the same name without ``BF16``: what precision "auto" costs
    in accuracy where it picks bf16."""
    plan = []
    for s in SEEDS:
        for m in ("alone", "dist"):
            name, spec = long_run(out, cache, m, s, alpha, T)
            plan.append((BF16 + name, {**spec, "train": {**spec["train"], "precision": "bf16-mixed"}}))
    return plan


def lane_precision(out: Path, cache: Path) -> None:
    """A third lane, once the compared fp32 runs exist: ``precision_plan``."""
    alpha, T = tuned(out)
    run_plan(precision_plan(out, cache, alpha, T), out)


def lane_students(out: Path, cache: Path) -> None:
    """Tuning and screening (150 epochs, but out-of-fold), the student alone at 300, the
    selected method at 300 (seeds 0-2), tier 2's schedule search and checks, every other method
    at 300 (the screening budget was not converged, so its ranking is only an order)."""
    for s in SEEDS:
        run_one(f"alone_s{s}", student_run(out, cache, "alone", s), out)
    for a, T in TUNE:
        run_one(f"tune_a{a}_T{T:g}", student_run(out, cache, "kl", 0, a, T), out)
    alpha, T = tuned(out)
    run_one(*long_run(out, cache, "kl", 0, alpha, T), out)
    for name, spec in screen_plan(out, cache, alpha, T):
        if name != "oof3_s0":
            run_one(name, spec, out)
    for s in SEEDS:
        run_one(*long_run(out, cache, "alone", s, alpha, T), out)
    best = selected(out)
    for s in (0, 1, 2):
        run_one(*long_run(out, cache, best, s, alpha, T), out)
    run_plan(ladder_plan(out, cache)[1:3], out)
    run_plan(methods_plan(out, cache, alpha, T), out)
    for s in CHECK_SEEDS:
        run_one(*alone_check(out, cache, s), out)
    run_plan(double_plan(out, cache, alpha, T), out)


# ---------------------------------------------------------------- summary


def _load(out: Path) -> dict[str, dict]:
    rows = {}
    for f in sorted(out.glob("*/results.json")):
        rows[f.parent.name] = json.loads(f.read_text())
    return rows


def _conv(r: dict) -> bool:
    """The run's convergence flag (recomputed from its history when results.json predates it)."""
    if isinstance(r.get("convergence"), dict):
        return bool(r["convergence"]["converged"])
    h = r["history"]
    lr0 = r["config"]["train"]["lr"]
    return evidence([x["val_acc"] for x in h], r["best_epoch"], h[-1]["lr"] / lr0)["converged"]


def _by_seed(rows: dict[str, dict], prefix: str) -> dict[int, float]:
    return {r["seed"]: r["metrics"]["accuracy"] for n, r in rows.items() if n.rsplit("_s", 1)[0] == prefix}


def _train_minutes(r: dict) -> float:
    """Training + validation minutes of a run, summed over its epochs (a resumed run's
    ``wall_time_s`` counts only its last process)."""
    return (r.get("train_time_s") or sum(h["time_s"] for h in r["history"])) / 60


@dataclass(frozen=True)
class Tier:
    """One compared budget: run-name ``prefix``, the ``student`` and its train section, the
    ``methods`` compared with the student alone there (empty: the screening's pick only), and
    the prefix of the student alone at twice its epochs (``check``, mean over ``CHECK_SEEDS``)."""

    prefix: str
    student: str
    train: dict
    methods: tuple[str, ...] = ()
    check: str | None = None


TIERS = (
    Tier(LONG, "cnn3", STUDENT, tuple(METHODS), DOUBLE),
    Tier(DOUBLE, "cnn3", STUDENT_X2, DOUBLE_METHODS, QUAD),
    Tier(PAPER, "mobilenet_v2", STUDENT2),
)
HEAD = [
    "| run | n | best val % | test % (mean ± sd) | Δ vs alone [95% CI over seeds] (wins) | "
    "[95% CI over seeds and test images] | converged | minutes per run |",
    "|---|---:|---:|---:|---:|---:|---:|---:|",
]


def _rows_of(rows: dict[str, dict], name: str) -> list[dict]:
    return [r for n, r in rows.items() if n.rsplit("_s", 1)[0] == name]


def _line(rows: dict[str, dict], prefix: str, student: str, m: str) -> str | None:
    """One table row: ``prefix + m`` over its seeds, paired with the student alone on the same seeds."""
    runs = _rows_of(rows, prefix + m)
    if not runs:
        return None
    acc, alone = _by_seed(rows, prefix + m), _by_seed(rows, prefix + "alone")
    d = "–" if m == "alone" else _ci(paired(acc, alone))
    wide = "–"
    if m != "alone" and (images := _images(rows, prefix, m)) is not None:
        p = paired(acc, alone, images)
        wide = f"[{100 * p['lo']:+.2f}, {100 * p['hi']:+.2f}]"
    conv = f"{sum(_conv(r) for r in runs)}/{len(runs)}"
    mins = statistics.fmean(_train_minutes(r) for r in runs)
    v = _pm([r["val_accuracy"] for r in runs])  # the screening's basis is seed 0 (n = 1 there)
    return f"| {student} {m} | {len(acc)} | {v} | {_pm(list(acc.values()))} | {d} | {wide} | {conv} | {mins:.1f} |"


def _val_lines(rows: dict[str, dict], prefix: str, best: str | None) -> list[str]:
    """The selected method's paired gain on the validation split beside the test split's (each a
    fixed 2000-image split shared by every seed: two splits that disagree show their sampling error)."""
    val = lambda m: {r["seed"]: r["val_accuracy"] for r in _rows_of(rows, prefix + m)}  # noqa: E731
    if not best or not (pv := paired(val(best), val("alone")))["n"]:
        return []
    pt = paired(_by_seed(rows, prefix + best), _by_seed(rows, prefix + "alone"))
    return [
        "",
        f"{best} − alone, paired by seed [95% CI over seeds] (wins): best validation accuracy {_ci(pv)}, "
        f"test accuracy {_ci(pt)}. Each split is one fixed set of 2000 images shared by every seed; the "
        "table's last interval adds the test split's shared sampling error (estimated from each run's "
        "per-image hits, `stats.image_variance`), the validation interval is over seeds only.",
    ]


def summarise(out: Path) -> tuple[str, list[dict]]:
    """The Markdown tables and converged.json's tier objects from the finished runs."""
    rows = _load(out)
    _fill_correct(out, rows)
    lines = ["Teachers (CNN4, 150 epochs, lr 3e-3):", "", *HEAD]
    for t in [n for n in rows if n.startswith("t4_")]:
        r = rows[t]
        lines.append(
            f"| teacher {t} | 1 | {100 * r['val_accuracy']:.2f} | {100 * r['metrics']['accuracy']:.2f} | – | – | "
            f"{'yes' if _conv(r) else 'no'} | {_train_minutes(r):.1f} |"
        )
    lines += ["", "Screening budget (CNN3, 150 epochs; the budget check below shows it is not converged):", "", *HEAD]
    lines += [x for m in ["alone", *METHODS] if (x := _line(rows, "", "cnn3", m))]
    screened = selected(out, wait=False)
    lines += _search_lines(rows)
    tiers: list[dict] = []
    for tier in TIERS:
        if not _by_seed(rows, tier.prefix + "alone"):
            continue
        # until each of its methods has a seed, the 600-epoch tier shows the 300-epoch tier's choice
        before = [t for t in tiers if t["student"] == tier.student]
        fallback = (
            (
                before[-1]["best_method"],
                f"the {before[-1]['epochs']['student']}-epoch tier's choice (not every method has a seed here yet)",
            )
            if before
            else (screened, "the best seed-0 validation accuracy at the 150-epoch screening budget")
        )
        best, why = _choice(rows, tier, fallback)
        lines += ["", f"Compared budget ({tier.student}, {tier.train['epochs']} epochs):", "", *HEAD]
        lines += [x for m in ["alone", *METHODS] if (x := _line(rows, tier.prefix, tier.student, m))]
        lines += _val_lines(rows, tier.prefix, best)
        lines += ["", f"Best method of this tier: {best or 'not yet'}, {why}."]
        tiers.append(_tier(rows, tier, best, why))
    lines += _retune_lines(rows) + _cost_lines(rows)
    lines += _budget_lines(rows) + _teacher_lines(out, rows) + _precision_lines(rows)
    return "\n".join(lines), tiers


def _precision_lines(rows: dict[str, dict]) -> list[str]:
    """bf16-mixed against fp32 on the same runs (``precision_plan``): paired differences of best
    validation and test accuracy, and the median epoch time ratio (runs made at different moments
    of a shared machine: the interleaved epoch timing in ``benchmarks.precision`` is the speed measure)."""
    lines = []
    for m in ("alone", "dist"):
        found = [(r, rows.get(n.removeprefix(BF16))) for n, r in rows.items() if n.startswith(f"{BF16}{LONG}{m}_s")]
        pairs = [(b, f) for b, f in found if f]
        if not pairs:
            continue
        val = paired({b["seed"]: b["val_accuracy"] for b, _ in pairs}, {f["seed"]: f["val_accuracy"] for _, f in pairs})
        test = paired(
            {b["seed"]: b["metrics"]["accuracy"] for b, _ in pairs},
            {f["seed"]: f["metrics"]["accuracy"] for _, f in pairs},
        )
        epoch = lambda r: statistics.median(h["time_s"] for h in r["history"])  # noqa: E731
        ratio = statistics.median(epoch(b) / epoch(f) for b, f in pairs)
        lines.append(
            f"\nbf16-mixed − fp32, cnn3 {m} at {STUDENT['epochs']} epochs, paired by seed [95% CI] (wins), "
            f"seeds {', '.join(str(b['seed']) for b, _ in pairs)}: best validation accuracy {_ci(val)}, test accuracy "
            f"{_ci(test)}; median epoch time ratio bf16 ÷ fp32 {ratio:.2f}; converged "
            f"{sum(_conv(b) for b, _ in pairs)}/{len(pairs)}."
        )
    return lines


def _choice(rows: dict[str, dict], tier: Tier, fallback: tuple[str | None, str]) -> tuple[str | None, str]:
    """A tier's best method and how it was chosen: by mean validation accuracy at the tier's
    budget once each of its methods has run there; otherwise (and for tier 2, which runs only
    the screening's pick) ``fallback``, a (method, reason)."""
    if tier.methods and (found := converged_best(rows, tier.prefix, tier.methods))[0]:
        seeds = ", ".join(map(str, found[1]))
        return found[0], f"the best mean validation accuracy at {tier.train['epochs']} epochs over seeds {seeds}"
    return fallback


def _test_data(out: Path):
    """The AID split every run shares (prepared the way the teachers' runs prepared it)."""
    spec = teacher_runs(out, out / "cache")["t4_s0"]
    return prepare_data(build_config({**spec, "data": {**spec["data"], "folds": None, "hold_out": None}}))


@torch.no_grad()
def _logits(out: Path, name: str, x: torch.Tensor, views: int = 1) -> torch.Tensor:
    """Run ``name``'s best checkpoint on images ``x``: its logits summed over the first ``views``
    dihedral views."""
    model, meta = load_classifier(out / name / "model.ckpt")
    norm = Normalizer.from_dict(meta["normalizer"])
    return sum(model.eval()(norm(apply_view(x, v))) for v in range(views))


def teacher_accuracy(out: Path, names: list[str], views: int = 1, split: str = "test") -> float:
    """Test accuracy of the mean logits of teachers ``names`` over the first ``views`` dihedral
    views of each image (1 = the plain teacher; 8 = test-time augmentation; several names = the
    ensemble): what the soft labels of kl_tta and ens3 are made of."""
    data = _test_data(out)
    idx = getattr(data, split)
    x = torch.from_numpy(np.asarray(data.images[idx]))
    total = sum(_logits(out, n, x, views) for n in names)
    return float((total.argmax(1) == torch.from_numpy(data.labels[idx])).float().mean())


def _fill_correct(out: Path, rows: dict[str, dict]) -> None:
    """Every compared run's per-test-image hits (``metrics.correct``, what the engine records
    now): runs trained before it did get them from their checkpoint, kept in ``correct.txt``."""
    need = [n for n in rows if n.startswith(tuple(t.prefix for t in TIERS)) and "correct" not in rows[n]["metrics"]]
    todo = [n for n in need if not (out / n / "correct.txt").is_file()]
    if todo:
        data = _test_data(out)
        x, y = torch.from_numpy(np.asarray(data.images[data.test])), torch.from_numpy(data.labels[data.test])
        for n in todo:
            hits = (_logits(out, n, x).argmax(1) == y).long().tolist()
            (out / n / "correct.txt").write_text("".join(map(str, hits)) + "\n")
    for n in need:
        rows[n]["metrics"]["correct"] = (out / n / "correct.txt").read_text().strip()


def _images(rows: dict[str, dict], prefix: str, m: str) -> float | None:
    """The test split's share of the variance of ``prefix + m``'s mean gain over the student
    alone (`stats.image_variance`), from the paired runs' per-image hits."""
    hits = lambda name: {r["seed"]: r["metrics"].get("correct") for r in _rows_of(rows, name)}  # noqa: E731
    a, b = hits(prefix + m), hits(prefix + "alone")
    return image_variance([image_gains([a[s]], [b[s]]) for s in sorted(set(a) & set(b))])


def _teacher_lines(out: Path, rows: dict[str, dict]) -> list[str]:
    """Accuracy of the soft-label sources themselves (test split)."""
    sets = [("t4_s0", ["t4_s0"]), ("t4_s0, 8-view mean", ["t4_s0"]), ("ensemble t4_s0..2", ["t4_s0", "t4_s1", "t4_s2"])]
    out_lines = []
    for (label, names), views in zip(sets, (1, 8, 1), strict=True):
        if all(n in rows for n in names):
            out_lines.append(f"{label}: {100 * teacher_accuracy(out, names, views):.2f}%")
    return ["", "Teacher answers on the test split: " + "; ".join(out_lines) + "."] if out_lines else []


def _tier2_runs(rows: dict[str, dict]) -> list[tuple[float, int, str, str]]:
    """Tier 2's seed-0 runs as (lr, epochs, method, name), in that order (a run copied under a
    second name listed once)."""
    found = {}
    for n, r in sorted(rows.items()):
        if n.startswith("mnv2") and r["seed"] == 0:
            method = n.split("_", 1)[1].rsplit("_s", 1)[0].removesuffix("2x")
            found.setdefault((r["config"]["train"]["lr"], r["epochs"], method), n)
    return sorted((*k, n) for k, n in found.items())


def _alone2(rows: dict[str, dict]) -> dict[tuple[float, int], str]:
    """Tier 2's seed-0 student-alone runs by (lr, epochs)."""
    return {(lr, e): n for lr, e, m, n in _tier2_runs(rows) if m == "alone"}


def _cost_lines(rows: dict[str, dict]) -> list[str]:
    """What each method costs on top of the student: its teachers' training minutes, the cache
    build (recorded by the run that built it; the ensemble's three dihedral caches were built
    before the engine recorded it, so they are estimated as 3x the single teacher's), and the
    mean student minutes per run at the compared budget."""
    views = lambda r: r["config"]["data"].get("augment")  # noqa: E731
    built = {
        (json.dumps(r["config"]["distill"]["teacher"]), views(r)): r["teacher_cache_s"]
        for r in rows.values()
        if r.get("teacher_cache_s") and r["config"].get("distill")
    }
    lines = ["", "Cost of each method (CNN3 tier; minutes at 1 thread, two lanes sharing 2 cores):", ""]
    lines += ["| method | teachers | teacher minutes | cache build s | student minutes per run (300 / 600 epochs) |"]
    lines += ["|---|---|---:|---:|---:|"]
    for m in ["alone", *METHODS]:
        runs = _rows_of(rows, LONG + m)
        if not runs:
            continue
        paths = _teachers_of(runs[0]["config"])
        teachers = [Path(t).parent.name for t in paths]
        t_min = sum(_train_minutes(rows[t]) for t in teachers if t in rows)
        cache = "–"
        if paths:
            one = built.get((json.dumps(paths[0]), "dihedral"))
            cache = built.get((json.dumps(runs[0]["config"]["distill"]["teacher"]), views(runs[0])))
            cache = f"{cache:.0f}" if cache else f"≈{len(paths) * one:.0f}" if one else "?"
        student = " / ".join(
            f"{statistics.fmean(_train_minutes(r) for r in rs):.1f}" if (rs := _rows_of(rows, p + m)) else "–"
            for p in (LONG, DOUBLE)
        )
        lines.append(f"| {m} | {', '.join(teachers) or '–'} | {t_min:.1f} | {cache} | {student} |")
    return lines


def _retune_lines(rows: dict[str, dict]) -> list[str]:
    """The re-tuning at the compared budget (seed 0, validation accuracy), one sentence."""
    found = [
        (n.removeprefix(f"{LONG}tune_").removesuffix("_s0"), r) for n, r in rows.items() if n.startswith(f"{LONG}tune_")
    ]
    if not found:
        return []
    vals = "; ".join(f"{k} {100 * r['val_accuracy']:.2f} (test {100 * r['metrics']['accuracy']:.2f})" for k, r in found)
    used = [(m, r) for m in ("kl", "dist") if (r := rows.get(f"{LONG}{m}_s0"))]
    at = lambda r: ", ".join(f"{k} {r['config']['distill'][k]:g}" for k in ("alpha", "T"))  # noqa: E731
    ref = "; ".join(f"{m} in use ({at(r)}) {100 * r['val_accuracy']:.2f}" for m, r in used)
    return [
        "",
        f"Settings checked again at {STUDENT['epochs']} epochs (seed 0, best validation %; not applied, the "
        f"compared runs keep the screening's): {vals}. For reference, {ref} (DIST ignores alpha).",
    ]


def _search_lines(rows: dict[str, dict]) -> list[str]:
    """Tier 2's schedule search (MobileNetV2, seed 0): one row per run."""
    found = _tier2_runs(rows)
    if not found:
        return []
    lines = ["", "Tier-2 schedule search (mobilenet_v2, seed 0; budget checks below):", ""]
    lines += ["| lr | epochs | run | best val % | test % | converged (per-run rule) | minutes |"]
    lines += ["|---:|---:|---|---:|---:|---:|---:|"]
    for lr, epochs, method, n in found:
        r = rows[n]
        lines.append(
            f"| {lr:g} | {epochs} | {method} | {100 * r['val_accuracy']:.2f} | {100 * r['metrics']['accuracy']:.2f} | "
            f"{'yes' if _conv(r) else 'no'} | {_train_minutes(r):.1f} |"
        )
    return lines


def _budget_lines(rows: dict[str, dict]) -> list[str]:
    """The budget checks (twice the epochs) that have finished, one sentence each, and the
    compared CNN3 budget's mean over its check seeds."""
    out = []
    pairs = [("student alone", "alone_s0", f"{LONG}alone_s0", 0)]
    checked = [(t.prefix, t.check) for t in TIERS if t.check]
    pairs += [("student alone", f"{a}alone_s{s}", f"{b}alone_s{s}", s) for a, b in checked for s in CHECK_SEEDS]
    pairs += [("KL student", "kl_s0", f"{LONG}kl_s0", 0), ("teacher", "t4_s0", "t4x2_s0", 0)]
    alone2 = _alone2(rows)
    pairs += [
        (f"MobileNetV2 alone, lr {lr:g}", n, alone2[lr, 2 * e], 0)
        for (lr, e), n in alone2.items()
        if (lr, 2 * e) in alone2
    ]
    for who, once, twice, seed in pairs:
        if once in rows and twice in rows:
            b = budget_check(rows[once]["val_accuracy"], rows[twice]["val_accuracy"], rows[once]["epochs"])
            out.append(
                f"\nBudget check, {who} (seed {seed}): {b['epochs']} → {b['epochs_2x']} epochs, best validation "
                f"accuracy {100 * b['val']:.2f}% → {100 * b['val_2x']:.2f}% ({b['gain_pts']:+.2f} points): "
                f"{'converged' if b['converged'] else 'NOT converged'} (rule: < {BUDGET_GAIN} points). "
                f"Test accuracy {100 * rows[once]['metrics']['accuracy']:.2f}% → "
                f"{100 * rows[twice]['metrics']['accuracy']:.2f}%."
            )
    for tier in TIERS:
        if tier.check and (c := _mean_check(rows, tier)) and len(c["seeds"]) > 1:
            out.append(
                f"\nBudget check of the {tier.train['epochs']}-epoch CNN3 budget, mean over seeds "
                f"{', '.join(map(str, c['seeds']))}: {100 * c['val']:.2f}% → {100 * c['val_2x']:.2f}% "
                f"({c['gain_pts']:+.2f} points): {'converged' if c['converged'] else 'NOT converged'} "
                f"(rule: < {BUDGET_GAIN} points)."
            )
    return out


def _mean_check(rows: dict[str, dict], tier: Tier) -> dict | None:
    """A CNN3 budget's check: the student alone's mean best validation accuracy at the tier's
    epochs and at twice them over the ``CHECK_SEEDS`` that have both (None before any has)."""
    once, twice = f"{tier.prefix}alone", f"{tier.check}alone"
    seeds = [s for s in CHECK_SEEDS if f"{once}_s{s}" in rows and f"{twice}_s{s}" in rows]
    if not seeds:
        return None
    mean = lambda name: statistics.fmean(rows[f"{name}_s{s}"]["val_accuracy"] for s in seeds)  # noqa: E731
    run = ", ".join(f"{twice}_s{s}" for s in seeds)
    return {**budget_check(mean(once), mean(twice), tier.train["epochs"]), "seeds": seeds, "run": run}


def _tier_minutes(rows: dict[str, dict], prefix: str) -> tuple[float, float]:
    """(all minutes, teacher minutes) of the tier at ``prefix``: its runs and teachers; for the
    300-epoch CNN3 tier also the tuning, the screening and its budget checks at 600 epochs; the
    600-epoch tier with its 1200-epoch checks and the three teachers its ensemble reads; tier 2
    with its schedule search and the one teacher it shares with tier 1 (a run the plan copied
    under a second name counted once)."""
    copies = {f"{PROBE2}alone2x_s0", "mnv2e120_alone2x_s0"}
    checks = {f"{DOUBLE}alone_s{s}" for s in CHECK_SEEDS}
    mine, teachers = {
        LONG: (lambda n: not n.startswith(("mnv2", DOUBLE, QUAD, BF16)) or n in checks, "t4"),
        DOUBLE: (lambda n: n.startswith((DOUBLE, QUAD)), ("t4_s0", "t4_s1", "t4_s2")),
        PAPER: (lambda n: n.startswith("mnv2") and n not in copies, "t4_s0"),
    }[prefix]
    teacher_min = sum(_train_minutes(r) for n, r in rows.items() if n.startswith(teachers))
    spent = sum(_train_minutes(r) for n, r in rows.items() if mine(n)) + (0.0 if prefix == LONG else teacher_min)
    return spent, teacher_min


def _tier(rows: dict[str, dict], tier: Tier, best: str | None, why: str) -> dict:
    """The converged.json object of one tier (its best method ``best``, chosen as ``why`` says)."""
    prefix, train_over = tier.prefix, tier.train
    alone = _by_seed(rows, prefix + "alone")
    b = _by_seed(rows, prefix + best) if best else {}
    p = paired(b, alone) if b else None
    wide = paired(b, alone, images) if b and (images := _images(rows, prefix, best)) is not None else None
    compared = [prefix + "alone"] + ([prefix + best] if best else [])
    students = [r for n, r in rows.items() if n.rsplit("_s", 1)[0] in compared]
    spent, teacher_min = _tier_minutes(rows, prefix)
    # tier 2's check: the seed-0 student alone at the same lr and twice the epochs, whatever its name
    twice2 = _alone2(rows).get((train_over["lr"], 2 * train_over["epochs"]), "")
    check = None
    if tier.check:
        check = _mean_check(rows, tier)
    elif prefix + "alone_s0" in rows and twice2 in rows:
        once = rows[prefix + "alone_s0"]
        check = {**budget_check(once["val_accuracy"], rows[twice2]["val_accuracy"], once["epochs"]), "run": twice2}
    needed = ["alone", *(tier.methods or ([best] if best else []))]  # a CNN3 choice sees each of its methods
    partial_why = _why_partial(check, [m for m in needed if len(_by_seed(rows, prefix + m)) < len(SEEDS)])
    pct = lambda xs: (  # noqa: E731  (mean from one seed on, sd from two)
        100 * statistics.fmean(xs) if xs else None,
        100 * statistics.stdev(xs) if len(xs) > 1 else None,
    )
    (am, asd), (bm, bsd) = pct(list(alone.values())), pct(list(b.values()))
    t0 = rows.get("t4_s0")
    return {
        "dataset": "AID (aid150)",
        "size": 32,
        "teacher": "cnn4",
        "student": tier.student,
        "teacher_acc": 100 * t0["metrics"]["accuracy"] if t0 else None,
        "alone_mean": am,
        "alone_std": asd,
        "best_method": best,
        "best_mean": bm,
        "best_std": bsd,
        "gain_mean": 100 * p["mean"] if p else None,
        "gain_ci_low": 100 * p["lo"] if p and p["n"] > 1 else None,
        "gain_ci_high": 100 * p["hi"] if p and p["n"] > 1 else None,
        # the same interval counting the test split's sampling too (`stats.image_variance`)
        "gain_ci_images_low": 100 * wide["lo"] if wide and wide["n"] > 1 else None,
        "gain_ci_images_high": 100 * wide["hi"] if wide and wide["n"] > 1 else None,
        "n_seeds": p["n"] if p else 0,
        "epochs": {"teacher": TEACHER["epochs"], "student": train_over["epochs"]},
        "converged_runs": sum(_conv(r) for r in students),
        "total_runs": len(students),
        "minutes_total": round(spent, 1),
        "minutes_teachers": round(teacher_min, 1),
        "selected_by": why,
        "budget_check": check,  # the student alone at twice the tier's epochs (CNN3: mean over CHECK_SEEDS)
        "partial": bool(partial_why),
        "partial_why": partial_why or None,
    }


def main(out_dir: Path, quick: bool = False) -> str:
    """Both lanes in this process (slow: prefer two ``--lane`` processes), then the summary."""
    cache = out_dir / "cache"
    lane_teachers(out_dir, cache)
    lane_students(out_dir, cache)
    return write_summary(out_dir)


SCHEDULES = """Cheapest schedule that converges (CNN3 alone, seed 0, 1 thread, `geodistill train --dataset folder
--root ../shared/data/aid150 --model cnn3 --size 32 --batch-size 64 --epochs E --lr LR --seed 0`;
AdamW, 1 epoch warm-up, cosine to 0):

| epochs | lr | best val | test | minutes |
|---:|---:|---:|---:|---:|
| 100 | 3e-3 | 72.85 | 71.55 | 2.8 |
| 300 | 3e-3 | 78.65 | 77.15 | 9.2 |
| 150 | 1e-2 | 78.55 | 77.15 | 5.5 |

150 epochs at lr 1e-2 matched 300 at 3e-3, but its budget check (300 epochs at 1e-2) gained 1.35
validation points, so methods were compared at 300 epochs at lr 1e-2 and 150 epochs serves only
to screen them. The 300-epoch budget passed a one-seed check in an earlier acceptance run (−0.05
points; the recipe at 300 epochs in fp32) but failed the three-seed check below (+1.57), so the
student alone and the four best-validating methods are measured again at 600 epochs, whose own
check is 1200 epochs on seeds 0-2 (the mean decides). The curves' late slopes (0.95, 0.42, 0.77
points per 10% of the run) do not separate under-trained runs, hence the budget checks.
Minutes are per run
at 1 thread with two lanes (and at times the test suite) sharing the 2 cores, so they are
inflated and uneven (the same teacher job took 29 to 63 minutes; the 600-epoch kl and ens3
seed-1 runs include an 84-minute pause, one epoch each, while the acceptance run had the machine).

Tier 2 (the paper's student, MobileNetV2 from random init, with the CNN4 teacher) runs at 32 px
and never passed a budget check here. At lr 3e-3, 60 epochs (~14 minutes a run at 1 thread)
gained +7.7 validation points at 120 epochs, although the per-run slope rule called both
60-epoch runs converged (cosine decay flattens any curve at its end, so only the budget check
sees this); 120 epochs gained +5.6 at 240 (training accuracy 98% there), and 240 (~55 minutes)
gained +1.45 at 480 (112 minutes). lr 1e-2 learns faster early (120 epochs: 78.20 vs 74.70) but
not later (240 epochs: 79.75 vs 80.30), and its 240-epoch run gained more than 2 points at 480
(table and checks below). The next check, 960 epochs (~3.7 hours a run at 1 thread), does not
fit this machine, so tier 2 is reported at its longest budget, 480 epochs at lr 1e-2, on seed 0
only: not shown converged, hence no claim. At 64 px MobileNetV2 costs 4x the FLOPs (49.0 vs
12.3 MFLOPs), so no tier-2 setting converges within the issue's ~20 minutes per student run on
this machine; 32 px is the cheaper of the two. MobileNetV2's stride-32 trunk ends at 1x1 at 32
px, which is one reason it learns slowly from scratch at this size.
"""


def _why_partial(check: dict | None, short: list[str]) -> str:
    """Why a tier is partial ('' when it is not): its budget check is missing or failed, and which
    of its methods lack seeds."""
    why = [] if check and check["converged"] else ["its budget is not shown converged"]
    if check and check.get("seeds") is not None and len(check["seeds"]) < len(CHECK_SEEDS):
        have, want = (", ".join(map(str, x)) for x in (check["seeds"], CHECK_SEEDS))
        why.append(f"its budget check has seeds {have} of {want} so far")
    return "; ".join(why + ([f"seeds missing for {', '.join(short)}"] if short else []))


def write_summary(out: Path) -> str:
    """converged.json, results/converged.md and BENCHMARKS.md from the finished runs."""
    table, tiers = summarise(out)
    RESULTS.mkdir(exist_ok=True)
    (RESULTS / "converged.json").write_text(json.dumps(tiers, indent=2) + "\n")
    head = "## Converged distillation on AID (32 px, CNN4 → CNN3 and → MobileNetV2, issue 11)\n\n"
    if partial := [
        f"{t['student']} {t['epochs']['student']} epochs: {t['partial_why']}" for t in tiers if t["partial"]
    ] or ([] if tiers else ["no runs yet"]):
        head += f"**Partial ({'; '.join(partial)}): numbers below are for the finished runs.**\n\n"
    cmd = "python -m benchmarks.converged --lane teachers & python -m benchmarks.converged --lane students; "
    cmd += "python -m benchmarks.converged --summarise (OMP_NUM_THREADS=1)"
    section = (
        head
        + SCHEDULES
        + "\n"
        + table
        + "\n\n"
        + f"_Measured {dt.date.today().isoformat()} with `{cmd}` on {machine()}._\n"
    )
    (RESULTS / "converged.md").write_text(section)
    assemble(RESULTS)
    return section


if __name__ == "__main__":
    ap = argparse.ArgumentParser(prog="python -m benchmarks.converged")
    ap.add_argument("--lane", choices=["teachers", "students", "precision"])
    ap.add_argument("--summarise", action="store_true")
    default = Path(os.environ.get("GEODISTILL_BENCH_DIR", "/tmp/geodistill-bench")) / "converged"
    ap.add_argument("--out", type=Path, default=default, help="the runs' folder")
    args = ap.parse_args()
    logging.basicConfig(level=logging.INFO, format="%(message)s")
    out = args.out
    if args.lane == "teachers":
        lane_teachers(out, out / "cache")
    elif args.lane == "students":
        lane_students(out, out / "cache")
    elif args.lane == "precision":
        lane_precision(out, out / "cache")
    if args.summarise:
        print(write_summary(out))
