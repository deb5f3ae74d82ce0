"""One run's results as one type: `RunResult` is what results.json holds, written by the engine
and read back by tables, statistics, plots, the report and studies alike.

A run's *role* is ``teacher``, ``student`` (trained without a teacher) or ``distilled``; its
*setting* (`Setting`) is what makes runs comparable across seeds: dataset, model, image size,
objective and its α/β/T, the method beyond the loss (`Method`: the teacher set and view set),
the epochs and the precision. "The student alone" is decided in one place: `is_baseline`.
Sub-records are typed too (`Metrics`, `Cost`, `Convergence`, `Epoch`, `Precision`); unknown
keys of an older or newer file are kept in ``extra`` and written back unchanged.
"""

from __future__ import annotations

import dataclasses
import math
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from geodistill.losses.presets import loss_hyper_keys

ROLES = ("teacher", "student", "distilled")
QUALITY_METRICS = ("accuracy", "precision_macro", "recall_macro", "f1_macro")
COST_FIELDS = ("params", "flops", "size_bytes", "latency_ms")


def _num(x: Any) -> float | None:
    return float(x) if isinstance(x, (int, float)) and not isinstance(x, bool) else None


def _record(cls: type, d: Mapping[str, Any] | None) -> Any:
    """``cls`` from the dict ``d`` (missing fields take their defaults, unknown keys go to ``extra``)."""
    if not isinstance(d, Mapping):
        return None
    names = {f.name for f in dataclasses.fields(cls)} - {"extra"}
    known = {k: d[k] for k in names if k in d}
    return cls(
        **known, **({"extra": {k: v for k, v in d.items() if k not in names}} if "extra" in _fields(cls) else {})
    )


def _fields(cls: type) -> set[str]:
    return {f.name for f in dataclasses.fields(cls)}


def _plain(obj: Any) -> dict[str, Any]:
    """A record as its JSON object (``extra`` merged back in)."""
    d = {f.name: getattr(obj, f.name) for f in dataclasses.fields(obj) if f.name != "extra"}
    return {**d, **getattr(obj, "extra", {})}


@dataclass(frozen=True)
class Metrics:
    """Quality on one split (`core.metrics`); ``correct``: '1'/'0' per image in split order, and
    ``correct_of``: a hash of the split's indices (runs are paired image by image only when equal)."""

    accuracy: float = math.nan
    precision_macro: float = math.nan
    recall_macro: float = math.nan
    f1_macro: float = math.nan
    per_class_f1: dict[str, float] = field(default_factory=dict)
    confusion_matrix: list[list[int]] | None = None
    classes: list[str] = field(default_factory=list)
    n: int = 0
    correct: str | None = None
    correct_of: str | None = None
    extra: dict[str, Any] = field(default_factory=dict)


@dataclass(frozen=True)
class Cost:
    """What the trained model costs (`models.cost`): parameters, FLOPs, bytes, eager latency and
    throughput; ``extra`` keeps other measurements (int8 ONNX latency, ...)."""

    params: int | None = None
    flops: float | None = None
    size_bytes: int | None = None
    latency_ms: float | None = None
    latency_batch: int | None = None
    throughput: float | None = None
    throughput_batch: int | None = None
    latency_key: str | None = None
    extra: dict[str, Any] = field(default_factory=dict)


@dataclass(frozen=True)
class Convergence:
    """The evidence of `engine.convergence.evidence`; ``converged`` None: not recorded."""

    best_epoch: int | None = None
    epochs: int | None = None
    best_at: float | None = None
    late_slope_pts: float | None = None
    lr_end_ratio: float | None = None
    smoothed_final: float | None = None
    converged: bool | None = None
    rule: str | None = None
    extra: dict[str, Any] = field(default_factory=dict)


@dataclass(frozen=True)
class Epoch:
    """One finished epoch (a row of metrics.csv)."""

    epoch: int
    train_loss: float = math.nan
    train_acc: float = math.nan
    val_acc: float = math.nan
    val_f1: float = math.nan
    lr: float = math.nan
    train_time_s: float = 0.0
    time_s: float = 0.0
    extra: dict[str, Any] = field(default_factory=dict)


@dataclass(frozen=True)
class Precision:
    """What a run trains in (``value``, Lightning's name), whether ``auto`` chose it, why, and (for
    ``auto``) the host whose rule decided it and the study file that holds the decision."""

    value: str
    auto: bool = False
    why: str = ""
    host: str | None = None
    file: str | None = None

    def to_dict(self) -> dict[str, Any]:
        """The JSON form."""
        return _plain(self)


