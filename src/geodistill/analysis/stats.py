"""Paired comparison of each distillation setting with the student trained alone.

For a setting (dataset, model, objective, α, β, T) and the baseline run of the same dataset,
student model and seed, d_i = x_i − base_i over the n seeds both have. Then

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
from typing import Any

from geodistill.analysis.table import AGGREGATE_BY, check_columns, sort_key
from geodistill.core.errors import GeodistillWarning
from geodistill.engine.convergence import BUDGET_GAIN, NOT_CONVERGED
from geodistill.losses import loss_prose

GROUP_BY = AGGREGATE_BY
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


def _ok(row: dict[str, Any], metric: str) -> bool:
    v = row.get(metric)
    return row.get("status", "ok") == "ok" and isinstance(v, (int, float)) and not math.isnan(v)


def _is_baseline(row: dict[str, Any], baseline: str) -> bool:
    return row.get("objective_name") == baseline and row.get("role", "student") == "student"


def _baselines(rows: Sequence[dict[str, Any]], baseline: str) -> dict[tuple, list[dict[str, Any]]]:
    """The baseline runs per (dataset, model, seed, precision); several for one key are averaged,
    with a warning. A run is only ever paired with a baseline that trained in its precision."""
    base: dict[tuple, list[dict[str, Any]]] = {}
    for r in rows:
        if _is_baseline(r, baseline):
            base.setdefault((r.get("dataset"), r.get("model"), r.get("seed"), r.get("precision")), []).append(r)
    for (ds, model, seed, _), runs in base.items():
        if len(runs) > 1:
            warnings.warn(
                f"{len(runs)} '{baseline}' runs for dataset {ds}, model {model}, seed {seed}; "
                "their mean is used as the baseline.",
                GeodistillWarning,
                stacklevel=3,
            )
    return base


def _run_key(row: dict[str, Any]) -> str:
    """A run's identity for counting it once: its run_id, else its setting and seed."""
    return str(row.get("run_id") or (*(row.get(k) for k in GROUP_BY), row.get("seed"), row.get("role")))


def _flag(row: dict[str, Any]) -> bool | None:
    """The run's `converged` flag; None when it records none (results from before it was kept)."""
    v = row.get("converged")
    return v if isinstance(v, bool) else None


def paired_difference(
    rows: Iterable[dict[str, Any]], baseline: str = "student", metric: str = "accuracy"
) -> list[dict[str, Any]]:
    """For every setting other than the baseline and the teachers, pair each seed's run with
    the baseline run (objective_name `baseline`, role 'student') of the same dataset, model and
    seed. Returns one row per setting with n (pairs), mean_diff, sd_diff, ci_low, ci_high
    (95%, t distribution; nan when n < 2), wins (d_i > 0), losses (d_i < 0), the means of
    the setting and the baseline over the paired seeds, the seeds without a baseline, and
    `_converged_by_run` (run -> `converged` flag or None, for every run in a pair, the baseline's
    included; `_` keeps it out of tables). Differences are in the metric's own units."""
    rows = list(rows)
    check_columns(rows, [*GROUP_BY, metric], "paired_difference")
    rows = [r for r in rows if _ok(r, metric)]
    base = _baselines(rows, baseline)
    groups: dict[tuple, list[dict[str, Any]]] = {}
    for r in rows:
        if not (_is_baseline(r, baseline) or r.get("role") == "teacher"):
            groups.setdefault(tuple(r.get(k) for k in GROUP_BY), []).append(r)
    out = []
    for key, members in groups.items():
        by_seed: dict[Any, list[dict[str, Any]]] = {}
        for r in members:
            by_seed.setdefault(r.get("seed"), []).append(r)
        pairs, missing, other, flags, gains, images = [], [], [], {}, [], set()
        hits = lambda runs: [r.get("_correct") for r in runs]  # noqa: E731
        precision = members[0].get("precision")
        for seed in sorted(by_seed, key=lambda s: (str(type(s)), s)):
            b = base.get((key[0], key[1], seed, precision))
            if b is None:
                missing.append(seed)
                other += [p for (d, m, s, p) in base if (d, m, s) == (key[0], key[1], seed)]
                continue
            pairs.append((seed, _mean(by_seed[seed], metric), _mean(b, metric)))
            flags.update({_run_key(r): _flag(r) for r in [*by_seed[seed], *b]})
            gains.append(image_gains(hits(by_seed[seed]), hits(b)) if metric == "accuracy" else None)
            images.update(r.get("_correct_of") for r in [*by_seed[seed], *b])
        row = dict(zip(GROUP_BY, key), objective=members[0].get("objective"), metric=metric, baseline=baseline)
        v = image_variance(gains) if len(images) == 1 else None  # every run scored on the same images
        row.update(pair_stats(pairs, v), seeds_without_baseline=missing, _converged_by_run=flags)
        row["baseline_precisions"] = sorted(set(map(str, other)))  # unpaired: the baseline trained otherwise
        out.append(row)
    out.sort(key=lambda r: tuple(sort_key(r.get(k)) for k in GROUP_BY))
    return out


