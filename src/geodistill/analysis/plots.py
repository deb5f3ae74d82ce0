"""Figures for a sweep: α curves, confusion matrix, training curves, accuracy vs cost.

Every function saves `<out_stem>.png` and `<out_stem>.svg` (each written to a temp name and
renamed) and returns the paths written. matplotlib is imported lazily and only through its
object API (`matplotlib.figure.Figure` + the Agg canvas), so plotting never touches pyplot's
global state or the user's interactive backend.
"""

from __future__ import annotations

import math
import statistics
from collections.abc import Iterable, Sequence
from pathlib import Path
from typing import Any

from geodistill.analysis.format import is_number
from geodistill.analysis.table import has_nuclear
from geodistill.analysis.verdict import pretty_objective
from geodistill.core.atomic import atomic_file
from geodistill.core.errors import GeodistillError
from geodistill.results.result import Epoch, RunResult, is_baseline

_ANNOTATE_MAX_CLASSES = 15
_ROLE_STYLE = {  # role -> (label, marker, colour)
    "teacher": ("teacher", "s", "#d62728"),
    "student": ("student alone", "o", "#1f77b4"),
    "distilled": ("distilled student", "^", "#2ca02c"),
}


def _new_figure(width: float, height: float) -> Any:
    try:
        from matplotlib.backends.backend_agg import FigureCanvasAgg
        from matplotlib.figure import Figure
    except ImportError:
        raise GeodistillError(
            "Plots need matplotlib, which is not installed; run: pip install 'geodistill[report]'."
        ) from None
    fig = Figure(figsize=(width, height), layout="constrained")
    FigureCanvasAgg(fig)
    return fig


def _save(fig: Any, out_stem: str | Path) -> list[Path]:
    """Write fig as PNG and SVG next to `out_stem`, each atomically; return both paths."""
    stem = Path(out_stem)
    stem.parent.mkdir(parents=True, exist_ok=True)
    written = []
    for ext, kwargs in (("png", {"dpi": 110}), ("svg", {})):
        final = stem.parent / f"{stem.name}.{ext}"
        with atomic_file(final, "wb") as fh:
            fig.savefig(fh, format=ext, metadata={"Date": None} if ext == "svg" else None, **kwargs)
        written.append(final)
    return written


def _ok_rows(rows: Iterable[RunResult]) -> list[RunResult]:
    return [r for r in rows if r.ok]


def _mean_std(values: Sequence[float]) -> tuple[float, float]:
    mean = statistics.fmean(values)
    return mean, statistics.stdev(values) if len(values) > 1 else 0.0


def _label(name: Any) -> str:
    """Objective name for a legend: 'KL+cosine', 'thesis objective' (no leading article)."""
    text = pretty_objective(name)
    return text[4:] if text.startswith("the ") else text


def _is_percent(metric: str) -> bool:
    return metric == "accuracy"


def _metric_label(metric: str) -> str:
    return {
        "accuracy": "accuracy (%)",
        "f1_macro": "macro F1",
        "precision_macro": "macro precision",
        "recall_macro": "macro recall",
    }.get(metric, metric)


