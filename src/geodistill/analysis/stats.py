"""Paired comparison of each distillation setting with the student trained alone.

For a setting (`results.Setting`) and the student alone of its baseline setting (same data,
model, size, epochs and precision: `Setting.baseline`) and seed, d_i = x_i − base_i over the n
seeds both have; the interval of the mean gain is `analysis.intervals.pair_stats`'s (Student's
t, widened by the test images' share of the variance when the runs record their per-image
hits). Pairing by seed removes the seed-to-seed variance both runs share (same split, same
init stream), so a small but consistent gain shows up with few seeds.
"""

from __future__ import annotations

import math
import statistics
import warnings
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from typing import Any

from geodistill.analysis.format import sort_key
from geodistill.analysis.intervals import image_gains, image_variance, pair_stats
from geodistill.analysis.table import setting_cells
from geodistill.core.errors import GeodistillError, GeodistillWarning
from geodistill.results.result import COST_FIELDS, QUALITY_METRICS, RunResult, Setting, is_baseline

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