def _mean(runs: Sequence[dict[str, Any]], metric: str) -> float:
    return statistics.fmean(float(r[metric]) for r in runs)


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


def setting_label(row: dict[str, Any]) -> str:
    """'KL+cosine (α=0.3, β=0.1, T=4)': the objective in words and the α/β/T the row records,
    then its method when it has one ('KL (α=0.5, T=4) with an ensemble of 3 teachers (mean logits)')."""
    name = pretty_objective(row.get("objective_name"))
    params = [
        f"{sym}={_param(row.get(k))}"
        for k, sym in (("alpha", "α"), ("beta", "β"), ("T", "T"))
        if row.get(k) is not None
    ]
    label = f"{name} ({', '.join(params)})" if params else name
    return f"{label} with {row['method']}" if row.get("method") else label


def _param(v: Any) -> str:
    return f"{v:g}" if isinstance(v, (int, float)) else str(v)


def _scale(metric: str) -> tuple[float, str]:
    return (100.0, "points") if metric in FRACTION_METRICS else (1.0, "")


def _seeds(n: int) -> str:
    return f"{n} seed" if n == 1 else f"{n} seeds"


def _classify(row: dict[str, Any]) -> str:
    if row["n"] == 0:
        return "no_baseline"
    if row["n"] == 1:
        return "single"
    if row["ci_low"] > 0:
        return "better"
    if row["ci_high"] < 0:
        return "worse"
    return "unclear"


def _sentence(row: dict[str, Any], lead: str = "") -> str:
    """One sentence judging one setting; `lead` (e.g. 'the best setting, ') goes before its name."""
    k, unit = _scale(row["metric"])
    unit_s = f" {unit}" if unit else ""
    who = f"{lead}{setting_label(row)}," if lead else setting_label(row)
    base = pretty_objective(row["baseline"])
    metric = row["metric"].replace("_", " ")
    kind = _classify(row)
    n = row["n"]
    if kind == "no_baseline":
        if row.get("baseline_precisions"):
            return (
                f"{who} could not be compared: it trained in {row.get('precision')} and the "
                f"'{row['baseline']}' runs of its seeds in {', '.join(row['baseline_precisions'])}, and runs of "
                "different precisions are not paired; train both in one precision (train.precision)."
            )
        return (
            f"{who} could not be compared: there is no '{row['baseline']}' run of the same "
            f"dataset, model and seed ({_seeds(len(row['seeds_without_baseline']))} without one)."
        )
    m, sd = k * row["mean_diff"], k * row["sd_diff"]
    lo, hi = k * row["ci_low"], k * row["ci_high"]
    if kind == "single":
        direction = "above" if m > 0 else "below" if m < 0 else "level with"
        amount = f"{_num(abs(m))}{unit_s} " if m != 0 else ""
        return (
            f"{who} is {amount}{direction} {base} in {metric} on a single seed; with one "
            "seed there is no confidence interval, so this is one observation, not evidence."
        )
    ci = f"95% CI {_num(lo)} to {_num(hi)}" + (f" over {row['ci_over']}" if row.get("ci_over") == IMAGES else "")
    if kind == "better":
        return (
            f"{who} beats {base} in {metric} by {_num(m)} ± {_num(sd)}{unit_s} "
            f"(mean ± sd over {_seeds(n)}; {ci}), better in {row['wins']}/{n} seeds."
        )
    if kind == "worse":
        return (
            f"{who} is worse than {base} in {metric} by {_num(-m)} ± {_num(sd)}{unit_s} "
            f"(mean ± sd over {_seeds(n)}; {ci}), worse in {row['losses']}/{n} seeds."
        )
    return (
        f"{who} does not clearly differ from {base} in {metric}: {_num(m)} ± {_num(sd)}{unit_s} "
        f"(mean ± sd over {_seeds(n)}; the {ci} contains 0), better in {row['wins']}/{n} seeds."
    )