@dataclass(frozen=True)
class Method:
    """The method beyond the loss: how many teachers answer and how they are combined
    (``logits``/``probs`` means, or ``out_of_fold``), the teacher averaged over views, the crop
    grid of the view set, and for a fold teacher the fold it holds out (``(fold, folds)``)."""

    teachers: int = 0
    combine: str | None = None
    view_mean: bool = False
    crop_grid: int | None = None
    views: int = 8
    hold_out: tuple[int, int] | None = None

    @classmethod
    def of(cls, config: Mapping[str, Any] | None) -> Method:
        """The method of a run config (a `RunConfig` dump)."""
        data, distill = dict((config or {}).get("data") or {}), dict((config or {}).get("distill") or {})
        t = distill.get("teacher")
        n = 0 if not t else 1 if isinstance(t, str) else len(t)
        grid = data.get("crop_grid") if data.get("augment") == "dihedral+grid" else None
        views = 1 if data.get("augment") == "none" else 8 * (grid or 1) ** 2
        fold = (int(data["hold_out"]), int(data["folds"])) if data.get("folds") is not None else None
        combine = distill.get("ensemble", "logits") if n > 1 else None
        return cls(n, combine, bool(distill.get("view_mean")), grid, views, fold)

    def __str__(self) -> str:
        """In words ('' for one teacher, or none, on the default views): what tables show."""
        parts = []
        if self.teachers > 1 and self.combine == "out_of_fold":
            parts.append(f"{self.teachers} out-of-fold teachers")
        elif self.teachers > 1:
            parts.append(f"an ensemble of {self.teachers} teachers (mean {self.combine})")
        if self.view_mean:
            parts.append(f"teacher averaged over {self.views} views")
        if self.crop_grid:
            parts.append(f"{self.crop_grid}x{self.crop_grid} crop views")
        if self.hold_out is not None:
            parts.append(f"fold {self.hold_out[0]} of {self.hold_out[1]} held out")
        return ", ".join(parts)


@dataclass(frozen=True)
class Setting:
    """What makes runs of several seeds one setting (the key of tables and pairings)."""

    dataset: str | None
    model: str | None
    size: int | None
    objective: str | None
    alpha: float | None
    beta: float | None
    T: float | None
    method: str
    epochs: int | None
    precision: str | None

    def baseline(self) -> Setting:
        """The setting of the student alone that a run of this setting is paired with: same data,
        model, size, epochs and precision; objective 'student', one plain view set."""
        return dataclasses.replace(self, objective="student", alpha=None, beta=None, T=None, method="")


