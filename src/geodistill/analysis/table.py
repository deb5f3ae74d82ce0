"""Results tables: runs grouped by setting, mean ± sd over seeds, and the thesis's two tables.

A `Group` is the runs of one role and `results.Setting` (all seeds); for each metric m,

    m_mean = (1/n) Σ x_i          m_std = sqrt( Σ (x_i - m_mean)² / (n - 1) )   (sample std)

and `m_std = nan` when n = 1 (shown as '–'). Cells are formatted by `analysis.format`.
"""

from __future__ import annotations

import math
import statistics
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass, field
from typing import Any

from geodistill.analysis.format import is_number, sort_key
from geodistill.core.errors import GeodistillError
from geodistill.losses import get_term, loss_terms
from geodistill.results.result import COST_FIELDS, QUALITY_METRICS, RunResult, Setting, is_baseline

AGGREGATE_METRICS = ("accuracy", "f1_macro")
SETTING_COLUMNS = ("dataset", "model", "objective_name", "alpha", "beta", "T", "method", "size", "epochs", "precision")


def setting_cells(s: Setting) -> dict[str, Any]:
    """A setting as table cells (the objective under its results.json name)."""
    values = (s.dataset, s.model, s.objective, s.alpha, s.beta, s.T, s.method, s.size, s.epochs, s.precision)
    return dict(zip(SETTING_COLUMNS, values))


@dataclass
class Group:
    """The finished runs (``runs``) and the count of failed ones of one role and setting."""

    role: str
    setting: Setting
    runs: list[RunResult] = field(default_factory=list)
    n_failed: int = 0

    @property
    def n(self) -> int:
        return len(self.runs)

    @property
    def is_baseline(self) -> bool:
        return bool(self.runs) and is_baseline(self.runs[0])

    def values(self, metric: str) -> list[float]:
        """The metric of every run that has a finite value of it."""
        return [v for r in self.runs if (v := r.value(metric)) is not None and math.isfinite(v)]

    def mean(self, metric: str) -> float:
        vs = self.values(metric)
        return statistics.fmean(vs) if vs else math.nan

    def std(self, metric: str) -> float:
        vs = self.values(metric)
        return statistics.stdev(vs) if len(vs) > 1 else math.nan

    @property
    def converged(self) -> str | None:
        """'2/3': runs that converged of those that record it (`converged_cell`)."""
        return converged_cell([r.converged for r in self.runs])

    def flat(self, metrics: Sequence[str] = AGGREGATE_METRICS) -> dict[str, Any]:
        """One table row: the setting, n, n_failed, ``<m>_mean`` and ``<m>_std``, converged."""
        row: dict[str, Any] = {**setting_cells(self.setting), "n": self.n, "n_failed": self.n_failed}
        for m in metrics:
            row[f"{m}_mean"], row[f"{m}_std"] = self.mean(m), self.std(m)
        row["converged"] = self.converged
        return row


def by_setting(r: RunResult) -> tuple[str, Setting]:
    """The default grouping key: role and setting."""
    return r.role, r.setting


def aggregate(
    results: Iterable[RunResult], key: Callable[[RunResult], tuple[str, Setting]] = by_setting
) -> list[Group]:
    """The runs grouped by ``key`` (role and setting), finished runs in ``runs``, failed ones
    counted; sorted by dataset, model, size, setting."""
    groups: dict[tuple[str, Setting], Group] = {}
    for r in results:
        role, s = key(r)
        g = groups.setdefault((role, s), Group(role, s))
        if r.ok:
            g.runs.append(r)
        else:
            g.n_failed += 1
    order = lambda k: tuple(sort_key(v) for v in (*setting_cells(k[1]).values(), k[0]))  # noqa: E731
    return [groups[k] for k in sorted(groups, key=order)]


def converged_cell(flags: Sequence[bool | None]) -> str | None:
    """'2/3': runs that converged of those that record it, '(1 unknown)' added for runs without a
    record (old results.json); None when none records it."""
    known = [f for f in flags if isinstance(f, bool)]
    if not known:
        return None
    unknown = len(flags) - len(known)
    return f"{sum(known)}/{len(known)}" + (f" ({unknown} unknown)" if unknown else "")


def run_rows(results: Iterable[RunResult]) -> list[dict[str, Any]]:
    """One flat row per run (`RunResult.flat`), every per-class F1 column in every row."""
    rows = [r.flat() for r in results]
    classes = list(dict.fromkeys(k for row in rows for k in row if k.startswith("f1[")))
    for row in rows:
        for c in classes:
            row.setdefault(c, None)
    return rows


