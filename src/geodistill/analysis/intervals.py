"""Intervals of a paired gain: Student's t, and the test images' share of the variance.

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
from collections.abc import Sequence
from typing import Any

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