def _capitalize(text: str) -> str:
    return text[:1].upper() + text[1:]


def verdict(diff_rows: Sequence[dict[str, Any]], budget: dict[str, Any] | None = None) -> str:
    """One paragraph in plain words from `paired_difference` rows: per dataset and student
    model, the best setting (largest mean difference) judged by its 95% CI, then how many
    settings clearly beat, do not clearly differ from, or are clearly worse than the baseline;
    last, when a compared run had not converged or the ``budget`` check failed, that the comparison
    is not evidence (`convergence_note`)."""
    scopes: dict[tuple, list[dict[str, Any]]] = {}
    for r in diff_rows:
        scopes.setdefault((r.get("dataset"), r.get("model")), []).append(r)
    parts = (
        []
        if diff_rows
        else ["There is nothing to compare: no finished distilled runs besides the baseline and the teachers."]
    )
    for (ds, model), rows in scopes.items():
        prefix = f"On {ds} with the {model} student, " if len(scopes) > 1 else ""
        comparable = [r for r in rows if r["n"] > 0]
        if not comparable:
            parts.append(
                _capitalize(
                    f"{prefix}no setting could be compared: there is no '{rows[0]['baseline']}' run "
                    "(role 'student') of the same dataset, model and seed to pair with."
                )
            )
            continue
        best = max(comparable, key=lambda r: r["mean_diff"])
        lead = "the best setting, " if len(rows) > 1 else ""
        parts.append(_capitalize(prefix + _sentence(best, lead)))
        if len(rows) > 1:
            parts.append(_tally(rows))
    notes = [n for n in (convergence_note(diff_rows),) if n]
    if budget is not None and not budget["converged"]:  # `engine.convergence.budget_check`
        lead = "The budget check also failed" if notes else "Not evidence of a converged comparison: the budget check"
        lead += "" if notes else " failed"
        notes.append(
            f"{lead}: twice the epochs gained {budget['gain_pts']:+.2f} validation points (≥ {BUDGET_GAIN}); "
            "raise train.auto_images (or train.epochs)."
        )
    return " ".join([*parts, *notes])


def convergence_note(diff_rows: Sequence[dict[str, Any]]) -> str:
    """'' when every compared run that records convergence converged (runs without a record are
    unknown and not counted); else the sentence saying how many had not, and what to do."""
    flags: dict[str, bool | None] = {}
    for r in diff_rows:
        flags.update(r.get("_converged_by_run") or {})
    known = [f for f in flags.values() if f is not None]
    bad = known.count(False)
    if not bad:
        return ""
    return (
        f"Not evidence of a converged comparison: {bad} of {len(known)} compared runs had not converged "
        f"({NOT_CONVERGED}); train longer (train.epochs=auto)."
    )


def _tally(rows: Sequence[dict[str, Any]]) -> str:
    kinds = [_classify(r) for r in rows]
    base = pretty_objective(rows[0]["baseline"])
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
