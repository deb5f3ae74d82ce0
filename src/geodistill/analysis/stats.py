"""Paired comparison of each distillation setting with the student trained alone.

For a setting (`results.Setting`) and the student alone of its baseline setting (same data,
model, size, epochs and precision: `Setting.baseline`) and seed, d_i = x_i − base_i over the n seeds both have. Then

    mean d = (1/n) Σ d_i,   sd = sqrt(Σ (d_i − mean d)² / (n − 1)),
    95% CI = mean d ± t_{0.975, n−1} · sd / √n          (Student's t, paired design)

Pairing by seed removes the seed-to-seed variance both runs share (same split, same init
stream), so a small but consistent gain shows up with few seeds.

That interval is about *this* test split: every seed is scored on the same images, so it leaves
out how the gain would move on another sample of images. When the runs record which test images
they got right (``metrics.correct``), accuracy gets the two-way random-effects interval instead.
With D_ij = the gain on image j under seed i (n seeds, m images; −1, 0 or 1, a fraction when
several runs share a seed), c_j its mean over
seeds, and the mean squares MS_img = n Σ_j (c_j − mean d)² / (m − 1) and
MS_res = Σ_ij (D_ij − d_i − c_j + mean d)² / ((n − 1)(m − 1)), the image variance is
σ²_img = max(0, (MS_img − MS_res) / n) and

    95% CI = mean d ± t_{0.975, n−1} · sqrt(sd² / n + σ²_img / m)

(sd² / n already holds the seed × image noise; see Bouthillier et al. 2021, "Accounting for
variance in machine learning benchmarks", for why both sources matter). Keeping n − 1 degrees of
freedom where the image term has about m − 1 makes the interval conservative when that term
dominates; Satterthwaite's degrees of freedom would be nearer 95% at n = 5 but fall short at
n = 2-3, where a small seed spread by chance inflates them (simulated coverage, Gaussian seed,
image and residual effects, m = 500: n − 1 gives 95-100%, Satterthwaite 88-95%). Runs are
paired image by image only when they record the same test images (``metrics.correct_of``, a
hash of the split's indices).
"""

from __future__ import annotations

import math
import statistics
import warnings
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from typing import Any

from geodistill.analysis.format import sort_key
from geodistill.analysis.table import setting_cells
from geodistill.core.errors import GeodistillError, GeodistillWarning
from geodistill.engine.convergence import BUDGET_GAIN, NOT_CONVERGED, BudgetCheck
from geodistill.losses import loss_prose
from geodistill.results.result import COST_FIELDS, QUALITY_METRICS, RunResult, Setting, is_baseline

FRACTION_METRICS = ("accuracy", "precision_macro", "recall_macro", "f1_macro")
IMAGES = "seeds and test images"  # `ci_over` of an interval that counts the test split's sampling


# ---------------------------------------------------------------- Student's t


