"""``geodistill run``: the main job. Train (or load) the teacher, build its cache once, train the
student alone and under each of the recipe's objectives over several seeds, evaluate all on the
held-out test split and print one comparison table (mean ± std over seeds).
"""

from __future__ import annotations

import json
import logging
import math
import time
import warnings
from pathlib import Path
from typing import Any

from geodistill.analysis.stats import GROUP_BY, paired_difference, verdict
from geodistill.analysis.table import (
    AGGREGATE_METRICS,
    COST_FIELDS,
    aggregate,
    cost_ratios,
    format_mean_std,
    format_points,
    tidy_rows,
)
from geodistill.config.merge import deep_merge
from geodistill.config.recipes import get_recipe
from geodistill.config.run import RunConfig, build_config
from geodistill.core.atomic import write_json, write_text
from geodistill.core.errors import GeodistillError, GeodistillWarning
from geodistill.core.progress import job
from geodistill.engine.api import data_for, train
from geodistill.engine.convergence import BUDGET_GAIN, RULE, budget_check
from geodistill.losses import loss_fragment, loss_label, loss_needs_teacher
from geodistill.results.result import SUMMARY_FILE

logger = logging.getLogger(__name__)


def run(
    recipe: str = "demo",
    *,
    overrides: dict | None = None,
    teacher: str | None = None,
    seeds: list[int] | None = None,
    out: str | Path | None = None,
    resume: bool = True,
    budget_check: bool | None = None,
) -> dict:
    """Run a recipe end to end; returns the summary (also written to ``summary.json``/``.md``).
    ``budget_check`` overrides the recipe's (train the student alone again at twice the epochs)."""
    r = get_recipe(recipe)
    if budget_check is not None:
        r = {**r, "budget_check": budget_check}
    if r.get("budget_check") and not any(o["loss"] == "student" for o in r["objectives"]):
        warnings.warn(
            f"Recipe {recipe} has no student-alone objective (loss 'student'), so there is no budget check "
            "to run: add one to its objectives to check the student budget.",
            GeodistillWarning,
            stacklevel=2,
        )
    overrides = overrides or {}
    user = {k: v for k, v in overrides.items() if k not in ("teacher", "student")}

    def spec_for(role: str) -> dict:
        """Recipe base < recipe role < user overrides < user overrides aimed at this role."""
        return deep_merge(deep_merge(deep_merge(r["base"], r[role]), user), overrides.get(role, {}))

    seeds = seeds if seeds is not None else r["seeds"]
    out_dir = Path(out or Path(user.get("out", "runs")) / recipe)
    out_dir.mkdir(parents=True, exist_ok=True)
    t_start = time.perf_counter()
    timings: dict[str, float] = {}
    datas: dict = {}  # decoded data, shared by every run with the same data config
    logger.info(f"recipe {recipe}: {r.get('about', '')}; compares {recipe_methods(r)} over seeds {seeds}")

    with job(planned_runs(r, seeds, teacher_given=teacher is not None)):
        # 1. teacher: trained once (seed 0) unless given
        if teacher is None:
            tcfg = build_config(spec_for("teacher"), where=f"recipe {recipe} (teacher)")
            t0 = time.perf_counter()
            data = data_for(tcfg, datas)
            timings["data_s"] = time.perf_counter() - t0
            t0 = time.perf_counter()
            tres = train(tcfg, out_dir / "teacher", resume=resume, data=data, role="teacher")
            timings["teacher_s"] = time.perf_counter() - t0
            teacher = str(out_dir / "teacher" / "model.ckpt")
        else:
            tres = None
        sets = _TeacherSets(r, spec_for("teacher"), teacher, out_dir, resume, datas, timings)
        rows = _students(r, seeds, spec_for("student"), sets, out_dir, resume, datas, timings, recipe)
        alone = next((x for x in rows if x["objective_name"] == "student" and x["seed"] == seeds[0]), None)
        check = None
        if r.get("budget_check") and alone is not None:
            spec = deep_merge(spec_for("student"), {"train": {"seed": seeds[0]}})
            check = _budget_check(spec, alone, out_dir, resume, datas, timings)

    summary = summarise(rows, tres, check)
    if check is not None:
        summary["budget_check"] = check
    summary.update(
        {
            "recipe": recipe,
            "about": r.get("about", ""),
            "seeds": seeds,
            "teacher_ckpt": teacher,
            "timings_s": timings,
            "wall_time_s": time.perf_counter() - t_start,
        }
    )
    write_json(out_dir / SUMMARY_FILE, summary)
    write_text(out_dir / "summary.md", format_summary(summary))
    logger.info("\n" + format_summary(summary).rstrip("\n"))
    return summary


