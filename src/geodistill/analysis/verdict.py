"""The verdict in plain words: per dataset and student, the best setting judged by its 95%
interval, how many settings clearly beat the student alone, and when the comparison is not
evidence (a compared run had not converged, or the budget check failed)."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from geodistill.analysis.intervals import IMAGES
from geodistill.analysis.stats import Pairing
from geodistill.engine.convergence import BUDGET_GAIN, NOT_CONVERGED, BudgetCheck
from geodistill.losses import loss_prose
from geodistill.results.result import QUALITY_METRICS, Setting

# ---------------------------------------------------------------- verdict in words


def pretty_objective(name: str | None) -> str:
    """'kl+cos' -> 'KL+cosine', 'thesis' -> 'the thesis objective' (asked of the preset and term
    registries); 'teacher' -> 'the teacher'; unknown names unchanged."""
    return "the teacher" if name == "teacher" else loss_prose(name)


def _num(x: float) -> str:
    """A number of points for prose: one decimal, two below 0.1 in magnitude, '−' sign."""
    s = f"{x:.2f}" if 0 < abs(x) < 0.1 else f"{x:.1f}"
    if s in ("-0.0", "-0.00"):
        s = s[1:]
    return s.replace("-", "−")


def setting_label(s: Setting) -> str:
    """'KL+cosine (α=0.3, β=0.1, T=4)': the objective in words and the α/β/T the setting records,
    then its method when it has one ('KL (α=0.5, T=4) with an ensemble of 3 teachers (mean logits)')."""
    name = pretty_objective(s.objective)
    params = [f"{sym}={_param(v)}" for v, sym in ((s.alpha, "α"), (s.beta, "β"), (s.T, "T")) if v is not None]
    label = f"{name} ({', '.join(params)})" if params else name
    return f"{label} with {s.method}" if s.method else label


def _param(v: Any) -> str:
    return f"{v:g}" if isinstance(v, (int, float)) else str(v)


def _scale(metric: str) -> tuple[float, str]:
    return (100.0, "points") if metric in QUALITY_METRICS else (1.0, "")


def _seeds(n: int) -> str:
    return f"{n} seed" if n == 1 else f"{n} seeds"


def _classify(p: Pairing) -> str:
    if p.n == 0:
        return "no_baseline"
    if p.n == 1:
        return "single"
    if p.ci_low > 0:
        return "better"
    if p.ci_high < 0:
        return "worse"
    return "unclear"


def _sentence(row: Pairing, lead: str = "") -> str:
    """One sentence judging one setting; `lead` (e.g. 'the best setting, ') goes before its name."""
    k, unit = _scale(row.metric)
    unit_s = f" {unit}" if unit else ""
    who = f"{lead}{setting_label(row.setting)}," if lead else setting_label(row.setting)
    base = pretty_objective("student")
    metric = row.metric.replace("_", " ")
    kind = _classify(row)
    n = row.n
    if kind == "no_baseline":
        if row.baseline_precisions:
            return (
                f"{who} could not be compared: it trained in {row.setting.precision} and the student-alone "
                f"runs of its seeds in {', '.join(row.baseline_precisions)}, and runs of different precisions "
                "are not paired; train both in one precision (train.precision)."
            )
        return (
            f"{who} could not be compared: there is no 'student' run of the same "
            f"dataset, model and seed ({_seeds(len(row.seeds_without_baseline))} without one)."
        )
    m, sd = k * row.mean_diff, k * row.sd_diff
    lo, hi = k * row.ci_low, k * row.ci_high
    if kind == "single":
        direction = "above" if m > 0 else "below" if m < 0 else "level with"
        amount = f"{_num(abs(m))}{unit_s} " if m != 0 else ""
        return (
            f"{who} is {amount}{direction} {base} in {metric} on a single seed; with one "
            "seed there is no confidence interval, so this is one observation, not evidence."
        )
    ci = f"95% CI {_num(lo)} to {_num(hi)}" + (f" over {row.ci_over}" if row.ci_over == IMAGES else "")
    if kind == "better":
        return (
            f"{who} beats {base} in {metric} by {_num(m)} ± {_num(sd)}{unit_s} "
            f"(mean ± sd over {_seeds(n)}; {ci}), better in {row.wins}/{n} seeds."
        )
    if kind == "worse":
        return (
            f"{who} is worse than {base} in {metric} by {_num(-m)} ± {_num(sd)}{unit_s} "
            f"(mean ± sd over {_seeds(n)}; {ci}), worse in {row.losses}/{n} seeds."
        )
    return (
        f"{who} does not clearly differ from {base} in {metric}: {_num(m)} ± {_num(sd)}{unit_s} "
        f"(mean ± sd over {_seeds(n)}; the {ci} contains 0), better in {row.wins}/{n} seeds."
    )


def _capitalize(text: str) -> str:
    return text[:1].upper() + text[1:]


def verdict(diff_rows: Sequence[Pairing], budget: BudgetCheck | None = None) -> str:
    """One paragraph in plain words from `paired_difference` rows: per dataset and student
    model, the best setting (largest mean difference) judged by its 95% CI, then how many
    settings clearly beat, do not clearly differ from, or are clearly worse than the baseline;
    last, when a compared run had not converged or the ``budget`` check failed, that the comparison
    is not evidence (`convergence_note`)."""
    scopes: dict[tuple, list[Pairing]] = {}
    for r in diff_rows:
        scopes.setdefault((r.setting.dataset, r.setting.model), []).append(r)
    parts = (
        []
        if diff_rows
        else ["There is nothing to compare: no finished distilled runs besides the baseline and the teachers."]
    )
    for (ds, model), rows in scopes.items():
        prefix = f"On {ds} with the {model} student, " if len(scopes) > 1 else ""
        comparable = [r for r in rows if r.n > 0]
        if not comparable:
            parts.append(
                _capitalize(
                    f"{prefix}no setting could be compared: there is no 'student' run "
                    "(role 'student') of the same dataset, model and seed to pair with."
                )
            )
            continue
        best = max(comparable, key=lambda r: r.mean_diff)
        lead = "the best setting, " if len(rows) > 1 else ""
        parts.append(_capitalize(prefix + _sentence(best, lead)))
        if len(rows) > 1:
            parts.append(_tally(rows))
    notes = [n for n in (convergence_note(diff_rows),) if n]
    if budget is not None and not budget.converged:  # `engine.convergence.budget_check`
        lead = "The budget check also failed" if notes else "Not evidence of a converged comparison: the budget check"
        lead += "" if notes else " failed"
        notes.append(
            f"{lead}: twice the epochs gained {budget.gain_pts:+.2f} validation points (≥ {BUDGET_GAIN}); "
            "raise train.auto_images (or train.epochs)."
        )
    return " ".join([*parts, *notes])


def convergence_note(diff_rows: Sequence[Pairing]) -> str:
    """'' when every compared run that records convergence converged (runs without a record are
    unknown and not counted); else the sentence saying how many had not, and what to do."""
    flags: dict[str, bool | None] = {}
    for r in diff_rows:
        flags.update(r.converged_by_run)
    known = [f for f in flags.values() if f is not None]
    bad = known.count(False)
    if not bad:
        return ""
    return (
        f"Not evidence of a converged comparison: {bad} of {len(known)} compared runs had not converged "
        f"({NOT_CONVERGED}); train longer (train.epochs=auto)."
    )


def _tally(rows: Sequence[Pairing]) -> str:
    kinds = [_classify(r) for r in rows]
    base = pretty_objective("student")
    bits = []
    counts = {k: kinds.count(k) for k in ("better", "unclear", "worse", "single", "no_baseline")}
    phrases = {  # kind -> (singular, plural)
        "better": (f"clearly beats {base}", f"clearly beat {base}"),
        "unclear": ("does not clearly differ from it", "do not clearly differ from it"),
        "worse": ("is clearly worse", "are clearly worse"),
        "single": ("has a single seed (no interval)", "have a single seed (no interval)"),
        "no_baseline": ("has no baseline run to pair with", "have no baseline run to pair with"),
    }
    for kind, (one, many) in phrases.items():
        if counts[kind]:
            bits.append(f"{counts[kind]} {one if counts[kind] == 1 else many}")
    listed = bits[0] if len(bits) == 1 else ", ".join(bits[:-1]) + " and " + bits[-1]
    return f"Of the {len(rows)} settings tried, {listed} (a setting counts as clear when its 95% CI excludes 0)."
