"""Hand-made `RunResult`s for tests of tables, statistics and verdicts (no training)."""

from __future__ import annotations

from typing import Any

from geodistill.frontier.pareto import Candidate
from geodistill.results import Convergence, Metrics, Precision, RunResult

_TEACHERS = {"": None, "ensemble": ["t0.ckpt", "t1.ckpt", "t2.ckpt"]}


def result(
    objective_name: str = "student",
    seed: int = 0,
    accuracy: float = 0.5,
    *,
    role: str | None = None,
    dataset: str = "d",
    model: str = "cnn3",
    alpha: float | None = None,
    beta: float | None = None,
    T: float | None = None,
    f1_macro: float | None = None,
    converged: bool | None = None,
    correct: str | None = None,
    correct_of: str | None = None,
    teachers: str = "",
    precision: str = "32-true",
    status: str = "ok",
    **more: Any,
) -> RunResult:
    """One run: a student alone unless the objective says otherwise (role 'distilled' then);
    ``teachers='ensemble'`` gives it a 3-teacher ensemble (its method)."""
    role = role or ("student" if objective_name == "student" else "distilled")
    teacher = _TEACHERS[teachers] if role == "distilled" or teachers else None
    config = {"distill": {"teacher": teacher, "ensemble": "logits"}, "train": {"precision": precision}}
    metrics = Metrics(accuracy=accuracy, f1_macro=accuracy if f1_macro is None else f1_macro, correct=correct,
                      correct_of=correct_of)  # fmt: skip
    return RunResult(
        run_id=more.pop("run_id", f"{objective_name}-{alpha}-{T}-{teachers}-s{seed}"),
        role=role,
        dataset=dataset,
        model=model,
        objective_name=objective_name,
        alpha=alpha,
        beta=beta,
        T=T,
        seed=seed,
        metrics=metrics if status == "ok" else None,
        convergence=Convergence(converged=converged) if converged is not None else None,
        precision=Precision(precision),
        config=config,
        status=status,
        **more,
    )


def cand(student: str, ms: float, a: float, d: float, kb: float = 100.0) -> Candidate:
    """One frontier student: ``ms`` int8 latency, accuracy ``a`` alone and ``d`` distilled
    (sd 0.01), the gain d - a with an interval of ±0.01, 3 seeds, every run converged."""
    return Candidate(student, 32, 1000, 1e6, kb, ms, 2 * ms, a, 0.01, d, 0.01, d - a, d - a - 0.01, d - a + 0.01,
                     "seeds", 3, 6, 6, "kl")  # fmt: skip