def _budget_check(spec: dict, alone: dict, out_dir: Path, resume: bool, datas: dict, timings: dict) -> dict:
    """The student alone of ``alone``'s seed again with twice its epochs: the budget check
    (`engine.convergence.budget_check`) of the recipe's student budget."""
    epochs = int(alone["config"]["train"]["epochs"])  # resolved when the recipe says auto
    cfg = build_config(deep_merge(spec, {"train": {"epochs": 2 * epochs}}), where="the budget check")
    name = f"student-2x-s{cfg.train.seed}"
    t0 = time.perf_counter()
    res = train(cfg, out_dir / name, resume=resume, data=data_for(cfg, datas))
    timings[name + "_s"] = time.perf_counter() - t0
    return budget_check(alone["val_accuracy"], res["val_accuracy"], epochs)


def _budget_line(b: dict) -> str:
    """The budget check in one sentence, with what one seed can tell (on AID the best validation
    accuracy of one setting varies by ~0.9 points between seeds, more than the rule's margin)."""
    state = "the budget is converged" if b["converged"] else "NOT converged: raise train.auto_images (or train.epochs)"
    return (
        f"Budget check: the student alone trained {b['epochs_2x']} instead of {b['epochs']} epochs reached "
        f"{100 * b['val_2x']:.2f}% instead of {100 * b['val']:.2f}% validation accuracy ({b['gain_pts']:+.2f} points): "
        f"{state} (< {BUDGET_GAIN} points). One seed screens out a budget far from converged; a small gain "
        "on one seed is within seed noise, so a claim needs the check on several seeds."
    )


def _students(
    r: dict,
    seeds: list[int],
    sspec: dict,
    sets: _TeacherSets,
    out_dir: Path,
    resume: bool,
    datas: dict,
    timings: dict,
    recipe: str,
) -> list[dict]:
    """Train the student alone and under each of the recipe's objectives, per seed; one table
    row (results.json + label) per run."""
    names = [_run_name(o) for o in r["objectives"]]
    twice = sorted({n for n in names if names.count(n) > 1})
    if twice:
        raise GeodistillError(
            f"Recipe {recipe!r} has objectives that would share the run folder {twice[0]!r} (they differ only in "
            "β or T); give them different α or split them into two recipes."
        )
    rows = []
    for o, folder in zip(r["objectives"], names, strict=True):
        o = dict(o)
        kind = o.pop("teachers", "one")
        for seed in seeds:
            spec = deep_merge(sspec, {"train": {"seed": seed}, "distill": o})
            if loss_needs_teacher(o["loss"]):
                spec["distill"].update(sets.distill(kind))
            cfg = build_config(spec, where=f"recipe {recipe} ({o['loss']})")
            name = f"{folder}-s{seed}"
            t0 = time.perf_counter()
            res = train(cfg, out_dir / name, resume=resume, data=data_for(cfg, datas))
            timings[name + "_s"] = time.perf_counter() - t0
            label = loss_label(o["loss"], o) + (f" + {res['method']}" if res.get("method") else "")
            rows.append({"label": label, **res})
    return rows


def recipe_methods(r: dict) -> str:
    """The recipe's objectives in words, each with its teacher set when it has one."""
    words = []
    for o in r["objectives"]:
        kind = o.get("teachers", "one")
        extra = {"ensemble": " (teacher ensemble)", "out_of_fold": " (out-of-fold teachers)"}.get(kind, "")
        extra += " (teacher averaged over views)" if o.get("view_mean") else ""
        words.append(loss_label(o["loss"], o) + extra)
    return "; ".join(words)


