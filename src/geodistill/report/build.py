"""The report of a run or sweep folder: one self-contained HTML page and a Markdown twin.

The HTML page needs nothing but itself: CSS inline, figures embedded as base64 PNG data URIs,
no scripts, no network. The Markdown twin links the PNG files written next to it. Both hold:
what was run (config, objective formulas, data, seeds, machine), the plain-words verdict, the
aggregate table (mean ± sd over seeds), the thesis's tables (teacher against student; α against
accuracy and macro F1 per β, i.e. with and without the nuclear norm), the paired differences
against the student alone with 95% CIs, the figures, the per-run table and the failed runs.
Tables also go to CSV/JSON beside them.
"""

from __future__ import annotations

import base64
import datetime as _dt
import html
import json
import logging
import os
import platform
import re
import statistics
import sys
from collections.abc import Sequence
from dataclasses import dataclass
from importlib import metadata
from pathlib import Path
from typing import Any

from geodistill.analysis import plots
from geodistill.analysis.stats import paired_difference, pretty_objective, setting_label, verdict
from geodistill.analysis.table import (
    ALPHA_FAMILY,
    aggregate,
    alpha_table,
    atomic_write_text,
    collect,
    converged_cell,
    display_rows,
    format_mean_std,
    format_points,
    format_value,
    is_number,
    is_percent_column,
    markdown_table,
    read_json_object,
    teacher_student_table,
    tidy_rows,
    write_csv,
    write_rows_json,
)
from geodistill.engine.convergence import RULE
from geodistill.results.result import FAILED_FILE, RESULTS_FILE, SWEEP_FILE

logger = logging.getLogger(__name__)

COMPACT_COLUMNS = (
    "run_id",
    "dataset",
    "model",
    "role",
    "objective_name",
    "alpha",
    "beta",
    "T",
    "seed",
    "accuracy",
    "f1_macro",
    "params",
    "epochs",
    "converged",
    "wall_time_s",
    "status",
)
PAIRED_METRICS = ("accuracy", "f1_macro")
_TS_NOTE = (
    "Per dataset: the teacher, the student trained alone and the distilled setting with the highest "
    "mean accuracy; mean ± sd over seeds; cost is the mean over seeds; × fewer params, × fewer FLOPs "
    "and × faster are the teacher's cost divided by the row's (latency only where measured)."
)
_AGG_NOTE = (
    "Sample standard deviation (n − 1); – where a setting has a single seed. converged: how many runs met "
    f"the convergence rule, of those that record it (– where none does). The rule: {RULE}."
)
_PAIRED_NOTE = (
    "Δ = setting − student alone, paired by dataset, student model and seed, in percentage points; "
    "95% CI = mean Δ ± t(0.975, n−1)·√(sd²/n + v), where v is the part of the variance owed to which "
    "test images were drawn (for accuracy, when every paired run records its per-image hits: CI over "
    "'seeds and test images'; else v = 0: CI over 'seeds'); wins = seeds with Δ > 0."
)
_NO_ALPHA = "No α sweep among these runs: an α table needs one objective run at two or more α values."

_CSS = """
body{font-family:system-ui,-apple-system,'Segoe UI',Roboto,sans-serif;margin:2rem auto;max-width:1150px;
color:#1b1f24;line-height:1.45;padding:0 1rem}
h1{font-size:1.6rem;margin-bottom:.2rem}
h2{font-size:1.2rem;border-bottom:1px solid #ccd;padding-bottom:.2rem;margin-top:2rem}
div.table-box{overflow-x:auto;max-width:100%;margin:.6rem 0}
table{border-collapse:collapse;font-size:.82rem}
th,td{border:1px solid #d6d9de;padding:.25rem .5rem;text-align:left;white-space:nowrap}
table.kv td{white-space:normal;overflow-wrap:anywhere;min-width:12rem}
p,li,h3,figcaption{overflow-wrap:anywhere}
th{background:#eef1f5}tr:nth-child(even) td{background:#f8f9fb}
td.num{text-align:right;font-variant-numeric:tabular-nums}
p.verdict{background:#eef7ee;border-left:4px solid #2ca02c;padding:.7rem 1rem;font-size:1rem}
figure{margin:1rem 0}img.plot{max-width:100%;height:auto;border:1px solid #e3e5e8}
figcaption{font-size:.85rem;color:#555}.muted{color:#666;font-size:.85rem}code{font-size:.85rem}
"""