def plot_alpha(
    rows: Iterable[RunResult], out_stem: str | Path, metric: Sequence[str] | str = ("accuracy", "f1_macro")
) -> list[Path]:
    """α against each metric (one panel per metric), mean over seeds with ±1 sample-std error
    bars; one line per objective family with / without the nuclear norm (and per β, T when
    those vary). The student alone, if present, is drawn as a dashed level with a ±1 sd band."""
    metrics = [metric] if isinstance(metric, str) else list(metric)
    rows = _ok_rows(rows)
    swept = [r for r in rows if r.alpha is not None and r.role != "teacher" and not is_baseline(r)]
    if not swept:
        raise GeodistillError("No finished run has an α value, so there is no α plot to draw; run an α sweep first.")
    scopes = sorted({(r.dataset, r.model) for r in swept}, key=str)
    multi_scope = len(scopes) > 1
    vary_beta = len({r.beta for r in swept}) > 1
    lines = _alpha_lines(swept, vary_beta)

    all_alphas = sorted({a for by_alpha in lines.values() for a in by_alpha})
    gaps = [b - a for a, b in zip(all_alphas, all_alphas[1:])]
    dodge = 0.06 * min(gaps) if gaps else 0.0  # side-shift so the error bars do not hide each other

    fig = _new_figure(5.2 * len(metrics), 4.0)
    axes = fig.subplots(1, len(metrics), squeeze=False)[0]
    for ax, m in zip(axes, metrics):
        k = 100.0 if _is_percent(m) else 1.0
        for i, (key, by_alpha) in enumerate(sorted(lines.items(), key=lambda kv: str(kv[0]))):
            nuclear = key[3]
            alphas = sorted(by_alpha)
            stats = [
                _mean_std([k * v for r in by_alpha[a] if is_number(v := r.value(m))] or [math.nan]) for a in alphas
            ]
            shift = dodge * (i - (len(lines) - 1) / 2)
            label = _alpha_line_label(key, vary_beta, multi_scope)
            ax.errorbar(
                [a + shift for a in alphas],
                [s[0] for s in stats],
                yerr=[s[1] for s in stats],
                label=label,
                marker="s" if nuclear else "o",
                linestyle="-" if nuclear else "--",
                capsize=3,
                color=f"C{i % 10}",
            )
        for ds, model in scopes:
            _draw_student_band(ax, rows, ds, model, m, k, multi_scope)
        ax.set_xticks(all_alphas, [f"{a:g}" for a in all_alphas])
        ax.set_xlabel("α (weight of the distillation terms)")
        ax.set_ylabel(_metric_label(m))
        ax.grid(True, alpha=0.3)
    axes[0].legend(fontsize=7, loc="best")
    fig.suptitle(
        "α sweep: mean ± sd over seeds (points shifted sideways slightly to keep bars apart)"
        if dodge
        else "α sweep: mean ± sd over seeds"
    )
    return _save(fig, out_stem)


def _alpha_lines(swept: list[RunResult], vary_beta: bool) -> dict[tuple, dict[float, list[RunResult]]]:
    """The runs of each α curve by α: one curve per (dataset, model, objective, nuclear norm or
    not, and β and T where they vary)."""
    vary_t = len({r.T for r in swept}) > 1
    lines: dict[tuple, dict[float, list[RunResult]]] = {}
    for r in swept:
        nuclear = has_nuclear(r.objective_name, r.beta, r.T)
        key = (r.dataset, r.model, r.objective_name, nuclear, r.beta if vary_beta else None, r.T if vary_t else None)
        lines.setdefault(key, {}).setdefault(float(r.alpha), []).append(r)
    return lines


def _alpha_line_label(key: tuple, vary_beta: bool, multi_scope: bool) -> str:
    """The legend text of one α curve: objective, nuclear norm or not, β and T when they vary."""
    ds, model, name, nuclear, beta, t = key
    label = _label(name)
    if name == "thesis" and vary_beta:
        label += " with nuclear norm" if nuclear else " without nuclear norm"
    elif nuclear and "nuclear" not in label and name != "thesis":
        label += " + nuclear norm"
    if vary_beta:
        label += ", β=α" if beta is None else f", β={beta:g}"
    label += f", T={t:g}" if t is not None else ""
    return label + (f" [{ds}/{model}]" if multi_scope else "")


def _draw_student_band(ax: Any, rows: list[RunResult], ds: Any, model: Any, m: str, k: float, multi: bool) -> None:
    """The student alone as a dotted level at its mean with a ±1 sd band (nothing if absent)."""
    base = [
        k * v for r in rows if is_baseline(r) and (r.dataset, r.model) == (ds, model) and is_number(v := r.value(m))
    ]
    if base:
        mu, sd = _mean_std(base)
        label = "student alone" + (f" [{ds}/{model}]" if multi else "")
        ax.axhline(mu, color="0.3", linestyle=":", linewidth=1.2, label=label)
        ax.axhspan(mu - sd, mu + sd, color="0.5", alpha=0.12, linewidth=0)


