"""What the report shows, gathered from typed results: the facts of what was run, the figures,
and the tables as display rows (column -> value)."""

from __future__ import annotations

import datetime as _dt
import json
import os
import platform
import re
import statistics
import sys
from collections.abc import Sequence
from importlib import metadata
from pathlib import Path
from typing import Any

from geodistill.analysis import plots
from geodistill.analysis.format import format_mean_std, format_points, format_value, is_number, is_percent_column
from geodistill.analysis.stats import Pairing
from geodistill.analysis.table import ALPHA_FAMILY, Group, alpha_groups, converged_cell, has_nuclear
from geodistill.analysis.verdict import pretty_objective, setting_label
from geodistill.losses import get_preset
from geodistill.report.sections import Figure
from geodistill.results.files import ended
from geodistill.results.result import RunResult, is_baseline

COMPACT_COLUMNS = (
    "run_id", "dataset", "model", "role", "objective_name", "alpha", "beta", "T", "seed", "accuracy", "f1_macro",
    "params", "epochs", "converged", "wall_time_s", "status",
)  # fmt: skip


# ---------------------------------------------------------------- what was run


def flatten(data: Any, prefix: str = "") -> list[tuple[str, str]]:
    """Nested config as (dotted key, text) pairs; lists of scalars joined by commas."""
    if isinstance(data, dict):
        return [p for k, v in data.items() for p in flatten(v, f"{prefix}.{k}" if prefix else str(k))]
    if isinstance(data, list) and all(not isinstance(v, (dict, list)) for v in data):
        if len(data) > 12:  # e.g. a study's list of point names
            return [(prefix, f"{len(data)} items: " + ", ".join(map(_scalar, data[:5])) + ", …, " + _scalar(data[-1]))]
        return [(prefix, ", ".join(_scalar(v) for v in data))]
    if isinstance(data, list):
        return [(prefix, json.dumps(data, ensure_ascii=False))]
    return [(prefix, _scalar(data))]


def _scalar(v: Any) -> str:
    return "–" if v is None else f"{v:g}" if isinstance(v, float) else str(v)


def _distinct(values: Sequence[Any]) -> str:
    values = {v for v in values if v is not None}
    if not values:
        return "–"
    ordered = sorted(values, key=lambda v: (isinstance(v, str), v if not isinstance(v, str) else 0, str(v)))
    return ", ".join(_scalar(v) for v in ordered)


def _betas(results: Sequence[RunResult]) -> str:
    """The β values the runs used; 'β = α (tied)' for the runs whose preset ties β to α (β not
    given), so a sweep over α says that it moved β with it."""
    shown = _distinct([r.beta for r in results])
    tied = sorted({str(r.objective_name) for r in results if r.beta is None and _ties_beta(r)})
    if not tied:
        return shown
    text = f"β = α (tied, {', '.join(tied)})"
    return text if shown == "–" else f"{shown}; {text}"


def _ties_beta(r: RunResult) -> bool:
    preset = get_preset(str(r.objective_name))
    return r.role == "distilled" and preset is not None and "beta" in preset.uses


def runs_summary(results: Sequence[RunResult]) -> list[tuple[str, str]]:
    """How many runs, of which roles, over which datasets, sizes, models, objectives, α/β/T, seeds."""
    roles: dict[str, int] = {}
    for r in results:
        roles[r.role] = roles.get(r.role, 0) + 1
    n_ok = sum(r.ok for r in results)
    teachers = [" + ".join(map(str, r.teacher)) if isinstance(r.teacher, list) else r.teacher for r in results]
    return [
        ("runs", f"{len(results)} ({n_ok} finished, {len(results) - n_ok} failed)"),
        ("roles", ", ".join(f"{k}: {v}" for k, v in sorted(roles.items()))),
        ("datasets", _distinct([r.dataset for r in results])),
        ("image size (px)", _distinct([r.size for r in results])),
        ("models", _distinct([r.model for r in results])),
        ("teachers", _distinct(teachers)),
        ("objectives", _distinct([r.objective_name for r in results])),
        ("α values", _distinct([r.alpha for r in results])),
        ("β values", _betas(results)),
        ("T values", _distinct([r.T for r in results])),
        ("seeds", _distinct([r.seed for r in results])),
        ("epochs", _distinct([r.epochs for r in results])),
        ("precision", _distinct([r.precision_value for r in results])),
        ("converged", converged_cell([r.converged for r in results if r.ok]) or "–"),
    ]


