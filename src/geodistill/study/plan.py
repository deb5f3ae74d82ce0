"""A study compiled into a plan of runs (nothing is run): teachers, student runs, budget checks.

One naming rule for every study (`run_name`, `teacher_name`): a student run is
``[{dataset}-][{model}@{size}-]{loss}[-a…][-b…][-T…][-ens|-oof][-view_mean]-s{seed}`` (the
dataset when the study has several, the student when the study lists its students, the α/β/T
its objective gives); a teacher is ``teacher[-{dataset}][-split{k}][-fold{j}]-s{seed}``; a budget check is
the student alone's name with ``-2x``. Every run's config is validated here, before any trains.
"""

from __future__ import annotations

import itertools
import warnings
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from geodistill.config.merge import deep_merge
from geodistill.config.run import build_config
from geodistill.config.study import Objective, Student, Study, role_spec
from geodistill.core.errors import GeodistillError, GeodistillWarning
from geodistill.losses import get_preset, loss_coords, loss_fragment, loss_label, loss_needs_teacher, safe_name
from geodistill.results.result import Method

_SUFFIX = {"one": "", "per_seed": "", "ensemble": "-ens", "out_of_fold": "-oof"}


@dataclass(frozen=True)
class Job:
    """One run of a plan: its folder name and config dict; for a student the teacher jobs it
    reads and its label in tables; for a budget check the run whose epochs it doubles."""

    name: str
    spec: dict[str, Any]
    role: str = "student"
    teachers: tuple[str, ...] = ()
    label: str = ""
    double_of: str | None = None


@dataclass
class StudyPlan:
    """What a study will run: teachers first, then the student runs, then the budget checks."""

    study: Study
    teachers: list[Job] = field(default_factory=list)
    runs: list[Job] = field(default_factory=list)
    checks: list[Job] = field(default_factory=list)

    def teacher(self, name: str) -> Job:
        return next(t for t in self.teachers if t.name == name)

    def union(self, other: StudyPlan) -> StudyPlan:
        """This plan, then the teachers, runs and checks of ``other`` it does not name yet."""
        have = {j.name for j in [*self.teachers, *self.runs, *self.checks]}
        new = [[j for j in jobs if j.name not in have] for jobs in (other.teachers, other.runs, other.checks)]
        return StudyPlan(self.study, self.teachers + new[0], self.runs + new[1], self.checks + new[2])


def objectives_of(study: Study) -> list[Objective]:
    """The study's objectives, then its grid's (a Cartesian product; ``loss`` thesis unless the
    grid names one), each with the α/β/T its loss uses, each once."""
    objs = list(study.objectives)
    if study.grid:
        axes = {"loss": ["thesis"], **study.grid}
        for values in itertools.product(*axes.values()):
            objs.append(Objective(**dict(zip(axes, values))))
    out: list[Objective] = []
    for o in objs:
        used = loss_coords(o.loss, {k: v for k, v in o.coords().items() if k != "loss"})
        o = Objective(loss=o.loss, teachers=o.teachers, view_mean=o.view_mean, **used)  # α/β/T its loss uses
        if o not in out:
            out.append(o)
    return out


def _datasets(study: Study) -> list[tuple[str | None, dict]]:
    if not study.datasets:
        return [(None, {})]
    out = [({"dataset": d} if isinstance(d, str) else dict(d)) for d in study.datasets]
    names = [str(d.get("dataset")) for d in out]
    if "None" in names:
        raise GeodistillError(f"A study's dataset entry {study.datasets[names.index('None')]!r} has no 'dataset' name.")
    if len(set(names)) != len(names):
        raise GeodistillError(f"The study's 'datasets' lists a dataset twice ({', '.join(names)}); give each once.")
    return list(zip(names, out))


def teacher_name(dataset: str | None, split: int | None, fold: int | None, seed: int) -> str:
    """``teacher[-{dataset}][-split{k}][-fold{j}]-s{seed}``."""
    parts = ["teacher", dataset and safe_name(dataset), split is not None and f"split{split}"]
    parts.append(fold is not None and f"fold{fold}")
    return "-".join(str(p) for p in parts if p) + f"-s{seed}"


def run_name(prefix: str, o: Objective, kind: str, seed: int) -> str:
    """A student run's folder name (module docstring)."""
    return f"{prefix}{loss_fragment(o.loss, o.coords())}{_SUFFIX[kind]}{'-view_mean' if o.view_mean else ''}-s{seed}"