def planned_runs(r: dict, seeds: list[int], *, teacher_given: bool) -> int:
    """How many runs a recipe trains: its teacher (unless given), the extra teachers its
    objectives' teacher sets need (each once), one student per objective and seed, and the
    budget check's student when asked."""
    kinds = {o.get("teachers", "one") for o in r["objectives"] if loss_needs_teacher(o["loss"])}
    extra = 0
    if "ensemble" in kinds:
        extra += len([s for s in r.get("teacher_seeds", [0, 1, 2]) if s != 0])
    if "out_of_fold" in kinds:
        extra += int(r.get("folds", 3))
    check = 1 if r.get("budget_check") and any(o["loss"] == "student" for o in r["objectives"]) else 0
    return (0 if teacher_given else 1) + extra + len(r["objectives"]) * len(seeds) + check


_KIND_SUFFIX = {"one": "", "ensemble": "-ens", "out_of_fold": "-oof"}
_BAD_KIND = "A recipe objective's 'teachers' must be one, ensemble or out_of_fold, not {!r}."


def _run_name(o: dict) -> str:
    """A recipe objective's folder name: its loss and α, its teacher set, and every distill field
    it sets besides loss, α, β and T (``kl-a0.9-view_mean``)."""
    kind = o.get("teachers", "one")
    if kind not in _KIND_SUFFIX:
        raise GeodistillError(_BAD_KIND.format(kind))
    skip = ("loss", "alpha", "beta", "T", "teachers")
    extra = "".join(f"-{k}" if v is True else f"-{k}{v}" for k, v in sorted(o.items()) if k not in skip)
    return f"{loss_fragment(o['loss'], o, keys=('alpha',))}{_KIND_SUFFIX[kind]}{extra}"


class _TeacherSets:
    """The teachers an objective asks for (``"teachers"`` in a recipe objective): ``one`` (the
    recipe's teacher), ``ensemble`` (it and one more per extra seed of ``teacher_seeds``) or
    ``out_of_fold`` (``folds`` teachers, each trained without one fold of the training split).
    Each extra teacher is trained once, on first use, in ``out_dir``."""

    def __init__(self, recipe: dict, tspec: dict, first: str, out_dir: Path, resume: bool, datas: dict, timings):
        self.recipe, self.tspec, self.first, self.out_dir = recipe, tspec, first, out_dir
        self.resume, self.datas, self.timings = resume, datas, timings
        self._made: dict[str, dict] = {}  # kind -> its distill fields, so each set is resolved once

    def _train(self, name: str, over: dict) -> str:
        cfg = build_config(deep_merge(self.tspec, over), where=f"recipe teacher {name}")
        t0 = time.perf_counter()
        train(cfg, self.out_dir / name, resume=self.resume, data=data_for(cfg, self.datas), role="teacher")
        self.timings[f"{name}_s"] = self.timings.get(f"{name}_s", 0.0) + time.perf_counter() - t0
        return str(self.out_dir / name / "model.ckpt")

    def distill(self, kind: str) -> dict:
        """The ``distill`` fields (teacher, ensemble) of one kind of teacher set."""
        if kind not in self._made:
            self._made[kind] = self._make(kind)
        return self._made[kind]

    def _make(self, kind: str) -> dict:
        if kind == "one":
            return {"teacher": self.first}
        if kind == "ensemble":
            extra = [s for s in self.recipe.get("teacher_seeds", [0, 1, 2]) if s != 0]
            paths = [self.first] + [self._train(f"teacher-s{s}", {"train": {"seed": s}}) for s in extra]
            return {"teacher": paths, "ensemble": "logits"}
        if kind == "out_of_fold":
            k = int(self.recipe.get("folds", 3))
            paths = [self._train(f"teacher-fold{j}", {"data": {"folds": k, "hold_out": j}}) for j in range(k)]
            return {"teacher": paths, "ensemble": "out_of_fold"}
        raise GeodistillError(_BAD_KIND.format(kind))