def pending_points(folder: Path, study: dict[str, Any] | None) -> list[str]:
    """Points a study's sweep.json lists (``points``) that have no result file yet."""
    points = study.get("points") if study else None
    if not isinstance(points, list):
        return []
    return [str(p) for p in points if isinstance(p, str) and not ended(folder / p)]


def objectives(results: Sequence[RunResult]) -> list[dict[str, Any]]:
    """Each objective name with its formula."""
    seen = dict.fromkeys((str(r.objective_name), str(r.objective or "–")) for r in results)
    return [{"objective_name": n, "formula": f} for n, f in sorted(seen)]


def run_machines(results: Sequence[RunResult]) -> list[tuple[str, str]]:
    """The machines the runs report: one line per distinct machine."""
    seen: dict[str, list] = {}  # canonical JSON -> [machine as first seen, number of runs]
    for r in results:
        if isinstance(r.machine, dict):
            key = json.dumps(r.machine, sort_keys=True, ensure_ascii=False, default=str)
            seen.setdefault(key, [r.machine, 0])[1] += 1
    return [
        (f"machine {i} ({n} run{'s' if n != 1 else ''})", ", ".join(f"{k}: {_scalar(v)}" for k, v in m.items()))
        for i, (m, n) in enumerate(seen.values(), 1)
    ]


def machine_info() -> list[tuple[str, str]]:
    """Where this report was made: platform, Python, CPU count, torch version, date."""

    def version(pkg: str) -> str:
        try:
            return metadata.version(pkg)
        except metadata.PackageNotFoundError:
            return "not installed"

    return [
        ("platform", platform.platform()),
        ("python", sys.version.split()[0]),
        ("CPU count", str(os.cpu_count())),
        ("torch", version("torch")),
        ("geodistill", version("geodistill")),
        ("date", _dt.datetime.now().astimezone().isoformat(timespec="seconds")),
    ]


# ---------------------------------------------------------------- figures


def _safe(text: str) -> str:
    return re.sub(r"[^A-Za-z0-9._-]+", "_", str(text)).strip("_") or "run"


def _representative(results: Sequence[RunResult]) -> list[RunResult]:
    """Per dataset and role, the finished run with the highest accuracy."""
    best: dict[tuple, RunResult] = {}
    for r in results:
        if not r.ok or not is_number(r.value("accuracy")):
            continue
        key = (str(r.dataset), r.role)
        if key not in best or r.value("accuracy") > best[key].value("accuracy"):
            best[key] = r
    order = {"teacher": 0, "student": 1, "distilled": 2}
    return [best[k] for k in sorted(best, key=lambda k: (k[0], order.get(k[1], 3), k[1]))]


def figures(results: Sequence[RunResult], fig_dir: Path) -> list[Figure]:
    """The α plot (only where α varies), accuracy against cost, and per dataset and role the best
    run's confusion matrix and training curves."""
    out: list[Figure] = []
    ok = [r for r in results if r.ok]
    if alpha_groups(ok):
        png = plots.plot_alpha(ok, fig_dir / "alpha")[0]
        caption = "α sweep: accuracy and macro F1 against α, mean ± sd over seeds; the dotted line and band are "
        out.append(Figure(png, "Accuracy and macro F1 against alpha", caption + "the student alone."))
    if any(is_number(v := r.value(f)) and v > 0 for r in ok for f in ("params", "flops", "latency_ms")):
        png = plots.plot_compression(ok, fig_dir / "compression")[0]
        caption = "Accuracy against model cost (log scale): teachers, students alone and distilled students, "
        out.append(Figure(png, "Accuracy against parameters, FLOPs and latency", caption + "mean ± sd over seeds."))
    for r in _representative(results):
        who = (
            f"{r.role} {r.model}, {pretty_objective(r.objective_name)}, seed {r.seed} "
            f"(run {r.run_id}, best {r.role} on {r.dataset})"
        )
        stem = _safe(f"{r.dataset}_{r.role}_{r.run_id}")
        m = r.metrics
        if m is not None and m.confusion_matrix and m.classes:
            title = f"Confusion matrix: {r.role} {r.model}"
            png = plots.plot_confusion(m.confusion_matrix, m.classes, fig_dir / f"confusion_{stem}", title=title)[0]
            out.append(Figure(png, f"Confusion matrix of {who}", f"Confusion matrix (test set) of the {who}."))
        if r.history:
            title = f"Training curves: {r.role} {r.model}"
            png = plots.plot_curves(r.history, fig_dir / f"curves_{stem}", title=title)[0]
            out.append(Figure(png, f"Training curves of {who}", f"Loss and accuracy per epoch of the {who}."))
    return out


