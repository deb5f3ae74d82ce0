"""A frontier in words, as a report section (HTML and Markdown) and for the terminal: the table,
the Pareto sets, the pick and the verdict."""

from __future__ import annotations

import math
from pathlib import Path
from typing import TYPE_CHECKING

from geodistill.analysis.format import format_points, markdown_table
from geodistill.core.atomic import write_text
from geodistill.report import html, markdown
from geodistill.report.build import sections
from geodistill.report.sections import Figure, Report, Section, Table, Text
from geodistill.results.files import collect

if TYPE_CHECKING:
    from geodistill.frontier.pareto import Frontier
    from geodistill.frontier.spec import FrontierSpec

NOT_MUCH = 0.01  # a teacher this close to a student alone (accuracy, a fraction) has little to teach it


def _pct(x: float) -> str:
    return "–" if x is None or (isinstance(x, float) and math.isnan(x)) else f"{100 * x:.2f}"


def _pm(mean: float, sd: float) -> str:
    return _pct(mean) + ("" if sd is None or math.isnan(sd) else f" ± {100 * sd:.2f}")


def _ci(c) -> str:
    if math.isnan(c.gain_ci_low):
        return "–"
    return f"{format_points(100 * c.gain_ci_low)} to {format_points(100 * c.gain_ci_high)}"


def verdict(f: Frontier, spec: FrontierSpec) -> str:
    """The pick against the best student alone under the same budget, how many students
    distillation clearly helps, and which students the teacher is not clearly better than."""
    parts = []
    clear = [c.student for c in f.candidates if c.n_seeds > 1 and c.gain_ci_low > 0]
    parts.append(
        f"Distillation beats the same student alone with a 95% interval above 0 for {len(clear)} of "
        f"{len(f.candidates)} students" + (f" ({', '.join(clear)})." if clear else ".")
    )
    if f.pick is not None:
        parts.append(_pick_sentence(f, spec))
    close = [c.student for c in f.candidates if f.teacher_acc - c.alone_mean < NOT_MUCH]
    if close:
        parts.append(
            f"The teacher ({_pct(f.teacher_acc)}%) is not clearly better than {', '.join(close)} alone "
            f"(less than {100 * NOT_MUCH:g} point ahead): it has little to teach them; a stronger teacher is "
            "needed there."
        )
    return " ".join(parts)


def _pick_sentence(f: Frontier, spec: FrontierSpec) -> str:
    limits = [f"{spec.max_latency_ms:g} ms int8 latency" if spec.max_latency_ms else ""]
    limits.append(f"{spec.max_size_kb:g} KB" if spec.max_size_kb else "")
    budget = " and ".join(b for b in limits if b)
    p, a = f.pick, f.best_alone
    text = (
        f"{f'Under {budget} here' if budget else 'Over all candidates'}, the best student is {p.student} distilled "
        f"by {p.method}: {_pm(p.distilled_mean, p.distilled_std)}% test accuracy at {p.int8_latency_ms:.3f} ms, "
        f"{100 * (f.teacher_acc - p.distilled_mean):.2f} points below the teacher ({_pct(f.teacher_acc)}%)"
    )
    if a is not None:
        gain = format_points(100 * (p.distilled_mean - a.alone_mean))
        text += (
            f"; the best student alone under the same budget, {a.student}, reaches {_pm(a.alone_mean, a.alone_std)}%"
        )
        text += f" ({gain} points)"
    return text + "."


COLUMNS_NOTE = (
    "Fastest first. Latency: int8 / fp32 ONNX Runtime at batch 1 on this machine, {threads} thread(s), median. "
    "Accuracy: test split, mean ± sd over seeds, each seed its own random split. gain: distilled − alone, paired "
    "by seed, with its 95% interval; converged: compared runs that met the convergence rule."
)


def frontier_rows(f: Frontier) -> list[dict[str, str]]:
    """The frontier table as display rows, fastest student first."""
    return [
        {
            "student": c.student,
            "params": f"{c.params:,}",
            "MFLOPs": f"{c.flops / 1e6:.1f}",
            "int8 KB": f"{c.size_kb:.0f}",
            "int8 ms": f"{c.int8_latency_ms:.3f}",
            "fp32 ms": f"{c.fp32_latency_ms:.3f}",
            "alone %": _pm(c.alone_mean, c.alone_std),
            "distilled %": _pm(c.distilled_mean, c.distilled_std),
            "method": c.method,
            "gain (pts)": format_points(100 * c.gain_mean),
            "95% CI (pts)": _ci(c),
            "seeds": str(c.n_seeds),
            "converged": f"{c.converged_runs}/{c.total_runs}",
        }
        for c in sorted(f.candidates, key=lambda c: c.int8_latency_ms)
    ]


def facts(f: Frontier, spec: FrontierSpec) -> list[str]:
    """The lines under the table: the notes, the teacher, the Pareto sets, the exported pick."""
    lines = [
        COLUMNS_NOTE.format(threads=spec.latency_threads),
        f"Teacher: {_pct(f.teacher_acc)}% test accuracy (mean over the splits).",
        f"Pareto set alone: {', '.join(f.pareto_alone) or '–'}; distilled: {', '.join(f.pareto_distilled) or '–'}.",
    ]
    return lines + ([f"Exported the pick: {f.exported}"] if f.exported else [])


def frontier_section(f: Frontier, spec: FrontierSpec, png: Path | None) -> Section:
    """The frontier as a report section: the verdict, the table, the facts, the figure."""
    blocks: list = [Text(f.verdict, "verdict"), Table(frontier_rows(f), "frontier")]
    blocks += [Text(line, "note") for line in facts(f, spec)]
    if png is not None:
        blocks.append(
            Figure(png, "accuracy against int8 latency", "Test accuracy against int8 latency, alone and distilled.")
        )
    return Section("frontier", "Accuracy against latency", blocks)


def frontier_text(f: Frontier, spec: FrontierSpec) -> str:
    """The frontier for the terminal: the table, the facts and the verdict."""
    return "\n".join([markdown_table(frontier_rows(f)), *facts(f, spec), "", f.verdict]) + "\n"


KEEP = ("what-was-run", "aggregate", "paired", "results", "failed")  # the run-level sections under the frontier


def write_frontier_report(f: Frontier, spec: FrontierSpec, out: Path, png: Path | None) -> tuple[Path, Path]:
    """``frontier.html`` and ``frontier.md``: the frontier section, then every run's sections."""
    runs = [s for s in sections(collect(out), None, [], []) if s.key in KEEP]
    doc = Report(
        f"geodistill frontier: {out.resolve().name}",
        str(out),
        ["frontier.json"],
        [frontier_section(f, spec, png), *runs],
    )
    return write_text(out / "frontier.html", html.render(doc)), write_text(
        out / "frontier.md", markdown.render(doc, out)
    )
