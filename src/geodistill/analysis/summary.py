"""A recipe's comparison: one line per labelled setting (teacher first), the paired gain over
the student alone, the teacher's cost over each line's, and the verdict; as `Summary`, written
to and read back from ``summary.json``, and as a Markdown table."""

from __future__ import annotations

import dataclasses
import math
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

from geodistill.analysis.format import format_mean_std, format_points
from geodistill.analysis.stats import paired_difference
from geodistill.analysis.table import aggregate, cost_ratios
from geodistill.analysis.verdict import verdict
from geodistill.engine.convergence import BUDGET_GAIN, RULE, BudgetCheck
from geodistill.results.result import COST_FIELDS, RunResult


@dataclass
class Line:
    """One line of the comparison: a label's setting over its seeds."""

    label: str
    model: str | None
    n: int
    accuracy_mean: float
    accuracy_std: float
    f1_macro_mean: float
    f1_macro_std: float
    params: float | None = None
    flops: float | None = None
    size_bytes: float | None = None
    latency_ms: float | None = None
    converged: str | None = None
    mean_diff: float | None = None
    sd_diff: float | None = None
    wins: int | None = None
    pairs: int | None = None
    params_ratio: float | None = None
    flops_ratio: float | None = None
    speedup: float | None = None


@dataclass
class Summary:
    """A recipe's summary: its lines, the verdict, the budget check, and what was run."""

    lines: list[Line]
    verdict: str
    budget_check: BudgetCheck | None = None
    recipe: str = ""
    about: str = ""
    seeds: list[int] = field(default_factory=list)
    teacher_ckpt: str | list[str] | None = None
    timings_s: dict[str, float] = field(default_factory=dict)
    wall_time_s: float = 0.0

    def to_dict(self) -> dict[str, Any]:
        """The JSON form (summary.json)."""
        d = dataclasses.asdict(self)
        d["table"] = d.pop("lines")
        return d

    @classmethod
    def from_dict(cls, d: dict[str, Any]) -> Summary:
        """From summary.json."""
        d = dict(d)
        lines = [Line(**line) for line in d.pop("table", [])]
        check = d.pop("budget_check", None)
        known = {f.name for f in dataclasses.fields(cls)}
        return cls(lines=lines, budget_check=BudgetCheck(**check) if check else None,
                   **{k: v for k, v in d.items() if k in known})  # fmt: skip


def summarise(labelled: Sequence[tuple[str, RunResult]], budget: BudgetCheck | None = None) -> Summary:
    """The comparison of labelled runs (teachers first, then students in the recipe's order):
    per label mean ± sd over seeds of accuracy and macro-F1, mean cost, runs converged, the
    paired gain over the student alone (mean, sd, wins of pairs), the teacher's cost over the
    line's (`analysis.table.cost_ratios`), and the verdict (`analysis.stats.verdict`)."""
    label_of = {id(r): label for label, r in labelled}
    order = list(dict.fromkeys(label for label, _ in labelled))
    groups = aggregate([r for _, r in labelled], key=lambda r: (label_of[id(r)], r.setting))
    groups = [g for g in groups if g.n]
    groups.sort(key=lambda g: order.index(g.role))
    paired = paired_difference([r for _, r in labelled if r.role != "teacher"])
    gains = {p.setting: p for p in paired}
    ref = groups[0] if groups and groups[0].runs[0].role == "teacher" else None
    lines = []
    for g in groups:
        line = Line(g.role, g.setting.model, g.n, g.mean("accuracy"), g.std("accuracy"), g.mean("f1_macro"),
                    g.std("f1_macro"), **{c: g.mean(c) for c in COST_FIELDS}, converged=g.converged)  # fmt: skip
        if (p := gains.get(g.setting)) is not None and p.n and g.runs[0].role != "teacher":
            line.mean_diff, line.sd_diff, line.wins, line.pairs = p.mean_diff, p.sd_diff, p.wins, p.n
        if ref is not None:
            line.params_ratio, line.flops_ratio, line.speedup = cost_ratios(ref, g).values()
        lines.append(line)
    return Summary(lines, verdict(paired, budget), budget)


def budget_line(b: BudgetCheck) -> str:
    """The budget check in one sentence, with what one seed can tell (on AID the best validation
    accuracy of one setting varies by ~0.9 points between seeds, more than the rule's margin)."""
    state = (
        f"the budget is converged (a gain under {BUDGET_GAIN} points)"
        if b.converged
        else f"NOT converged (a gain of {BUDGET_GAIN} points or more): raise train.auto_images (or train.epochs)"
    )
    return (
        f"Budget check: the student alone trained {b.epochs_2x} instead of {b.epochs} epochs reached "
        f"{100 * b.val_2x:.2f}% instead of {100 * b.val:.2f}% validation accuracy ({b.gain_pts:+.2f} points): "
        f"{state}. One seed screens out a budget far from converged; a small gain "
        "on one seed is within seed noise, so a claim needs the check on several seeds."
    )


def _ratio(x: float | None) -> str:
    return "–" if x is None else f"{x:.1f}"


def _finite(x: Any) -> bool:
    return isinstance(x, (int, float)) and math.isfinite(x) and x != 0


def format_summary(s: Summary) -> str:
    """The comparison table as Markdown (accuracy and F1 in % with 2 decimals, mean ± std over
    seeds where there are several; converged: runs that met the convergence rule of those that
    record it, '–' for none), the rule, the verdict, the budget check."""
    head = (
        "| model / objective | n | converged | accuracy % | macro-F1 % | gain vs alone (pts) | wins | params | MFLOPs "
        "| size KB | latency ms | × params | × FLOPs | × latency |"
    )
    out = [head, "|---|" + "---:|" * 13]
    for t in s.lines:
        gain = format_points(100 * t.mean_diff, 100 * t.sd_diff) if t.mean_diff is not None else "–"
        wins = f"{t.wins}/{t.pairs}" if t.wins is not None else "–"
        lat = f"{t.latency_ms:.2f}" if _finite(t.latency_ms) else "–"
        out.append(
            f"| {t.label} ({t.model}) | {t.n} | {t.converged or '–'} | "
            f"{format_mean_std('accuracy', t.accuracy_mean, t.accuracy_std, unit=False)} | "
            f"{format_mean_std('f1_macro', t.f1_macro_mean, t.f1_macro_std, unit=False)} | "
            f"{gain} | {wins} | {t.params:,.0f} | "
            f"{t.flops / 1e6:.1f} | {t.size_bytes / 1024:.0f} | {lat} | {_ratio(t.params_ratio)} | "
            f"{_ratio(t.flops_ratio)} | {_ratio(t.speedup)} |"
        )
    if any(t.converged for t in s.lines):
        out += ["", f"Converged: {RULE}."]
    if s.verdict:
        out += ["", s.verdict]
    if s.budget_check:
        out += ["", budget_line(s.budget_check)]
    return "\n".join(out) + "\n"