# ---------------------------------------------------------------- tables as display rows


def paired_rows(paired: Sequence[Pairing]) -> list[dict[str, str]]:
    """Paired differences as text, in points (×100 for accuracy/F1 fractions)."""
    out = []
    for p in paired:
        k = 100.0 if is_percent_column(p.metric) else 1.0
        s = p.setting
        ci = "–" if p.n < 2 else f"{format_points(k * p.ci_low)} to {format_points(k * p.ci_high)}"
        out.append(
            {
                "dataset": str(s.dataset),
                "model": str(s.model),
                "objective_name": str(s.objective),
                "alpha": format_value("alpha", s.alpha),
                "beta": format_value("beta", s.beta),
                "T": format_value("T", s.T),
                "n": str(p.n),
                f"{p.metric} (setting)": format_value(p.metric, p.mean),
                f"{p.metric} (student alone)": format_value(p.metric, p.baseline_mean),
                "Δ mean (pts)": format_points(k * p.mean_diff),
                "Δ sd (pts)": format_value("Δ_std", k * p.sd_diff) if p.n > 1 else "–",
                "95% CI (pts)": ci,
                "CI over": p.ci_over if p.n > 1 else "–",
                "wins": f"{p.wins}/{p.n}",
                "no baseline": str(len(p.seeds_without_baseline)),
            }
        )
    return out


def _beta_order(beta: Any) -> tuple:
    """β columns: β = 0 (no nuclear norm) first, then β = α (tied), then the others rising."""
    return (0, 0.0) if beta == 0 else (1, 0.0) if beta is None else (2, float(beta))


def _beta_label(name: Any, beta: Any, nuclear: bool) -> str:
    text = "β=α" if beta is None else f"β={beta:g}"
    if str(name) == "thesis" or nuclear:
        text += " (nuclear norm)" if nuclear else " (no nuclear norm)"
    return text


def _seed_cell(n: int, n_failed: int) -> str:
    return str(n) + (f" ({n_failed} failed)" if n_failed else "")