@dataclass
class ReportFigure:
    """One figure of the report: the PNG file, its alt text and caption."""

    png: Path
    alt: str
    caption: str


# ---------------------------------------------------------------- gathering


def _read_sweep(folder: Path) -> dict[str, Any] | None:
    path = folder / SWEEP_FILE
    if not path.is_file():
        return None
    return read_json_object(path, "fix it or delete it")


def _flatten(data: Any, prefix: str = "") -> list[tuple[str, str]]:
    """Nested config as (dotted key, text) pairs; lists of scalars joined by commas."""
    if isinstance(data, dict):
        out: list[tuple[str, str]] = []
        for k, v in data.items():
            out.extend(_flatten(v, f"{prefix}.{k}" if prefix else str(k)))
        return out
    if isinstance(data, list) and all(not isinstance(v, (dict, list)) for v in data):
        if len(data) > 12:  # e.g. a sweep's list of point names
            return [
                (prefix, f"{len(data)} items: " + ", ".join(_scalar(v) for v in data[:5]) + ", …, " + _scalar(data[-1]))
            ]
        return [(prefix, ", ".join(_scalar(v) for v in data))]
    if isinstance(data, list):
        return [(prefix, json.dumps(data, ensure_ascii=False))]
    return [(prefix, _scalar(data))]


def _scalar(v: Any) -> str:
    return "–" if v is None else f"{v:g}" if isinstance(v, float) else str(v)


def _distinct(rows: Sequence[dict[str, Any]], key: str) -> str:
    values = {r.get(key) for r in rows if r.get(key) is not None}
    if not values:
        return "–"
    ordered = sorted(values, key=lambda v: (isinstance(v, str), v if not isinstance(v, str) else 0, str(v)))
    return ", ".join(_scalar(v) for v in ordered)


def _runs_summary(results: Sequence[dict[str, Any]], rows: Sequence[dict[str, Any]]) -> list[tuple[str, str]]:
    n_ok = sum(1 for r in rows if r.get("status", "ok") == "ok")
    roles = {}
    for r in rows:
        roles[r.get("role")] = roles.get(r.get("role"), 0) + 1
    return [
        ("runs", f"{len(rows)} ({n_ok} finished, {len(rows) - n_ok} failed)"),
        ("roles", ", ".join(f"{k}: {v}" for k, v in sorted(roles.items(), key=lambda kv: str(kv[0])))),
        ("datasets", _distinct(rows, "dataset")),
        ("image size (px)", _distinct(rows, "size")),
        ("models", _distinct(rows, "model")),
        ("teachers", _distinct(rows, "teacher")),
        ("objectives", _distinct(rows, "objective_name")),
        ("α values", _distinct(rows, "alpha")),
        ("β values", _distinct(rows, "beta")),
        ("T values", _distinct(rows, "T")),
        ("seeds", _distinct(rows, "seed")),
        ("epochs", _distinct(rows, "epochs")),
        ("converged", converged_cell([r.get("converged") for r in rows if r.get("status", "ok") == "ok"]) or "–"),
    ]


def _pending_points(folder: Path, sweep: dict[str, Any] | None) -> list[str]:
    """Points a sweep.json lists (key 'points': folder names) that have no result file yet."""
    points = sweep.get("points") if sweep else None
    if not isinstance(points, list):
        return []
    return [
        str(p)
        for p in points
        if isinstance(p, str) and not (folder / p / RESULTS_FILE).is_file() and not (folder / p / FAILED_FILE).is_file()
    ]


def _objectives(rows: Sequence[dict[str, Any]]) -> list[dict[str, Any]]:
    seen: dict[tuple, None] = {}
    for r in rows:
        seen.setdefault((str(r.get("objective_name")), str(r.get("objective") or "–")), None)
    return [{"objective_name": n, "formula": f} for n, f in sorted(seen)]