def summarise(rows: list[dict], teacher: dict | None, budget: dict | None = None) -> dict:
    """The comparison table, computed by `experiments`: per objective label (teacher first, then
    the recipe's order) mean ± sd over seeds of accuracy and macro-F1, the mean cost and how many
    runs converged (`aggregate`), the paired gain over the student alone (`paired_difference`: mean_diff,
    sd_diff, wins of ``pairs`` seeds), the teacher's cost over each line's (`cost_ratios`), and
    the verdict in words (it says when a compared run had not converged)."""
    results = ([dict(teacher, label="teacher")] if teacher else []) + rows
    tidy = [dict(t, label=r["label"]) for t, r in zip(tidy_rows(results), results)]
    groups = aggregate(tidy, by=("label", *GROUP_BY), metrics=(*AGGREGATE_METRICS, *COST_FIELDS))
    order = list(dict.fromkeys(t["label"] for t in tidy))
    groups.sort(key=lambda g: order.index(g["label"]))
    paired = paired_difference(tidy)
    gains = {tuple(p[k] for k in GROUP_BY): p for p in paired}
    ref = groups[0] if teacher else None
    table = [_line(g, gains.get(tuple(g[k] for k in GROUP_BY)), ref) for g in groups]
    return {"table": table, "verdict": verdict(paired, budget)}


def _line(g: dict[str, Any], gain: dict[str, Any] | None, ref: dict[str, Any] | None) -> dict[str, Any]:
    """One table line from an aggregate group, its paired gain and the teacher's group."""
    line = {k: g[k] for k in ("label", "model", "n", *(f"{m}_{s}" for m in AGGREGATE_METRICS for s in ("mean", "std")))}
    line.update({c: g[f"{c}_mean"] for c in COST_FIELDS}, converged=g.get("converged"))
    if gain and gain["n"]:
        line.update(mean_diff=gain["mean_diff"], sd_diff=gain["sd_diff"], wins=gain["wins"], pairs=gain["n"])
    if ref is not None:
        line.update(cost_ratios(ref, line))
    return line


def _ratio(x: float | None) -> str:
    return "–" if x is None else f"{x:.1f}"


def format_summary(summary: dict) -> str:
    """The comparison table as Markdown (accuracy and F1 in % with 2 decimals, mean ± std over seeds
    where there are several, as everywhere: `experiments.table.format_mean_std`; converged:
    runs that met the convergence rule of those that record it, '–' for none), the rule, the verdict."""
    head = (
        "| model / objective | n | converged | accuracy % | macro-F1 % | gain vs alone (pts) | wins | params | MFLOPs "
        "| size KB | latency ms | × params | × FLOPs | × latency |"
    )
    lines = [head, "|---|" + "---:|" * 13]
    for t in summary["table"]:
        gain = format_points(100 * t["mean_diff"], 100 * t["sd_diff"]) if "mean_diff" in t else "–"
        wins = f"{t['wins']}/{t['pairs']}" if "wins" in t else "–"
        lat = f"{t['latency_ms']:.2f}" if _finite(t.get("latency_ms")) else "–"
        lines.append(
            f"| {t['label']} ({t['model']}) | {t['n']} | {t.get('converged') or '–'} | "
            f"{format_mean_std('accuracy', t['accuracy_mean'], t['accuracy_std'], unit=False)} | "
            f"{format_mean_std('f1_macro', t['f1_macro_mean'], t['f1_macro_std'], unit=False)} | "
            f"{gain} | {wins} | {t['params']:,.0f} | "
            f"{t['flops'] / 1e6:.1f} | {t['size_bytes'] / 1024:.0f} | {lat} | {_ratio(t.get('params_ratio'))} | "
            f"{_ratio(t.get('flops_ratio'))} | {_ratio(t.get('speedup'))} |"
        )
    if any(t.get("converged") for t in summary["table"]):
        lines += ["", f"Converged: {RULE}."]
    if summary.get("verdict"):
        lines += ["", summary["verdict"]]
    if summary.get("budget_check"):
        lines += ["", _budget_line(summary["budget_check"])]
    return "\n".join(lines) + "\n"


def _finite(x: Any) -> bool:
    return isinstance(x, (int, float)) and math.isfinite(x) and x != 0


def load_summary(path: str | Path) -> dict:
    """Read a run folder's ``summary.json``."""
    return json.loads((Path(path) / SUMMARY_FILE).read_text())


__all__ = ["RunConfig", "format_summary", "run", "summarise"]
