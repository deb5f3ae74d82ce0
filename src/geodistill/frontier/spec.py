"""What a frontier job is: a teacher, candidate students, the distillation methods to choose
from, seeds and a deployment budget; and the studies it compiles into.

A frontier trains every candidate student alone and distilled, over repeated random splits
(``splits: per_seed``: each seed its own split and its own teachers, so no teacher sees its
split's validation or test images), and chooses each student's method on the validation split
of the screening seeds (never the test split): phase one trains every method there, phase two
trains the chosen method (and the student alone) on the other seeds.
"""

from __future__ import annotations

from typing import Any

from pydantic import BaseModel, ConfigDict, Field

from geodistill.config.study import Objective, Student, Study

_KL = {"loss": "kl", "alpha": 0.9, "T": 4.0}
METHODS = {  # the methods a frontier chooses from by default: each has won somewhere (BENCHMARKS.md)
    "kl": Objective(**_KL),
    "dist": Objective(loss="dist", T=1.0),
    "ens": Objective(**_KL, teachers="ensemble"),
}


class FrontierSpec(BaseModel):
    """A frontier job. ``teacher``: the teacher role's config (a pretrained model at its own
    size, say), trained once per split; or ``teacher_ckpt``, a trained teacher, which fixes the
    split to the one it trained on; ``students``: the candidates; ``methods``: names of `METHODS` or objectives;
    ``screen_seeds``: the seeds on which every method is trained and the choice made;
    ``claim_seeds``: more seeds for the students on either Pareto set (found on ``seeds``), so
    that the claims the frontier makes rest on more splits (5 in all, say); budgets:
    the deployment limits the pick must meet (int8 ONNX latency at batch 1, model file size)."""

    model_config = ConfigDict(extra="forbid")

    about: str = ""
    base: dict[str, Any] = {}
    teacher: dict[str, Any] = {}
    student: dict[str, Any] = {}
    teacher_ckpt: str | None = None
    students: list[Student]
    methods: list[str | Objective] = ["kl", "dist", "ens"]
    seeds: list[int] = [0, 1, 2]
    screen_seeds: list[int] = [0]
    claim_seeds: list[int] = []
    teacher_seeds: list[int] = [0, 1, 2]
    budget_check: bool = True
    max_latency_ms: float | None = Field(None, gt=0)
    max_size_kb: float | None = Field(None, gt=0)
    latency_threads: int = Field(1, ge=1)

    def objectives(self) -> list[Objective]:
        """The methods as objectives."""
        return [METHODS[m] if isinstance(m, str) else m for m in self.methods]

    def _study(self, students: list[Student], objectives: list[Objective], seeds: list[int]) -> Study:
        return Study(
            about=self.about,
            base=self.base,
            teacher=self.teacher,
            student=self.student,
            students=students,
            objectives=[Objective(), *objectives],
            seeds=seeds,
            teacher_seeds=self.teacher_seeds,
            splits="fixed" if self.teacher_ckpt else "per_seed",
            budget_check=self.budget_check,
            teacher_ckpt=self.teacher_ckpt,
        )

    def screening(self) -> Study:
        """Phase one: every student alone and under every method, on the screening seeds."""
        return self._study(self.students, self.objectives(), self.screen_seeds)

    def upper_bound(self) -> Study:
        """Every student alone and under every method on every seed, the claim seeds included:
        what a dry run counts."""
        seeds = [*self.seeds, *(k for k in self.claim_seeds if k not in self.seeds)]
        return self._study(self.students, self.objectives(), seeds)

    def final(self, student: Student, chosen: Objective | None, claim: bool = False) -> Study:
        """Phase two of one student: alone and under its chosen method, on every seed (and the
        claim seeds, for ``claim``)."""
        seeds = [*self.seeds, *(k for k in self.claim_seeds if k not in self.seeds)] if claim else self.seeds
        return self._study([student], [chosen] if chosen is not None else [], seeds)