def run_machines(results: Sequence[dict[str, Any]]) -> list[tuple[str, str]]:
    """The machines the runs report (their 'machine' field): one line per distinct machine."""
    seen: dict[str, list] = {}  # canonical JSON -> [machine as first seen, number of runs]
    for r in results:
        if isinstance(r.get("machine"), dict):
            key = json.dumps(r["machine"], sort_keys=True, ensure_ascii=False, default=str)
            seen.setdefault(key, [r["machine"], 0])[1] += 1
    out = []
    for i, (machine, n) in enumerate(seen.values(), 1):
        text = ", ".join(f"{k}: {_scalar(v)}" for k, v in machine.items())
        out.append((f"machine {i} ({n} run{'s' if n != 1 else ''})", text))
    return out


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


def _run_order(row: dict[str, Any]) -> tuple:
    """Display order of runs: dataset, teacher/student/distilled, model, setting, seed."""
    role = {"teacher": 0, "student": 1}.get(str(row.get("role")), 2)

    def k(v: Any) -> tuple:
        return (0, 0.0, "") if v is None else (1, float(v), "") if isinstance(v, (int, float)) else (2, 0.0, str(v))

    return (
        str(row.get("dataset")),
        role,
        str(row.get("model")),
        str(row.get("objective_name")),
        k(row.get("alpha")),
        k(row.get("beta")),
        k(row.get("T")),
        k(row.get("seed")),
    )


def _safe(text: str) -> str:
    return re.sub(r"[^A-Za-z0-9._-]+", "_", str(text)).strip("_") or "run"


def _representative(results: Sequence[dict[str, Any]]) -> list[dict[str, Any]]:
    """Per dataset and role, the finished run with the highest accuracy."""
    best: dict[tuple, dict[str, Any]] = {}
    for r in results:
        if r.get("status", "ok") != "ok" or not is_number(r["metrics"]["accuracy"]):
            continue
        key = (str(r.get("dataset")), str(r.get("role")))
        if key not in best or r["metrics"]["accuracy"] > best[key]["metrics"]["accuracy"]:
            best[key] = r
    order = {"teacher": 0, "student": 1, "distilled": 2}
    return [best[k] for k in sorted(best, key=lambda k: (k[0], order.get(k[1], 3), k[1]))]


def _make_figures(
    results: Sequence[dict[str, Any]], rows: Sequence[dict[str, Any]], fig_dir: Path
) -> list[ReportFigure]:
    figures: list[ReportFigure] = []
    ok = [r for r in rows if r.get("status", "ok") == "ok"]
    if any(
        r.get("alpha") is not None and r.get("role") != "teacher" and r.get("objective_name") != "student" for r in ok
    ):
        png = plots.plot_alpha(rows, fig_dir / "alpha")[0]
        figures.append(
            ReportFigure(
                png,
                "Accuracy and macro F1 against alpha",
                "α sweep: accuracy and macro F1 against α, mean ± sd over seeds; "
                "the dotted line and band are the student alone.",
            )
        )
    if any(is_number(r.get(f)) and r[f] > 0 for r in ok for f in ("params", "flops", "latency_ms")):
        png = plots.plot_compression(rows, fig_dir / "compression")[0]
        figures.append(
            ReportFigure(
                png,
                "Accuracy against parameters, FLOPs and latency",
                "Accuracy against model cost (log scale): teachers, students alone "
                "and distilled students, mean ± sd over seeds.",
            )
        )
    for r in _representative(results):
        m = r.get("metrics") or {}
        who = (
            f"{r.get('role')} {r.get('model')}, {pretty_objective(r.get('objective_name'))}, "
            f"seed {r.get('seed')} (run {r.get('run_id')}, best {r.get('role')} on {r.get('dataset')})"
        )
        stem = _safe(f"{r.get('dataset')}_{r.get('role')}_{r.get('run_id')}")
        cm, classes = m.get("confusion_matrix"), m.get("classes")
        if cm and classes:
            png = plots.plot_confusion(
                cm, classes, fig_dir / f"confusion_{stem}", title=f"Confusion matrix: {r.get('role')} {r.get('model')}"
            )[0]
            figures.append(
                ReportFigure(png, f"Confusion matrix of {who}", f"Confusion matrix (test set) of the {who}.")
            )
        if r.get("history"):
            png = plots.plot_curves(
                r["history"], fig_dir / f"curves_{stem}", title=f"Training curves: {r.get('role')} {r.get('model')}"
            )[0]
            figures.append(ReportFigure(png, f"Training curves of {who}", f"Loss and accuracy per epoch of the {who}."))
    return figures


