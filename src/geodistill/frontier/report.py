"""A frontier in words and as Markdown: the table, the Pareto sets, the pick and the verdict."""

from __future__ import annotations

import math
from typing import TYPE_CHECKING

from geodistill.analysis.format import format_points

if TYPE_CHECKING:
    from geodistill.frontier.run import Frontier
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


def frontier_markdown(f: Frontier, spec: FrontierSpec, figure: str | None) -> str:
    """The frontier table (fastest first), the Pareto sets, the verdict, the figure."""
    head = (
        "| student | params | MFLOPs | int8 KB | int8 ms | fp32 ms | alone % | distilled % | method "
        "| gain (pts) | 95% CI (pts) | seeds | converged |"
    )
    lines = [head, "|---|" + "---:|" * 7 + "---|" + "---:|" * 4]
    for c in sorted(f.candidates, key=lambda c: c.int8_latency_ms):
        lines.append(
            f"| {c.student} | {c.params:,} | {c.flops / 1e6:.1f} | {c.size_kb:.0f} | {c.int8_latency_ms:.3f} | "
            f"{c.fp32_latency_ms:.3f} | {_pm(c.alone_mean, c.alone_std)} | {_pm(c.distilled_mean, c.distilled_std)} | "
            f"{c.method} | {format_points(100 * c.gain_mean)} | {_ci(c)} | {c.n_seeds} | "
            f"{c.converged_runs}/{c.total_runs} |"
        )
    lines += [
        "",
        f"Teacher: {_pct(f.teacher_acc)}% test accuracy (mean over the splits). Latency: int8 / fp32 ONNX Runtime, "
        f"batch 1, {spec.latency_threads} thread(s), median; accuracy: mean ± sd over seeds (each seed its own split).",
        f"Pareto set alone: {', '.join(f.pareto_alone) or '–'}; distilled: {', '.join(f.pareto_distilled) or '–'}.",
        "",
        f.verdict,
    ]
    if f.exported:
        lines += ["", f"Exported the pick: {f.exported}"]
    if figure:
        lines += ["", f"![accuracy against int8 latency]({figure})"]
    return "\n".join(lines) + "\n"
