"""One run's results: the schema of ``results.json`` / ``failed.json``, read and written here,
and the file names of a run, a sweep and a recipe run."""

from __future__ import annotations

import dataclasses
import json
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from geodistill.core.atomic import write_json
from geodistill.losses.presets import loss_hyper_keys

RESULTS_FILE = "results.json"  # a finished run
FAILED_FILE = "failed.json"  # a run that crashed (a sweep point or teacher)
SWEEP_FILE = "sweep.json"  # a sweep's description, teachers and points
SUMMARY_FILE = "summary.json"  # `geodistill run`'s comparison table
COST_CACHE_FILE = "latency.json"  # measured latencies shared by the runs of a folder (profile.job_cost)


@dataclass
class RunResult:
    """What one run records. Identity and coordinates (shared by finished and failed runs, so
    the report groups a failure with its setting), then what training measured; ``status`` is
    'ok' or 'failed' (then ``error`` and ``traceback`` say why)."""

    run_id: str
    role: str
    dataset: str | None
    model: str | None
    teacher: str | list[str] | None  # one checkpoint, or several (an ensemble / out-of-fold teachers)
    objective: str | None  # the formula, e.g. 'L = 0.7·CE + 0.3·KL(T=4)'
    objective_name: str  # the preset name or spec string; 'teacher' for a teacher
    alpha: float | None
    beta: float | None
    T: float | None
    seed: int | None
    size: int | None
    method: str = ""  # the teacher set and view set beyond the loss ('' = one teacher, dihedral views)
    metrics: dict | None = None
    val_accuracy: float | None = None
    best_epoch: int | None = None
    cost: dict | None = None
    epochs: int | None = None  # epochs run (the resolved number when train.epochs was "auto")
    epochs_auto: bool | None = None  # train.epochs was "auto" (config holds the resolved number)
    convergence: dict | None = None  # engine.convergence.evidence: late slope, lr ratio, `converged`
    wall_time_s: float | None = None  # this process's time (a resumed run: since the resume)
    train_time_s: float | None = None  # training + validation over every epoch, resumes included
    teacher_cache_s: float | None = None
    precision: dict | None = None  # what the run trained in and why (engine.precision.Precision)
    history: list | None = None
    config: dict | None = None
    machine: dict | None = None
    status: str = "ok"
    error: str | None = None
    traceback: str | None = None
    extra: dict = field(default_factory=dict)  # unknown keys read from an older/newer file

    def to_dict(self) -> dict[str, Any]:
        """The JSON object: every field (``traceback`` only for a failure), then ``extra``."""
        d = {f.name: getattr(self, f.name) for f in dataclasses.fields(self) if f.name != "extra"}
        if self.status == "ok":
            del d["traceback"]
        return {**d, **self.extra}

    @classmethod
    def from_dict(cls, d: dict[str, Any]) -> RunResult:
        """From a JSON object (missing fields None, unknown keys kept in ``extra``)."""
        names = {f.name for f in dataclasses.fields(cls)} - {"extra"}
        known = {k: d.get(k) for k in names}
        known["status"] = d.get("status") or "ok"
        return cls(**known, extra={k: v for k, v in d.items() if k not in names})


def hyper(loss: str, role: str, alpha: float | None, beta: float | None, T: float | None) -> dict[str, Any]:
    """α/β/T as a run records them: for a distillation run, those its loss uses (see
    `losses.loss_hyper_keys`), even where α = 0 switches the teacher off, so such a run stays
    on its α curve; None otherwise (a teacher, the student alone, DIST's unused α)."""
    keys = () if role == "teacher" else loss_hyper_keys(loss)
    return {k: v if k in keys else None for k, v in (("alpha", alpha), ("beta", beta), ("T", T))}


def write_result(run_dir: str | Path, result: RunResult) -> Path:
    """Write ``results.json`` (status ok) or ``failed.json`` (status failed) atomically."""
    name = RESULTS_FILE if result.status == "ok" else FAILED_FILE
    return write_json(Path(run_dir) / name, result.to_dict())


def read_result(path: str | Path) -> dict[str, Any]:
    """A run's ``results.json`` (or ``failed.json``) as a dict; a run folder reads its results."""
    path = Path(path)
    if path.is_dir():
        path = path / RESULTS_FILE
    return json.loads(path.read_text(encoding="utf-8"))