def plot_confusion(
    cm: Sequence[Sequence[int]], classes: Sequence[str], out_stem: str | Path, title: str = "Confusion matrix"
) -> list[Path]:
    """Heat map of a confusion matrix (rows: true class, columns: predicted). Colour is the
    row-normalised fraction (recall per class) so rare classes stay visible; counts are
    written in the cells when there are at most 15 classes."""
    n = len(classes)
    if n == 0 or len(cm) != n or any(len(row) != n for row in cm):
        raise GeodistillError(
            f"The confusion matrix must be {n} x {n} to match its {n} class names; "
            "check 'metrics.confusion_matrix' and 'metrics.classes' in results.json."
        )
    counts = [[int(v) for v in row] for row in cm]
    frac = [[v / max(1, sum(row)) for v in row] for row in counts]
    side = min(12.0, 2.5 + 0.45 * n)
    fig = _new_figure(side + 1.2, side)
    ax = fig.subplots()
    im = ax.imshow(frac, cmap="Blues", vmin=0.0, vmax=1.0)
    fig.colorbar(im, ax=ax, shrink=0.8, label="fraction of the true class")
    ax.set_xticks(range(n), [str(c) for c in classes], rotation=60, ha="right", fontsize=8)
    ax.set_yticks(range(n), [str(c) for c in classes], fontsize=8)
    ax.set_xlabel("predicted")
    ax.set_ylabel("true")
    ax.set_title(title)
    if n <= _ANNOTATE_MAX_CLASSES:
        for i in range(n):
            for j in range(n):
                ax.text(
                    j,
                    i,
                    str(counts[i][j]),
                    ha="center",
                    va="center",
                    fontsize=7,
                    color="white" if frac[i][j] > 0.5 else "black",
                )
    return _save(fig, out_stem)


def plot_curves(history: Sequence[Epoch], out_stem: str | Path, title: str = "Training curves") -> list[Path]:
    """Loss and accuracy per epoch, train vs validation (two panels); keys absent from the
    history (e.g. no validation split) are left out."""
    if not history:
        raise GeodistillError("The run has an empty 'history', so there are no training curves to draw.")
    fig = _new_figure(10.0, 3.8)
    from matplotlib.ticker import MaxNLocator

    ax_loss, ax_acc = fig.subplots(1, 2)
    for ax, what, k in ((ax_loss, "loss", 1.0), (ax_acc, "acc", 100.0)):
        for split, style in (("train", "-"), ("val", "--")):
            pts = [(h.epoch, getattr(h, f"{split}_{what}", None)) for h in history]
            pts = [(e, k * float(v)) for e, v in pts if is_number(v)]
            if pts:
                ax.plot(
                    [p[0] for p in pts],
                    [p[1] for p in pts],
                    style,
                    marker=".",
                    label="train" if split == "train" else "validation",
                )
        ax.set_xlabel("epoch")
        ax.xaxis.set_major_locator(MaxNLocator(integer=True))
        ax.set_ylabel("loss" if what == "loss" else "accuracy (%)")
        ax.grid(True, alpha=0.3)
        if ax.lines:
            ax.legend(fontsize=8)
    fig.suptitle(title)
    return _save(fig, out_stem)


def _log_ticks(ax: Any) -> None:
    """A log x axis labelled at 1, 2 and 5 of each decade only: matplotlib's own minor labels
    (2, 3, 4, 6 x 10^k) overlap on a panel that spans about one decade."""
    from matplotlib.ticker import LogFormatterSciNotation, LogLocator, NullFormatter

    ax.set_xscale("log")
    ax.xaxis.set_major_locator(LogLocator(base=10, subs=(1.0, 2.0, 5.0)))
    ax.xaxis.set_major_formatter(LogFormatterSciNotation(labelOnlyBase=False))
    ax.xaxis.set_minor_formatter(NullFormatter())