# ---------------------------------------------------------------- the thesis's tables

ALPHA_FAMILY = ("dataset", "model", "objective", "T")


def has_nuclear(objective: str | None, beta: float | None, T: float | None) -> bool:
    """Whether an objective (preset or spec) at β and T and a generic α carries the nuclear-norm
    term β·‖W₁‖* (a term on the first-layer weight) with a nonzero weight (β None: β = α)."""
    try:
        terms = loss_terms(str(objective or ""), beta=beta, T=4.0 if T is None else T)
    except GeodistillError:
        return False
    return any(t.active and get_term(t.name).needs_first_weight for t in terms)


def _family(s: Setting) -> tuple:
    return tuple(getattr(s, k) for k in ALPHA_FAMILY)


def alpha_groups(results: Iterable[RunResult]) -> list[Group]:
    """The thesis's α table in groups: a *family* is one (dataset, student model, objective, T)
    distilled at two or more α values; one group per (family, β, α), sorted by family, β, α."""
    swept = [r for r in results if r.role != "teacher" and not is_baseline(r) and r.alpha is not None]
    alphas: dict[tuple, set] = {}
    for r in swept:
        alphas.setdefault(_family(r.setting), set()).add(r.alpha)
    kept = [r for r in swept if len(alphas[_family(r.setting)]) >= 2]
    groups = aggregate(kept)
    return sorted(
        groups, key=lambda g: (*map(sort_key, _family(g.setting)), sort_key(g.setting.beta), sort_key(g.setting.alpha))
    )


def alpha_table(results: Iterable[RunResult]) -> list[dict[str, Any]]:
    """`alpha_groups` as CSV rows: family, β, α, n, n_failed, accuracy and macro F1 mean and sd,
    and ``nuclear`` (`has_nuclear`)."""
    out = []
    for g in alpha_groups(results):
        s = g.setting
        row = {
            "dataset": s.dataset,
            "model": s.model,
            "objective_name": s.objective,
            "T": s.T,
            "beta": s.beta,
            "alpha": s.alpha,
            **{k: v for k, v in g.flat().items() if k not in SETTING_COLUMNS},
        }
        row["nuclear"] = has_nuclear(s.objective, s.beta, s.T)
        out.append(row)
    return out


def cost_ratios(ref: Group | None, g: Group) -> dict[str, float | None]:
    """The reference's (the teacher's) mean cost over the group's: ``params_ratio``,
    ``flops_ratio``, ``speedup`` (reference latency / latency); None where a value is missing."""
    out: dict[str, float | None] = {}
    for key, f in (("params_ratio", "params"), ("flops_ratio", "flops"), ("speedup", "latency_ms")):
        num, den = (ref.mean(f) if ref else math.nan), g.mean(f)
        out[key] = num / den if is_number(num) and is_number(den) and den > 0 else None
    return out


def teacher_student_table(results: Iterable[RunResult]) -> list[dict[str, Any]]:
    """Teacher against student, per dataset: each teacher, the student alone, and the distilled
    setting with the highest mean accuracy. Each row: ``who``, the setting, n, mean and sd over
    seeds of accuracy and macro precision/recall/F1, the mean cost, the best teacher's cost over
    the row's (`cost_ratios`) and ``converged``."""
    groups = [g for g in aggregate(r for r in results if r.ok) if g.n]
    out: list[dict[str, Any]] = []
    for ds in sorted({g.setting.dataset for g in groups}, key=sort_key):
        mine = [g for g in groups if g.setting.dataset == ds and is_number(g.mean("accuracy"))]
        teachers = sorted((g for g in mine if g.role == "teacher"), key=lambda g: -g.mean("accuracy"))
        alone = [g for g in mine if g.is_baseline]
        distilled = sorted((g for g in mine if g.role == "distilled"), key=lambda g: -g.mean("accuracy"))[:1]
        ref = teachers[0] if teachers else None
        for who, gs in (("teacher", teachers), ("student alone", alone), ("distilled (best)", distilled)):
            for g in gs:
                row: dict[str, Any] = {"who": who, **setting_cells(g.setting), "n": g.n, "_setting": g.setting}
                for m in QUALITY_METRICS:
                    row[f"{m}_mean"], row[f"{m}_std"] = g.mean(m), g.std(m)
                for c in COST_FIELDS:
                    row[c] = g.mean(c) if is_number(g.mean(c)) else None
                row.update(cost_ratios(ref, g), converged=g.converged)
                out.append(row)
    return out