class _Builder:
    """Builds a plan's jobs, each teacher once."""

    def __init__(self, study: Study, out: Path) -> None:
        self.study, self.out = study, out.resolve()
        self.plan = StudyPlan(study)
        self.tspec, self.sspec = role_spec(study, "teacher"), role_spec(study, "student")
        given = study.teacher_ckpt
        self.given = [] if not given else [given] if isinstance(given, str) else list(given)

    def _teacher(self, ds: str | None, data: dict, split: int | None, fold: int | None, seed: int) -> str:
        name = teacher_name(ds if self.study.datasets and len(self.study.datasets) > 1 else None, split, fold, seed)
        if all(t.name != name for t in self.plan.teachers):
            over = {"data": dict(data), "train": {"seed": seed}, "distill": {"teacher": None, "loss": "student"}}
            if split is not None:
                over["data"]["split_seed"] = split
            if fold is not None:
                over["data"].update(folds=self.study.folds, hold_out=fold)
            spec = deep_merge(self.tspec, over)
            build_config(spec, where=f"the study's teacher {name}")
            self.plan.teachers.append(Job(name, spec, role="teacher"))
        return name

    def teachers_of(self, kind: str, ds: str | None, data: dict, seed: int) -> tuple[list[str], list[str]]:
        """(teacher jobs, given checkpoints) of a teacher set for a run of ``seed``."""
        s = self.study
        split = seed if s.splits == "per_seed" else None
        first = self.given if self.given and kind in ("one", "per_seed", "ensemble") else None
        if kind in ("one", "per_seed"):
            own = seed if kind == "per_seed" else s.teacher_seed
            return ([], first) if first else ([self._teacher(ds, data, split, None, own)], [])
        if kind == "ensemble":
            rest = [k for k in s.teacher_seeds if not (first and k == s.teacher_seed)]
            return [self._teacher(ds, data, split, None, k) for k in rest], first or []
        return [self._teacher(ds, data, split, j, s.teacher_seed) for j in range(s.folds)], []

    def student(self, prefix: str, ds: str | None, data: dict, o: Objective, seed: int, who: Student | None) -> Job:
        s = self.study
        kind = (o.teachers or s.teachers) if loss_needs_teacher(o.loss) else "one"
        over: dict[str, Any] = {"data": dict(data), "train": {"seed": seed}, "distill": o.distill()}
        if s.splits == "per_seed":
            over["data"]["split_seed"] = seed
        names: list[str] = []
        if loss_needs_teacher(o.loss):
            names, given = self.teachers_of(kind, ds, data, seed)
            paths = given + [str(self.out / n / "model.ckpt") for n in names]
            over["distill"]["teacher"] = paths[0] if len(paths) == 1 else paths
            if len(paths) > 1:
                over["distill"]["ensemble"] = "out_of_fold" if kind == "out_of_fold" else "logits"
        spec = deep_merge(deep_merge(self.sspec, who.spec()) if who else self.sspec, over)
        name = run_name(prefix + (f"{who.name}-" if who else ""), o, kind, seed)
        cfg = build_config(spec, where=f"the study's run {name}")
        method = str(Method.of(cfg.model_dump()))
        label = loss_label(o.loss, o.coords()) + (f" + {method}" if method and loss_needs_teacher(o.loss) else "")
        return Job(name, spec, "student", tuple(names), label)


def _add(runs: list[Job], job: Job) -> None:
    if any(j.name == job.name for j in runs):
        raise GeodistillError(
            f"Two objectives of the study would share the run folder {job.name!r} (they differ only in fields "
            "that are not part of its name, such as β or T); give them different α or split the study."
        )
    runs.append(job)


def plan(study: Study, out: str | Path) -> StudyPlan:
    """The plan of ``study`` run in folder ``out`` (teachers' checkpoints are read from there)."""
    b = _Builder(study, Path(out))
    objectives = objectives_of(study)
    datasets = _datasets(study)
    for ds, data in datasets:
        prefix = f"{safe_name(ds)}-" if len(datasets) > 1 else ""
        for who in study.students or [None]:
            for o in objectives:
                for seed in study.seeds:
                    _add(b.plan.runs, b.student(prefix, ds, data, o, seed, who))
            _check(b, prefix + (f"{who.name}-" if who else ""))
    _same_model_warning(b)
    return b.plan


def _check(b: _Builder, prefix: str) -> None:
    """The budget check of the student alone of the first seed (its name with ``-2x``)."""
    seed = b.study.seeds[0]
    alone = next((j for j in b.plan.runs if j.name == f"{prefix}student-s{seed}"), None)
    if b.study.budget_check and alone is not None:
        name = f"{prefix}student-2x-s{seed}"
        b.plan.checks.append(Job(name, alone.spec, "student", (), "student at twice the epochs", alone.name))


def _same_model_warning(b: _Builder) -> None:
    t, s = (spec.get("train", {}).get("model") for spec in (b.tspec, b.sspec))
    if b.plan.teachers and t == s:
        warnings.warn(
            f"The study's teacher and student are both {t or 'the default cnn3'}; set teacher.train.model "
            "(or pick a recipe, e.g. thesis) to distil from a larger model.",
            GeodistillWarning,
            stacklevel=3,
        )


def tied_notes(p: StudyPlan) -> list[str]:
    """One sentence per preset of the plan whose β its runs leave tied to α (β = α): the sweep
    changes β with α, which the run names and labels, holding α only, would not show."""
    notes = {}
    for job in p.runs:
        d = job.spec.get("distill", {})
        preset = get_preset(str(d.get("loss")))
        if preset is not None and "beta" in preset.uses and d.get("beta") is None and preset.name not in notes:
            notes[preset.name] = (
                f"{preset.name}: β is tied to α (β = α, the preset's default), so β moves with α; set it "
                "with --grid 'beta=[...]' or --set distill.beta=X"
            )
    return list(notes.values())