def plot_compression(rows_with_cost: Iterable[RunResult], out_stem: str | Path) -> list[Path]:
    """Accuracy against parameters, FLOPs and latency (three panels, log x) for teachers,
    students alone and distilled students: one point per (role, model, setting), mean ± sd
    of accuracy over seeds."""
    rows = [r for r in _ok_rows(rows_with_cost) if is_number(r.value("accuracy"))]
    groups: dict[tuple, list[RunResult]] = {}
    for r in rows:
        role = r.role if r.role in _ROLE_STYLE else "distilled"
        groups.setdefault((role, r.setting), []).append(r)
    axes_spec = (("params", "parameters"), ("flops", "FLOPs per image"), ("latency_ms", "latency (ms / image)"))
    if not any(is_number(v := r.value(f)) and v > 0 for r in rows for f, _ in axes_spec):
        raise GeodistillError(
            "No finished run reports its cost (params, flops, latency_ms), so there is no compression plot to draw."
        )
    fig = _new_figure(13.0, 4.0)
    axes = fig.subplots(1, 3, sharey=True)
    for ax, (field, xlabel) in zip(axes, axes_spec):
        seen_roles = set()
        for key, members in sorted(groups.items(), key=lambda kv: str(kv[0])):
            xs = [v for r in members if is_number(v := r.value(field)) and v > 0]
            if not xs:
                continue
            role, model = key[0], key[1].model
            label, marker, colour = _ROLE_STYLE[role]
            mu, sd = _mean_std([100.0 * r.value("accuracy") for r in members])
            ax.errorbar(
                [statistics.fmean(xs)],
                [mu],
                yerr=[sd],
                marker=marker,
                color=colour,
                linestyle="none",
                capsize=3,
                alpha=0.85,
                zorder=2 if role == "distilled" else 3,
                label=label if role not in seen_roles else None,
            )
            seen_roles.add(role)
            if role != "distilled":
                ax.annotate(
                    str(model), (statistics.fmean(xs), mu), textcoords="offset points", xytext=(4, 4), fontsize=7
                )
        if ax.lines or ax.collections:
            _log_ticks(ax)
        else:
            ax.text(0.5, 0.5, "no data", ha="center", va="center", transform=ax.transAxes)
        ax.set_xlabel(xlabel + " (log)")
        ax.grid(True, alpha=0.3, which="both")
    axes[0].set_ylabel("accuracy (%)")
    handles = [h for ax in axes for h in ax.get_legend_handles_labels()[0]]
    if handles:
        axes[0].legend(fontsize=8, loc="best")
    fig.suptitle("Accuracy against model cost")
    return _save(fig, out_stem)


def plot_frontier(points: Sequence[Any], teacher_acc: float, out_stem: str | Path) -> list[Path]:
    """Accuracy against int8 latency (log x), one curve for the students alone and one distilled,
    mean ± sd over seeds, each student labelled, the teacher's accuracy as a dashed level.
    ``points``: objects with ``student``, ``int8_latency_ms``, ``alone_mean``/``_std`` and
    ``distilled_mean``/``_std`` (fractions)."""
    pts = sorted(points, key=lambda p: p.int8_latency_ms)
    if not pts:
        raise GeodistillError("The frontier has no student with results, so there is no figure to draw.")
    fig = _new_figure(7.0, 4.5)
    ax = fig.subplots()
    xs = [p.int8_latency_ms for p in pts]
    for which, marker, colour in (("alone", "o", "#1f77b4"), ("distilled", "^", "#2ca02c")):
        ys = [100 * getattr(p, f"{which}_mean") for p in pts]
        err = [0.0 if math.isnan(sd := getattr(p, f"{which}_std")) else 100 * sd for p in pts]
        label = "student alone" if which == "alone" else "distilled student"
        ax.errorbar(xs, ys, yerr=err, marker=marker, color=colour, capsize=3, label=label)
    for p in pts:
        ax.annotate(p.student, (p.int8_latency_ms, 100 * p.distilled_mean), textcoords="offset points",
                    xytext=(4, 6), fontsize=7)  # fmt: skip
    if is_number(teacher_acc):
        ax.axhline(100 * teacher_acc, color="#d62728", linestyle="--", linewidth=1.2, label="teacher")
    ax.set_xscale("log")
    ax.set_xlabel("int8 ONNX latency at batch 1 (ms, log)")
    ax.set_ylabel("test accuracy (%)")
    ax.grid(True, alpha=0.3, which="both")
    ax.legend(fontsize=8, loc="lower right")
    fig.suptitle("Accuracy against latency: students alone and distilled (mean ± sd over seeds)")
    return _save(fig, out_stem)
