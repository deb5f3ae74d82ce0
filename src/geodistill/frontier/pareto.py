"""The accuracy-latency frontier of a set of students, the pick under a deployment budget, and a
frontier's outcome (`Frontier`).

A student is on the Pareto set of a curve (alone, or distilled) when no other student is at
least as fast (int8 latency) and at least as accurate, and strictly better in one of the two.
The pick under a budget is the most accurate student whose latency and size fit it.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import asdict, dataclass, field


@dataclass(frozen=True)
class Candidate:
    """One student of a frontier: its cost on the runtime that ships, its accuracy alone and
    distilled (fractions, mean and sd over seeds), the paired gain with its 95% interval, the
    method chosen for it, and how many of its compared runs converged."""

    student: str
    size: int
    params: int
    flops: float
    size_kb: float
    int8_latency_ms: float
    fp32_latency_ms: float
    alone_mean: float
    alone_std: float
    distilled_mean: float
    distilled_std: float
    gain_mean: float
    gain_ci_low: float
    gain_ci_high: float
    ci_over: str
    n_seeds: int
    converged_runs: int
    total_runs: int
    method: str

    def to_dict(self) -> dict:
        """The JSON form (frontier.json)."""
        return asdict(self)


@dataclass
class Frontier:
    """A frontier's outcome: one line per student, the teacher's test accuracy over the splits,
    the Pareto sets, the picks under the budget (distilled and alone), where the pick was
    exported, and the verdict in words."""

    candidates: list[Candidate]
    teacher_acc: float
    pareto_alone: list[str] = field(default_factory=list)
    pareto_distilled: list[str] = field(default_factory=list)
    pick: Candidate | None = None
    best_alone: Candidate | None = None
    exported: str | None = None
    verdict: str = ""

    def to_dict(self) -> dict:
        """The JSON form (frontier.json)."""
        d = {k: getattr(self, k) for k in ("teacher_acc", "pareto_alone", "pareto_distilled", "exported", "verdict")}
        d["students"] = [c.to_dict() for c in self.candidates]
        d["pick"] = self.pick.to_dict() if self.pick else None
        d["best_alone"] = self.best_alone.to_dict() if self.best_alone else None
        return d


Metric = Callable[[Candidate], float]


def alone(c: Candidate) -> float:
    return c.alone_mean


def distilled(c: Candidate) -> float:
    return c.distilled_mean


def latency(c: Candidate) -> float:
    return c.int8_latency_ms


def pareto(cands: Sequence[Candidate], acc: Metric = distilled, cost: Metric = latency) -> list[Candidate]:
    """The students no other one dominates (as fast or faster and as accurate or more, strictly
    better in one), fastest first."""
    front = [
        c
        for c in cands
        if not any(cost(o) <= cost(c) and acc(o) >= acc(c) and (cost(o) < cost(c) or acc(o) > acc(c)) for o in cands)
    ]
    return sorted(front, key=cost)


def fits(c: Candidate, max_latency_ms: float | None = None, max_size_kb: float | None = None) -> bool:
    """Whether ``c`` meets the budget (None: no limit)."""
    return (max_latency_ms is None or c.int8_latency_ms <= max_latency_ms) and (
        max_size_kb is None or c.size_kb <= max_size_kb
    )


def pick(
    cands: Sequence[Candidate],
    max_latency_ms: float | None = None,
    max_size_kb: float | None = None,
    acc: Metric = distilled,
) -> Candidate | None:
    """The most accurate student within the budget (ties: the faster), None when none fits."""
    ok = [c for c in cands if fits(c, max_latency_ms, max_size_kb)]
    return max(ok, key=lambda c: (acc(c), -c.int8_latency_ms)) if ok else None