def t_cdf(t: float, df: int) -> float:
    """P(T ≤ t) for Student's t with an integer number of degrees of freedom `df` ≥ 1.

    Exact finite series (Abramowitz & Stegun 26.7.3–4) with θ = atan(t/√df), c = cos²θ:
    odd df:  A = (2/π)·[θ + sinθ·cosθ·(1 + (2/3)c + (2·4)/(3·5)c² + … up to c^((df−3)/2))]
             (A = 2θ/π for df = 1);
    even df: A = sinθ·(1 + (1/2)c + (1·3)/(2·4)c² + … up to c^((df−2)/2));
    P(T ≤ t) = (1 + A)/2, A being P(|T| ≤ |t|) signed like t.
    """
    if df < 1 or int(df) != df:
        raise ValueError(f"df must be a positive integer, got {df}")
    df = int(df)
    theta = math.atan(t / math.sqrt(df))
    s, c2 = math.sin(theta), math.cos(theta) ** 2
    if df % 2 == 1:
        total, term = 0.0, 1.0
        for k in range(1, (df - 1) // 2 + 1):  # terms 1, (2/3)c, (2·4)/(3·5)c², …
            total += term
            term *= c2 * (2 * k) / (2 * k + 1)
        a = (2.0 / math.pi) * (theta + s * math.cos(theta) * total) if df > 1 else 2.0 * theta / math.pi
    else:
        total, term = 0.0, 1.0
        for k in range(1, df // 2 + 1):  # terms 1, (1/2)c, (1·3)/(2·4)c², …
            total += term
            term *= c2 * (2 * k - 1) / (2 * k)
        a = s * total
    return 0.5 * (1.0 + a)


def t_quantile(p: float, df: int) -> float:
    """The t with P(T ≤ t) = p for Student's t with `df` degrees of freedom (bisection on
    `t_cdf`, to ~1e-12). E.g. t_quantile(0.975, 1) = 12.706, (0.975, 4) = 2.776."""
    if not 0.0 < p < 1.0:
        raise ValueError(f"p must be in (0, 1), got {p}")
    if p < 0.5:
        return -t_quantile(1.0 - p, df)
    if p == 0.5:
        return 0.0
    lo, hi = 0.0, 1.0
    while t_cdf(hi, df) < p:
        lo, hi = hi, hi * 2.0
    for _ in range(200):
        mid = 0.5 * (lo + hi)
        if t_cdf(mid, df) < p:
            lo = mid
        else:
            hi = mid
        if hi - lo < 1e-12 * max(1.0, hi):
            break
    return 0.5 * (lo + hi)


# ---------------------------------------------------------------- paired differences


@dataclass
class Pairing:
    """One setting paired seed by seed with the student alone (see the module docstring):
    n pairs, the means, mean_diff, sd_diff, the 95% interval (nan when n < 2) and what it is
    over, wins and losses, the paired seeds, the seeds without a baseline, the precisions the
    baselines of those seeds trained in instead (never paired), and every paired run's
    convergence flag (run id -> flag or None)."""

    setting: Setting
    objective: str | None
    metric: str
    n: int
    mean: float
    baseline_mean: float
    mean_diff: float
    sd_diff: float
    ci_low: float
    ci_high: float
    ci_over: str
    wins: int
    losses: int
    seeds: list
    seeds_without_baseline: list = field(default_factory=list)
    baseline_precisions: list[str] = field(default_factory=list)
    converged_by_run: dict[str, bool | None] = field(default_factory=dict)

    def flat(self) -> dict[str, Any]:
        """A CSV row: the setting, then the figures."""
        figures = {
            k: getattr(self, k)
            for k in (
                "objective",
                "metric",
                "n",
                "mean",
                "baseline_mean",
                "mean_diff",
                "sd_diff",
                "ci_low",
                "ci_high",
                "ci_over",
                "wins",
                "losses",
            )
        }
        return {
            **setting_cells(self.setting),
            **figures,
            "seeds": self.seeds,
            "seeds_without_baseline": self.seeds_without_baseline,
        }


def _baselines(results: Sequence[RunResult]) -> dict[tuple, list[RunResult]]:
    """The student-alone runs per (setting, seed); several for one key are averaged, with a warning."""
    base: dict[tuple, list[RunResult]] = {}
    for r in results:
        if is_baseline(r):
            base.setdefault((r.setting.baseline(), r.seed), []).append(r)
    for (s, seed), runs in base.items():
        if len(runs) > 1:
            warnings.warn(
                f"{len(runs)} student-alone runs for dataset {s.dataset}, model {s.model}, seed {seed}; "
                "their mean is used as the baseline.",
                GeodistillWarning,
                stacklevel=3,
            )
    return base


def paired_difference(results: Iterable[RunResult], metric: str = "accuracy") -> list[Pairing]:
    """Every setting other than the student alone and the teachers, paired seed by seed with the
    student alone of its baseline setting (`Setting.baseline`): one `Pairing` per setting, in the
    metric's own units. Runs of different precisions are never paired."""
    if metric not in (*QUALITY_METRICS, *COST_FIELDS):
        raise GeodistillError(
            f"'{metric}' asked of paired_difference is not a metric; use one of {', '.join(QUALITY_METRICS)}."
        )
    results = [r for r in results if r.ok and r.value(metric) is not None and not math.isnan(r.value(metric))]
    base = _baselines(results)
    groups: dict[Setting, list[RunResult]] = {}
    for r in results:
        if not is_baseline(r) and r.role != "teacher":
            groups.setdefault(r.setting, []).append(r)
    out = [_pair(s, members, base, metric) for s, members in groups.items()]
    out.sort(key=lambda p: tuple(sort_key(v) for v in setting_cells(p.setting).values()))
    return out


def _pair(s: Setting, members: list[RunResult], base: dict[tuple, list[RunResult]], metric: str) -> Pairing:
    by_seed: dict[Any, list[RunResult]] = {}
    for r in members:
        by_seed.setdefault(r.seed, []).append(r)
    pairs, missing, other, flags, gains, images = [], [], set(), {}, [], set()
    hits = lambda runs: [r.metrics.correct if r.metrics else None for r in runs]  # noqa: E731
    for seed in sorted(by_seed, key=lambda x: (str(type(x)), x)):
        b = base.get((s.baseline(), seed))
        if b is None:
            missing.append(seed)
            other |= {str(k.precision) for k, sd in base if sd == seed and k == _any_precision(s.baseline(), k)}
            continue
        pairs.append((seed, _mean(by_seed[seed], metric), _mean(b, metric)))
        flags.update({r.run_id: r.converged for r in [*by_seed[seed], *b]})
        gains.append(image_gains(hits(by_seed[seed]), hits(b)) if metric == "accuracy" else None)
        images.update(r.metrics.correct_of if r.metrics else None for r in [*by_seed[seed], *b])
    v = image_variance(gains) if len(images) == 1 else None  # every run scored on the same images
    return Pairing(
        s,
        members[0].objective,
        metric,
        **pair_stats(pairs, v),
        seeds_without_baseline=missing,
        baseline_precisions=sorted(other),
        converged_by_run=flags,
    )


def _any_precision(want: Setting, have: Setting) -> Setting:
    """``want`` with ``have``'s precision (to find baselines that differ in precision only)."""
    return Setting(**{**want.__dict__, "precision": have.precision})


def _mean(runs: Sequence[RunResult], metric: str) -> float:
    return statistics.fmean(float(r.value(metric)) for r in runs)


def image_gains(hits: Sequence[str | None], base: Sequence[str | None]) -> list[float] | None:
    """Per test image, the mean hit (1 right, 0 wrong) of the runs' ``metrics.correct`` strings
    minus the baseline runs'; None when one is missing or they differ in length."""
    vecs = [*hits, *base]
    if not all(isinstance(v, str) and v for v in vecs) or len({len(v) for v in vecs}) != 1:
        return None
    mean = lambda vs: [statistics.fmean(h) for h in zip(*([c == "1" for c in v] for v in vs))]  # noqa: E731
    return [x - b for x, b in zip(mean(hits), mean(base), strict=True)]


def image_variance(gains: Sequence[Sequence[float] | None]) -> float | None:
    """σ²_img / m of the module docstring: the variance the mean gain owes to which m test images
    were drawn, from the n × m gains D_ij (one list per seed); None when a seed lacks them, the
    seeds' lists differ in length, or n or m is below 2."""
    if len(gains) < 2 or any(g is None for g in gains) or len({len(g) for g in gains}) != 1 or len(gains[0]) < 2:
        return None
    n, m = len(gains), len(gains[0])
    d = [statistics.fmean(g) for g in gains]
    c = [statistics.fmean(col) for col in zip(*gains)]
    grand = statistics.fmean(d)
    ms_img = n * sum((cj - grand) ** 2 for cj in c) / (m - 1)
    ss_res = sum((x - d[i] - c[j] + grand) ** 2 for i, g in enumerate(gains) for j, x in enumerate(g))
    ms_res = ss_res / ((n - 1) * (m - 1))
    return max(0.0, (ms_img - ms_res) / n) / m


def pair_stats(pairs: Sequence[tuple[Any, float, float]], images: float | None = None) -> dict[str, Any]:
    """Over (seed, x, base) pairs, d = x − base: n, the means, mean_diff, sd_diff (n − 1),
    the 95% t interval ci_low/ci_high (nan when n < 2; widened by ``images``, the test split's
    share of the variance, when known: `image_variance`), ci_over ('seeds' or 'seeds and test
    images'), wins, losses and the paired seeds."""
    d = [x - b for _, x, b in pairs]
    n = len(d)
    mean_d = statistics.fmean(d) if n else math.nan
    sd = statistics.stdev(d) if n > 1 else math.nan
    se = math.sqrt(sd**2 / n + (images or 0.0)) if n > 1 else math.nan
    half = t_quantile(0.975, n - 1) * se if n > 1 else math.nan
    return {
        "n": n,
        "mean": statistics.fmean([x for _, x, _ in pairs]) if n else math.nan,
        "baseline_mean": statistics.fmean([b for _, _, b in pairs]) if n else math.nan,
        "mean_diff": mean_d,
        "sd_diff": sd,
        "ci_low": mean_d - half,
        "ci_high": mean_d + half,
        "ci_over": IMAGES if images is not None and n > 1 else "seeds",
        "wins": sum(1 for v in d if v > 0),
        "losses": sum(1 for v in d if v < 0),
        "seeds": [s for s, _, _ in pairs],
    }


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
    return (100.0, "points") if metric in FRACTION_METRICS else (1.0, "")


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
