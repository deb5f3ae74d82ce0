"""``geodistill run``: a recipe study end to end. Its teachers (each trained and cached once),
the student alone and under each of its objectives over its seeds, the budget check when it
asks for one; then one comparison table on the held-out test split with a plain-words verdict
(``summary.json`` / ``summary.md``)."""

from __future__ import annotations

import logging
import time
import warnings
from pathlib import Path

from geodistill.analysis.summary import Summary, format_summary, summarise
from geodistill.config.merge import deep_merge
from geodistill.config.study import Study, load_recipe, updated
from geodistill.core.atomic import write_json, write_text
from geodistill.core.errors import GeodistillError, GeodistillWarning
from geodistill.engine.convergence import BudgetCheck, budget_check
from geodistill.results.files import SUMMARY_FILE, read_json_object
from geodistill.study.choose import by_validation
from geodistill.study.execute import Options, execute, result_of
from geodistill.study.plan import StudyPlan, plan

logger = logging.getLogger(__name__)


def recipe_study(
    recipe: str | Study,
    *,
    overrides: dict | None = None,
    teacher: str | None = None,
    seeds: list[int] | None = None,
    budget_check: bool | None = None,
) -> Study:
    """The study of a recipe (a name or a `Study`) with the user's config layer, a given teacher,
    other seeds or another budget-check choice."""
    study = load_recipe(recipe) if isinstance(recipe, str) else recipe
    given = {"teacher_ckpt": teacher, "seeds": seeds, "budget_check": budget_check}
    fields = {k: v for k, v in given.items() if v is not None}
    where = f"recipe {recipe if isinstance(recipe, str) else 'given'}"
    study = updated(study, where, overrides=deep_merge(study.overrides, overrides or {}), **fields)
    if study.budget_check and not any(o.loss == "student" for o in study.objectives):
        warnings.warn(
            "The recipe has no student-alone objective (loss 'student'), so there is no budget check to run: "
            "add one to its objectives to check the student budget.",
            GeodistillWarning,
            stacklevel=2,
        )
    return study


def run(
    recipe: str | Study = "demo",
    *,
    overrides: dict | None = None,
    teacher: str | None = None,
    seeds: list[int] | None = None,
    out: str | Path | None = None,
    resume: bool = True,
    budget_check: bool | None = None,
    dry_run: bool = False,
    workers: int | None = None,
) -> Summary | None:
    """Run a recipe end to end; returns its summary (also written to ``summary.json``/``.md``);
    ``dry_run``: only say the plan and its expected time (returns None); ``workers``: student
    runs at once (default: the recipe's)."""
    name = recipe if isinstance(recipe, str) else "study"
    study = recipe_study(recipe, overrides=overrides, teacher=teacher, seeds=seeds, budget_check=budget_check)
    out_dir = Path(out or Path((overrides or {}).get("out", "runs")) / name)
    t0 = time.perf_counter()
    opts = Options(
        fail_fast=True, fresh=not resume, what=f"recipe {name}", dry_run=dry_run, workers=workers or study.workers
    )
    if dry_run and study.choose_from:  # no choice without trained runs: time the screening, then one method
        first = updated(study, objectives=[*study.objectives, study.choose_from[0]], choose_from=[])
        execute(_screening(study, out_dir).union(plan(first, out_dir)), out_dir, opts)
        return None
    study, choice = _choose(study, out_dir, opts, name)
    p = plan(study, out_dir)
    logger.info(f"recipe {name}: {study.about}; compares {recipe_methods(p)} over seeds {study.seeds}")
    outcome = execute(p, out_dir, opts)
    if dry_run:
        return None
    summary = summarise(_labelled(p, out_dir), _check(p, outcome.checks, out_dir))
    summary.verdict = (choice + " " + summary.verdict).strip()
    summary.recipe, summary.about, summary.seeds = name, study.about, study.seeds
    summary.teacher_ckpt = study.teacher_ckpt or (
        str(out_dir / p.teachers[0].name / "model.ckpt") if p.teachers else None
    )
    summary.timings_s = {r.run_id: r.wall_time_s or 0.0 for _, r in _labelled(p, out_dir)}
    summary.wall_time_s = time.perf_counter() - t0
    write_json(out_dir / SUMMARY_FILE, summary.to_dict())
    write_text(out_dir / "summary.md", format_summary(summary))
    logger.info("\n" + format_summary(summary).rstrip("\n") + f"\nresults in {out_dir} (geodistill report {out_dir})")
    return summary


def _choose(study: Study, out: Path, opts: Options, name: str) -> tuple[Study, str]:
    """A study that chooses among ``choose_from`` trains them on the screening seeds, keeps the
    one with the best mean validation accuracy (`study.choose.by_validation`) and returns the
    study with it among its objectives, and the choice in one sentence ('' without a choice)."""
    if not study.choose_from:
        return study, ""
    if study.students:
        raise GeodistillError("A recipe chooses one method for one student; for several students use frontier.")
    screening = _screening(study, out)
    seeds = screening.study.seeds
    logger.info(f"recipe {name}: choosing a method on the validation split of seed(s) {seeds}")
    execute(screening, out, opts)
    n = len(seeds)
    labels = [j.label for j in screening.runs[len(study.objectives) * n :: n]]
    best, vals = by_validation([(j.label, result_of(out, j.name)) for j in screening.runs if j.label in labels])
    if best is None:
        raise GeodistillError(f"No method of the recipe's choose_from finished on seed(s) {seeds}; see {out}.")
    ranked = ", ".join(f"{label} {100 * v:.2f}%" for label, v in sorted(vals.items(), key=lambda kv: -kv[1]))
    sentence = f"Method chosen on the validation split of seed(s) {', '.join(map(str, seeds))}: {best} ({ranked})."
    return updated(
        study, objectives=[*study.objectives, study.choose_from[labels.index(best)]], choose_from=[]
    ), sentence


def _screening(study: Study, out: Path) -> StudyPlan:
    """Every objective and every method to choose from, on the screening seeds."""
    seeds = study.screen_seeds or study.seeds[:1]
    both = [*study.objectives, *study.choose_from]
    return plan(updated(study, objectives=both, seeds=seeds, choose_from=[]), out)


def _labelled(p: StudyPlan, out: Path) -> list:
    """(label, result) of the first teacher, then of every student run, in plan order."""
    teacher = [("teacher", result_of(out, p.teachers[0].name))] if p.teachers else []
    return teacher + [(job.label, result_of(out, job.name)) for job in p.runs]


def _check(p: StudyPlan, checks: list, out: Path) -> BudgetCheck | None:
    if not checks or not checks[0].ok:
        return None
    alone = result_of(out, p.checks[0].double_of)
    return budget_check(alone.val_accuracy, checks[0].val_accuracy, int(alone.epochs or 0))


def recipe_methods(p: StudyPlan) -> str:
    """The recipe's objectives in words, each with its teacher set."""
    return "; ".join(dict.fromkeys(job.label for job in p.runs))


def load_summary(path: str | Path) -> Summary:
    """Read a run folder's ``summary.json``."""
    return Summary.from_dict(read_json_object(Path(path) / SUMMARY_FILE, "re-run the recipe"))


__all__ = ["format_summary", "load_summary", "recipe_study", "run"]