def alpha_tables(results: Sequence[RunResult]) -> list[tuple[str, list[dict[str, str]]]]:
    """The α tables, one per family (dataset, model, objective, T): a row per α (and the student
    alone on top), accuracy and macro F1 (mean ± sd over seeds) per β setting."""
    families: dict[tuple, list[Group]] = {}
    for g in alpha_groups(results):
        families.setdefault(tuple(getattr(g.setting, k) for k in ALPHA_FAMILY), []).append(g)
    out = []
    for (ds, model, name, T), members in families.items():
        betas = sorted({g.setting.beta for g in members}, key=_beta_order)
        nuclear = {b: has_nuclear(name, b, T) for b in betas}
        plain = len(betas) == 1 and str(name) != "thesis" and not nuclear[betas[0]]
        cols = {b: ("" if plain else ", " + _beta_label(name, b, nuclear[b])) for b in betas}
        base = [r for r in results if is_baseline(r) and r.ok and (r.dataset, r.model) == (ds, model)]
        table: list[dict[str, str]] = []
        if base:
            line = {"α": "student alone", "seeds": str(len(base))}
            for b in betas:
                for metric, label in (("accuracy", "accuracy"), ("f1_macro", "macro F1")):
                    vals = [v for r in base if is_number(v := r.value(metric))]
                    mean = statistics.fmean(vals) if vals else None
                    line[label + cols[b]] = format_mean_std(
                        metric, mean, statistics.stdev(vals) if len(vals) > 1 else None
                    )
            table.append(line)
        by_alpha: dict[float, dict[Any, Group]] = {}
        for g in members:
            by_alpha.setdefault(g.setting.alpha, {})[g.setting.beta] = g
        for a in sorted(by_alpha):
            cells = by_alpha[a]
            seeds = " / ".join(_seed_cell(cells[b].n, cells[b].n_failed) if b in cells else "–" for b in betas)
            line = {"α": f"{a:g}", "seeds": seeds}
            for b in betas:
                g = cells.get(b)
                for metric, label in (("accuracy", "accuracy"), ("f1_macro", "macro F1")):
                    line[label + cols[b]] = format_mean_std(metric, g and g.mean(metric), g and g.std(metric))
            table.append(line)
        who = pretty_objective(name)
        t_text = f", T={T:g}" if isinstance(T, (int, float)) else ""
        title = f"{who[:1].upper() + who[1:]}{t_text} on {ds}, student {model}: n = {len(by_alpha)} α values, "
        out.append((title + "mean ± sd over seeds", table))
    return out


def _ratio(x: Any) -> str:
    return format_value("ratio", float(x)) if is_number(x) else "–"


def teacher_student_rows(long_rows: Sequence[dict[str, Any]]) -> list[dict[str, str]]:
    """The teacher-against-student table as text (`analysis.table.teacher_student_table`)."""
    out = []
    for r in long_rows:
        ms = lambda m, r=r: format_mean_std(m, r[f"{m}_mean"], r[f"{m}_std"])  # noqa: E731
        out.append(
            {
                "dataset": str(r["dataset"]),
                "run": r["who"],
                "model": str(r["model"]),
                "setting": setting_label(r["_setting"]) if r["who"] == "distilled (best)" else "–",
                "seeds": str(r["n"]),
                "accuracy": ms("accuracy"),
                "precision (macro)": ms("precision_macro"),
                "recall (macro)": ms("recall_macro"),
                "F1 (macro)": ms("f1_macro"),
                "params": format_value("params", r["params"]),
                "MFLOPs": format_value("mflops", r["flops"] / 1e6) if is_number(r["flops"]) else "–",
                "size (KB)": format_value("kb", r["size_bytes"] / 1024) if is_number(r["size_bytes"]) else "–",
                "latency (ms)": format_value("latency_ms", r["latency_ms"]),
                "× fewer params": _ratio(r["params_ratio"]),
                "× fewer FLOPs": _ratio(r["flops_ratio"]),
                "× faster": _ratio(r["speedup"]),
                "converged": r.get("converged") or "–",
            }
        )
    return out


def _run_order(r: RunResult) -> tuple:
    """Display order of runs: dataset, teacher/student/distilled, model, setting, seed."""

    def k(v: Any) -> tuple:
        return (0, 0.0, "") if v is None else (1, float(v), "") if isinstance(v, (int, float)) else (2, 0.0, str(v))

    role = {"teacher": 0, "student": 1}.get(r.role, 2)
    return (str(r.dataset), role, str(r.model), str(r.objective_name), k(r.alpha), k(r.beta), k(r.T), k(r.seed))


def compact_rows(results: Sequence[RunResult]) -> list[dict[str, Any]]:
    """The per-run table: a few columns of every run, in display order."""
    return [{c: row.get(c) for c in COMPACT_COLUMNS} for row in (r.flat() for r in sorted(results, key=_run_order))]


def failed_items(results: Sequence[RunResult]) -> list[tuple[str, str]]:
    """(run id, '(what it was meant to be): error') for every failed run."""
    items = []
    for r in results:
        if r.ok:
            continue
        what = f"{r.role or 'run'} {r.model}" + (f", {setting_label(r.setting)}" if r.role != "teacher" else "")
        items.append((str(r.run_id), f"({what}, seed {r.seed}): {r.error or 'no message'}"))
    return items