@dataclass
class RunResult:
    """What one run records (results.json, or failed.json with ``status`` 'failed', ``error`` and
    ``traceback``). ``source`` is the file it was read from (not written)."""

    run_id: str
    role: str
    dataset: str | None = None
    model: str | None = None
    teacher: str | list[str] | None = None  # one checkpoint, or several (an ensemble / out-of-fold teachers)
    objective: str | None = None  # the formula, e.g. 'L = 0.7·CE + 0.3·KL(T=4)'
    objective_name: str = "student"  # the preset name or spec string; 'teacher' for a teacher
    alpha: float | None = None
    beta: float | None = None
    T: float | None = None
    seed: int | None = None
    size: int | None = None
    metrics: Metrics | None = None
    val_accuracy: float | None = None
    best_epoch: int | None = None
    cost: Cost | None = None
    epochs: int | None = None  # epochs run (the resolved number when train.epochs was "auto")
    epochs_auto: bool | None = None
    convergence: Convergence | None = None
    wall_time_s: float | None = None  # this process's time (a resumed run: since the resume)
    train_time_s: float | None = None  # training + validation over every epoch, resumes included
    teacher_cache_s: float | None = None
    precision: Precision | None = None
    history: list[Epoch] = field(default_factory=list)
    config: dict[str, Any] = field(default_factory=dict)
    machine: dict[str, Any] | None = None
    status: str = "ok"
    error: str | None = None
    traceback: str | None = None
    extra: dict[str, Any] = field(default_factory=dict)
    source: Path | None = field(default=None, compare=False)

    @property
    def ok(self) -> bool:
        """Whether the run finished."""
        return self.status == "ok"

    @property
    def method(self) -> Method:
        """The teacher set and view set of its config (`Method.of`)."""
        return Method.of(self.config)

    @property
    def precision_value(self) -> str | None:
        """The precision it trained in (its record, else its config's)."""
        if self.precision is not None:
            return self.precision.value
        return (self.config.get("train") or {}).get("precision")

    @property
    def setting(self) -> Setting:
        """Its `Setting`."""
        return Setting(
            self.dataset,
            self.model,
            self.size,
            self.objective_name,
            self.alpha,
            self.beta,
            self.T,
            str(self.method),
            self.epochs,
            self.precision_value,
        )

    @property
    def converged(self) -> bool | None:
        """Its convergence flag; None when not recorded."""
        return self.convergence.converged if self.convergence is not None else None

    def value(self, metric: str) -> float | None:
        """A test metric (`QUALITY_METRICS`) or cost field (`COST_FIELDS`) as a number, None when missing."""
        source = self.cost if metric in COST_FIELDS else self.metrics
        return _num(getattr(source, metric, None)) if source is not None else None

    def to_dict(self) -> dict[str, Any]:
        """The JSON object: every field (``traceback`` only for a failure), then ``extra``."""
        d: dict[str, Any] = {}
        for f in dataclasses.fields(self):
            if f.name in ("extra", "source") or (f.name == "traceback" and self.ok):
                continue
            v = getattr(self, f.name)
            if f.name == "history":
                v = [_plain(e) for e in v]
            elif dataclasses.is_dataclass(v):
                v = _plain(v)
            d[f.name] = v
        d["method"] = str(self.method)  # for a human reading the file; read back from the config
        return {**d, **self.extra}

    @classmethod
    def from_dict(cls, d: Mapping[str, Any], source: Path | None = None) -> RunResult:
        """From a JSON object (missing fields take their defaults, unknown keys go to ``extra``)."""
        names = _fields(cls) - {"extra", "source"}
        known = {k: d[k] for k in names if k in d and d[k] is not None}
        known["metrics"] = _record(Metrics, d.get("metrics"))
        known["cost"] = _record(Cost, d.get("cost"))
        known["convergence"] = _record(Convergence, d.get("convergence"))
        known["precision"] = _record(Precision, d.get("precision")) if isinstance(d.get("precision"), Mapping) else None
        known["history"] = [_record(Epoch, e) for e in d.get("history") or [] if isinstance(e, Mapping)]
        known["status"] = d.get("status") or "ok"
        known.setdefault("role", "student")  # a failure recorded before roles were
        extra = {k: v for k, v in d.items() if k not in names and k != "method"}
        return cls(**known, extra=extra, source=source)

    def flat(self) -> dict[str, Any]:
        """One flat row (a per-run table's line, CSV-ready): identity, α/β/T, the method, quality
        metrics, per-class F1 (``f1[<class>]``), cost, epochs, convergence, precision, times."""
        m = self.metrics
        row: dict[str, Any] = {
            "run_id": self.run_id,
            "dataset": self.dataset,
            "model": self.model,
            "role": self.role,
            "teacher": " + ".join(map(str, self.teacher)) if isinstance(self.teacher, list) else self.teacher,
            "method": str(self.method),
            "objective_name": self.objective_name,
            "objective": self.objective,
            "alpha": _num(self.alpha),
            "beta": _num(self.beta),
            "T": _num(self.T),
            "seed": self.seed,
            "size": self.size,
            **{k: self.value(k) for k in QUALITY_METRICS},
            **{f"f1[{c}]": _num(v) for c, v in (m.per_class_f1 if m else {}).items()},
            **{k: self.value(k) for k in COST_FIELDS},
            "epochs": self.epochs,
            "precision": self.precision_value,
            "converged": self.converged,
            "late_slope_pts": _num(self.convergence.late_slope_pts) if self.convergence else None,
            "wall_time_s": _num(self.wall_time_s),
            "status": self.status,
            "error": self.error,
        }
        return row


def is_baseline(r: RunResult) -> bool:
    """Whether ``r`` is the student trained alone: the one place this is decided."""
    return r.role == "student" and r.objective_name == "student"


def role_of(has_teacher_objective: bool, teacher: bool = False) -> str:
    """A run's role: 'teacher' when trained as a study's teacher, else 'distilled' when its
    objective reads a teacher, else 'student'."""
    return "teacher" if teacher else "distilled" if has_teacher_objective else "student"


def hyper(loss: str, role: str, alpha: float | None, beta: float | None, T: float | None) -> dict[str, Any]:
    """α/β/T as a run records them: for a distillation run, those its loss uses (see
    `losses.loss_hyper_keys`), even where α = 0 switches the teacher off, so such a run stays
    on its α curve; None otherwise (a teacher, the student alone, DIST's unused α)."""
    keys = () if role == "teacher" else loss_hyper_keys(loss)
    return {k: v if k in keys else None for k, v in (("alpha", alpha), ("beta", beta), ("T", T))}