def _paired_display(paired: Sequence[dict[str, Any]]) -> list[dict[str, str]]:
    """Paired rows as text, the differences in points (×100 for accuracy/F1 fractions)."""
    out = []
    for p in paired:
        k = 100.0 if is_percent_column(p["metric"]) else 1.0
        ci = "–" if p["n"] < 2 else f"{format_points(k * p['ci_low'])} to {format_points(k * p['ci_high'])}"
        out.append(
            {
                "dataset": str(p["dataset"]),
                "model": str(p["model"]),
                "objective_name": str(p["objective_name"]),
                "alpha": format_value("alpha", p["alpha"]),
                "beta": format_value("beta", p["beta"]),
                "T": format_value("T", p["T"]),
                "n": str(p["n"]),
                f"{p['metric']} (setting)": format_value(p["metric"], p["mean"]),
                f"{p['metric']} (student alone)": format_value(p["metric"], p["baseline_mean"]),
                "Δ mean (pts)": format_points(k * p["mean_diff"]),
                "Δ sd (pts)": format_value("Δ_std", k * p["sd_diff"]) if p["n"] > 1 else "–",
                "95% CI (pts)": ci,
                "CI over": p.get("ci_over", "seeds") if p["n"] > 1 else "–",
                "wins": f"{p['wins']}/{p['n']}",
                "no baseline": str(len(p["seeds_without_baseline"])),
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


def _alpha_display(
    long_rows: Sequence[dict[str, Any]], rows: Sequence[dict[str, Any]]
) -> list[tuple[str, list[dict[str, str]]]]:
    """The α tables as text, one per family (dataset, model, objective, T): a row per α (and
    the student alone on top), accuracy and macro F1 (mean ± sd over seeds) per β setting."""
    families: dict[tuple, list[dict[str, Any]]] = {}
    for r in long_rows:
        families.setdefault(tuple(r.get(k) for k in ALPHA_FAMILY), []).append(r)
    out = []
    for (ds, model, name, T), members in families.items():
        betas = sorted({m["beta"] for m in members}, key=_beta_order)
        nuclear = {b: any(m["nuclear"] for m in members if m["beta"] == b) for b in betas}
        plain = len(betas) == 1 and str(name) != "thesis" and not nuclear[betas[0]]
        cols = {b: ("" if plain else ", " + _beta_label(name, b, nuclear[b])) for b in betas}
        base = [
            r
            for r in rows
            if r.get("objective_name") == "student"
            and r.get("role", "student") == "student"
            and r.get("dataset") == ds
            and r.get("model") == model
            and r.get("status", "ok") == "ok"
        ]
        table: list[dict[str, str]] = []
        if base:
            line = {"α": "student alone", "seeds": str(len(base))}
            for b in betas:
                for metric, label in (("accuracy", "accuracy"), ("f1_macro", "macro F1")):
                    vals = [float(r[metric]) for r in base if is_number(r.get(metric))]
                    line[label + cols[b]] = format_mean_std(
                        metric,
                        statistics.fmean(vals) if vals else None,
                        statistics.stdev(vals) if len(vals) > 1 else None,
                    )
            table.append(line)
        by_alpha: dict[float, dict[Any, dict[str, Any]]] = {}
        for m in members:
            by_alpha.setdefault(m["alpha"], {})[m["beta"]] = m
        for a in sorted(by_alpha):
            cells = by_alpha[a]
            line = {
                "α": f"{a:g}",
                "seeds": " / ".join(
                    _seed_cell(cells[b]["n"], cells[b]["n_failed"]) if b in cells else "–" for b in betas
                ),
            }
            for b in betas:
                m = cells.get(b, {})
                line["accuracy" + cols[b]] = format_mean_std("accuracy", m.get("accuracy_mean"), m.get("accuracy_std"))
                line["macro F1" + cols[b]] = format_mean_std("f1_macro", m.get("f1_macro_mean"), m.get("f1_macro_std"))
            table.append(line)
        who = pretty_objective(name)
        t_text = f", T={T:g}" if isinstance(T, (int, float)) else ""
        title = (
            f"{who[:1].upper() + who[1:]}{t_text} on {ds}, student {model}: n = {len(by_alpha)} α values, "
            "mean ± sd over seeds"
        )
        out.append((title, table))
    return out


def _ratio(x: Any) -> str:
    return format_value("ratio", float(x)) if is_number(x) else "–"


def _teacher_student_display(long_rows: Sequence[dict[str, Any]]) -> list[dict[str, str]]:
    """The teacher-against-student table as text (P/R/F1 macro as fractions, accuracy in %)."""
    out = []
    for r in long_rows:
        setting = "–" if r["who"] != "distilled (best)" else setting_label(r)
        out.append(
            {
                "dataset": str(r["dataset"]),
                "run": r["who"],
                "model": str(r["model"]),
                "setting": setting,
                "seeds": str(r["n"]),
                "accuracy": format_mean_std("accuracy", r["accuracy_mean"], r["accuracy_std"]),
                "precision (macro)": format_mean_std(
                    "precision_macro", r["precision_macro_mean"], r["precision_macro_std"]
                ),
                "recall (macro)": format_mean_std("recall_macro", r["recall_macro_mean"], r["recall_macro_std"]),
                "F1 (macro)": format_mean_std("f1_macro", r["f1_macro_mean"], r["f1_macro_std"]),
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


def _failed_what(row: dict[str, Any]) -> str:
    """'distilled cnn3, thesis objective (α=0.3), seed 0': what a failed run was meant to be."""
    what = f"{row.get('role') or 'run'} {row.get('model')}"
    if row.get("role") != "teacher":
        what += f", {setting_label(row)}"
    return what + f", seed {row.get('seed')}"


# ---------------------------------------------------------------- rendering


def _html_table(rows: Sequence[dict[str, Any]], cls: str, **attrs: str) -> str:
    extra = "".join(f' {html.escape(k.replace("_", "-"))}="{html.escape(v)}"' for k, v in attrs.items())
    if not rows:
        return _box(f'<table class="{html.escape(cls)}"{extra}><tr><td>no rows</td></tr></table>')
    columns, cells = display_rows(rows)
    head = "".join(f"<th>{html.escape(c)}</th>" for c in columns)
    body = []
    for line in cells:
        tds = "".join(
            f'<td class="num">{html.escape(v)}</td>' if _numberish(v) else f"<td>{html.escape(v)}</td>" for v in line
        )
        body.append(f"<tr>{tds}</tr>")
    return _box(
        f'<table class="{html.escape(cls)}"{extra}><thead><tr>{head}</tr></thead><tbody>{"".join(body)}</tbody></table>'
    )


def _box(table: str) -> str:
    """A table inside its own horizontally scrolling box, so a wide one never widens the page."""
    return f'<div class="table-box">{table}</div>'


def _numberish(text: str) -> bool:
    return bool(re.fullmatch(r"[+\-−]?[\d.]+(e[+\-]\d+)?( ± ([\d.]+|–))?( %)?|–", text))


def _kv_html(pairs: Sequence[tuple[str, str]], cls: str) -> str:
    body = "".join(f"<tr><th>{html.escape(k)}</th><td>{html.escape(v)}</td></tr>" for k, v in pairs)
    return _box(f'<table class="{html.escape(cls)} kv">{body}</table>')


def _kv_md(pairs: Sequence[tuple[str, str]]) -> str:
    return markdown_table([{"field": k, "value": v} for k, v in pairs])


def _data_uri(png: Path) -> str:
    return "data:image/png;base64," + base64.b64encode(png.read_bytes()).decode("ascii")


def _render_html(ctx: dict[str, Any]) -> str:
    e = html.escape
    parts = [
        "<!DOCTYPE html>",
        '<html lang="en"><head><meta charset="utf-8">',
        '<meta name="viewport" content="width=device-width, initial-scale=1">',
        f"<title>{e(ctx['title'])}</title><style>{_CSS}</style></head><body>",
        f"<h1>{e(ctx['title'])}</h1>",
        f'<p class="muted">Source folder: <code>{e(ctx["source"])}</code>. Tables as files: '
        + ", ".join(f'<a href="{e(n)}">{e(n)}</a>' for n in ctx["table_files"])
        + ".</p>",
        '<section id="verdict"><h2>Verdict</h2>',
        f'<p class="verdict">{e(ctx["verdict"])}</p></section>',
        '<section id="what-was-run"><h2>What was run</h2>',
        _kv_html(ctx["summary"], "summary"),
        "<h3>Objectives</h3>",
        _html_table(ctx["objectives"], "objectives"),
    ]
    if ctx["sweep"]:
        parts += [f"<h3>Sweep configuration ({e(SWEEP_FILE)})</h3>", _kv_html(ctx["sweep"], "config")]
    if ctx["run_machines"]:
        parts += ["<h3>Machines that ran the runs</h3>", _kv_html(ctx["run_machines"], "run-machines")]
    parts += [
        "<h3>Machine (where this report was made)</h3>",
        _kv_html(ctx["machine"], "machine"),
        "</section>",
        '<section id="aggregate"><h2>Mean ± sd over seeds</h2>',
        f'<p class="muted">{e(_AGG_NOTE)}</p>',
        _html_table(ctx["aggregate"], "aggregate"),
        "</section>",
        '<section id="thesis-tables"><h2>The thesis tables</h2>',
    ]
    if ctx["teacher_student"]:
        parts += [
            "<h3>Teacher against student</h3>",
            f'<p class="muted">{e(_TS_NOTE)}</p>',
            _html_table(ctx["teacher_student"], "teacher-student"),
        ]
    if not ctx["alpha_tables"]:
        parts.append(f"<p>{e(_NO_ALPHA)}</p>")
    for title, rows in ctx["alpha_tables"]:
        parts += [f"<h3>{e(title)}</h3>", _html_table(rows, "alpha-table")]
    parts += [
        "</section>",
        '<section id="paired"><h2>Paired differences against the student alone</h2>',
        f'<p class="muted">{e(_PAIRED_NOTE)}</p>',
    ]
    for metric, rows in ctx["paired"]:
        parts += [f"<h3>{e(metric)}</h3>", _html_table(rows, "paired", data_metric=metric)]
    parts += ['</section><section id="figures"><h2>Figures</h2>']
    if not ctx["figures"]:
        parts.append("<p>No figures: the runs carry no α values, costs, confusion matrices or histories.</p>")
    for f in ctx["figures"]:
        parts.append(
            f'<figure><img class="plot" alt="{e(f.alt)}" src="{_data_uri(f.png)}">'
            f"<figcaption>{e(f.caption)}</figcaption></figure>"
        )
    parts += [
        "</section>",
        '<section id="results"><h2>All runs</h2>',
        _html_table(ctx["compact"], "results"),
        "</section>",
    ]
    if ctx["failed"]:
        items = "".join(
            f"<li><code>{e(str(r.get('run_id')))}</code> ({e(_failed_what(r))}): "
            f"{e(str(r.get('error') or 'no message'))}</li>"
            for r in ctx["failed"]
        )
        parts.append(f'<section id="failed"><h2>Failed runs</h2><ul class="failed">{items}</ul></section>')
    parts.append("</body></html>\n")
    return "\n".join(parts)


def _md_text(text: str) -> str:
    out = text.replace("\\", "\\\\")
    for ch in "*`<>[]#|":
        out = out.replace(ch, "\\" + ch)
    return out


def _render_md(ctx: dict[str, Any], out_dir: Path) -> str:
    lines = [
        f"# {_md_text(ctx['title'])}",
        "",
        f"Source folder: `{ctx['source']}`. Tables as files: "
        + ", ".join(f"[{n}]({n})" for n in ctx["table_files"])
        + ".",
        "",
        "## Verdict",
        "",
        _md_text(ctx["verdict"]),
        "",
        "## What was run",
        "",
        _kv_md(ctx["summary"]),
        "### Objectives",
        "",
        markdown_table(ctx["objectives"]),
    ]
    if ctx["sweep"]:
        lines += [f"### Sweep configuration ({SWEEP_FILE})", "", _kv_md(ctx["sweep"])]
    if ctx["run_machines"]:
        lines += ["### Machines that ran the runs", "", _kv_md(ctx["run_machines"])]
    lines += [
        "### Machine (where this report was made)",
        "",
        _kv_md(ctx["machine"]),
        "## Mean ± sd over seeds",
        "",
        _md_text(_AGG_NOTE),
        "",
        markdown_table(ctx["aggregate"]) or "No rows.",
        "",
        "## The thesis tables",
        "",
    ]
    if ctx["teacher_student"]:
        lines += ["### Teacher against student", "", _md_text(_TS_NOTE), "", markdown_table(ctx["teacher_student"])]
    if not ctx["alpha_tables"]:
        lines += [_md_text(_NO_ALPHA), ""]
    for title, rows in ctx["alpha_tables"]:
        lines += [f"### {_md_text(title)}", "", markdown_table(rows)]
    lines += [
        "## Paired differences against the student alone",
        "",
        _PAIRED_NOTE,
        "",
    ]
    for metric, rows in ctx["paired"]:
        lines += [f"### {metric}", "", markdown_table(rows) or "No distilled runs to compare.", ""]
    lines += ["## Figures", ""]
    if not ctx["figures"]:
        lines.append("No figures: the runs carry no α values, costs, confusion matrices or histories.")
    for f in ctx["figures"]:
        rel = f.png.relative_to(out_dir).as_posix()
        alt = f.alt.replace("[", "(").replace("]", ")")
        lines += [f"![{alt}]({rel})", "", f"*{_md_text(f.caption)}*", ""]
    lines += ["## All runs", "", markdown_table(ctx["compact"])]
    if ctx["failed"]:
        lines += ["## Failed runs", ""]
        lines += [
            f"- `{r.get('run_id')}` ({_md_text(_failed_what(r))}): {_md_text(str(r.get('error') or 'no message'))}"
            for r in ctx["failed"]
        ]
    return "\n".join(lines).rstrip() + "\n"


# ---------------------------------------------------------------- entry point


def write_report(directory: str | Path, out_dir: str | Path | None = None) -> tuple[Path, Path]:
    """Build the report of a run or sweep folder: `report.html` (self-contained) and
    `report.md` (+ `figures/*.png|svg`, `table.csv|json`, `aggregate.csv`, `paired.csv`) in
    `out_dir` (default `<directory>/report`). Returns (html_path, md_path)."""
    src = Path(directory)
    results = collect(src)
    folder = src.parent if src.is_file() else src
    sweep = _read_sweep(folder)
    rows = tidy_rows(results)
    agg = aggregate(rows)
    paired_by_metric = [(m, paired_difference(rows, metric=m)) for m in PAIRED_METRICS]
    out = Path(out_dir) if out_dir is not None else folder / "report"
    out.mkdir(parents=True, exist_ok=True)
    summary = _runs_summary(results, rows)
    pending = _pending_points(folder, sweep)
    if pending:
        more = ", …" if len(pending) > 10 else ""
        summary.append(("not finished (no result yet)", f"{len(pending)}: {', '.join(pending[:10])}{more}"))
        logger.warning(
            f"{len(pending)} of the sweep's points have no result yet, so the report covers the others "
            f"(a shard or run has not finished; re-run it to fill them in): {', '.join(pending)}"
        )

    write_csv(rows, out / "table.csv")
    write_rows_json(rows, out / "table.json")
    write_csv(agg, out / "aggregate.csv")
    write_csv(paired_by_metric[0][1] + paired_by_metric[1][1], out / "paired.csv")
    alpha_long, ts_long = alpha_table(rows), teacher_student_table(rows)
    table_files = ["table.csv", "table.json", "aggregate.csv", "paired.csv"]
    if ts_long:
        write_csv(ts_long, out / "teacher_student.csv")
        table_files.append("teacher_student.csv")
    if alpha_long:
        write_csv(alpha_long, out / "alpha_table.csv")
        table_files.append("alpha_table.csv")
    figures = _make_figures(results, rows, out / "figures")

    ctx = {
        "title": f"geodistill report: {folder.resolve().name}",
        "source": str(folder),
        "table_files": table_files,
        "teacher_student": _teacher_student_display(ts_long),
        "alpha_tables": _alpha_display(alpha_long, rows),
        "verdict": verdict(paired_by_metric[0][1]),
        "summary": summary,
        "objectives": _objectives(rows),
        "sweep": _flatten(sweep) if sweep else None,
        "machine": machine_info(),
        "run_machines": run_machines(results),
        "aggregate": agg,
        "paired": [(m, _paired_display(p)) for m, p in paired_by_metric],
        "figures": figures,
        "compact": [{c: r.get(c) for c in COMPACT_COLUMNS} for r in sorted(rows, key=_run_order)],
        "failed": [r for r in rows if r.get("status", "ok") != "ok"],
    }
    html_path = atomic_write_text(out / "report.html", _render_html(ctx))
    md_path = atomic_write_text(out / "report.md", _render_md(ctx, out))
    return html_path, md_path
