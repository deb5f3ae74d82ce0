"""One validated configuration for every run, named recipes, and ``key=value`` overrides.

A run is described by a :class:`RunConfig` (data + optimisation + objective). Recipes are
partial dicts merged under the user's overrides; YAML files give the same dicts.
"""

from __future__ import annotations

import difflib
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator, model_validator

from geodistill.config.protocols import PROTOCOLS
from geodistill.core.errors import GeodistillError


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid", validate_assignment=True)


class DataConfig(_Strict):
    """Which images, at which size, split how, augmented how."""

    dataset: str = "synthetic"
    root: str | None = None
    size: int = Field(32, ge=8, le=1024)
    channels: int | None = Field(None, ge=1, le=64)
    fractions: tuple[float, float, float] = (0.6, 0.2, 0.2)
    split_seed: int = 0
    split_files: dict[Literal["train", "val", "test"], str] | None = None  # one relative path per line
    protocol: str | None = None  # a named protocol (geodistill.protocols): its dataset and train_ratio
    train_ratio: float | None = Field(None, gt=0, lt=1)  # per class, the rest is test (data.splits.ratio_split)
    val_ratio: float = Field(0.2, gt=0, lt=1)  # with train_ratio: the validation share of the training part
    normalization: Literal["unit", "mean_std"] = "unit"
    augment: Literal["dihedral", "none", "dihedral+grid", "dihedral+crop"] = "dihedral"
    crop_grid: int = Field(3, ge=2, le=9)  # dihedral+grid: a g x g grid of fixed crops (data/views.py)
    crop_pad: int = Field(4, ge=1, le=64)  # crops move up to 2*pad pixels inside the reflect-padded image
    cache_dir: str | None = None
    strict: bool = False
    download: bool = False
    n_per_class: int | None = Field(None, ge=3)  # synthetic only: images per class
    folds: int | None = Field(None, ge=2, le=20)  # with hold_out: train on the training split minus one fold
    hold_out: int | None = Field(None, ge=0)  # the fold (0-based) left out; an out-of-fold teacher labels it

    @model_validator(mode="before")
    @classmethod
    def _protocol(cls, d: Any) -> Any:
        """A named protocol gives its dataset (unless one is named: a local copy, say ``folder``) and
        its training ratio (which an explicit ``train_ratio`` may not contradict)."""
        if not isinstance(d, dict) or d.get("protocol") is None:
            return d
        p = PROTOCOLS.get(d["protocol"])
        if p is None:
            raise ValueError(f"protocol {d['protocol']!r} is unknown; choose one of {', '.join(PROTOCOLS)}")
        if d.get("train_ratio") not in (None, p.train_ratio):
            raise ValueError(f"protocol {p.name} trains on {p.train_ratio} of each class, not {d['train_ratio']}")
        return {**d, "dataset": d.get("dataset") or p.dataset, "train_ratio": p.train_ratio}

    @model_validator(mode="after")
    def _fold_pair(self) -> DataConfig:
        if (self.folds is None) != (self.hold_out is None):
            raise ValueError("data.folds and data.hold_out go together (e.g. folds=4 hold_out=0)")
        if self.folds is not None and self.hold_out >= self.folds:
            raise ValueError(f"data.hold_out must be in 0..{self.folds - 1} for data.folds={self.folds}")
        if self.train_ratio is not None and self.split_files:
            raise ValueError("data.train_ratio (or data.protocol) and data.split_files are two ways to split; give one")
        if self.augment in ("dihedral+grid", "dihedral+crop") and self.crop_pad >= self.size:
            raise ValueError(f"data.crop_pad ({self.crop_pad}) must be below data.size ({self.size}) to reflect-pad")
        return self

    @field_validator("fractions")
    @classmethod
    def _sum_to_one(cls, v: tuple[float, float, float]) -> tuple[float, float, float]:
        if any(f <= 0 for f in v) or abs(sum(v) - 1.0) > 1e-6:
            raise ValueError("fractions must be three positive numbers summing to 1, e.g. 0.6,0.2,0.2")
        return v


class TrainConfig(_Strict):
    """Optimisation: the same for a teacher, a student alone and a distilled student."""

    model: str = "cnn3"
    weights: str | None = None
    epochs: int | Literal["auto"] = 30  # "auto": engine.convergence.auto_epochs(n_train, auto_images)
    # images seen for epochs="auto": on AID at 32 px, CNN3 passes its 3-seed budget check at 600 epochs of
    # 6000 images (3.6M; 300 epochs failed it), benchmarks/converged.py
    auto_images: int = Field(3_600_000, ge=1)
    batch_size: int = Field(64, ge=1)
    optimizer: Literal["adamw", "sgd"] = "adamw"
    lr: float = Field(3e-3, gt=0)
    weight_decay: float = Field(5e-4, ge=0)
    warmup_epochs: float = Field(1.0, ge=0)
    label_smoothing: float = Field(0.0, ge=0, lt=1)
    seed: int = 0
    # "auto": bf16-mixed where it is measured or known faster, else 32-true (engine.precision)
    precision: Literal["32-true", "bf16-mixed", "16-mixed", "32", "bf16", "auto"] = "32-true"
    channels_last: bool = True
    patience: int | None = Field(None, ge=1)
    checkpoint_every: int = Field(0, ge=0)
    accelerator: str = "auto"
    devices: int | str = 1
    strategy: str = "auto"
    num_nodes: int = Field(1, ge=1)
    progress: bool = True
    # torch's CPU threads in the run. Part of the config because the count changes a CPU run's
    # numbers: training steps differ (measured: cnn3 and cnn4 weights after 6 steps differ at 1,
    # 2 and 3 threads, fp32 and bf16; inference is identical at any count). 1 by default: the same
    # numbers on any host, and a shared machine is never oversubscribed (the demo took 8 minutes
    # at torch's default beside one busy process, 98 s at 1 thread); more runs at once come from
    # sweep --workers, each worker a process of its own.
    threads: int = Field(1, ge=1, le=1024)

    @field_validator("epochs", mode="before")
    @classmethod
    def _epochs(cls, v: Any) -> Any:
        whole = isinstance(v, int) and not isinstance(v, bool) and v >= 1
        if v == "auto" or whole or (isinstance(v, str) and v.isdigit() and int(v) >= 1):
            return v
        raise ValueError(f"epochs must be a whole number >= 1 or 'auto', not {v!r}")


class DistillConfig(_Strict):
    """The student's objective; ``loss`` is a preset name or a spec string.

    ``teacher`` is one checkpoint or a list. Several teachers answer together as ``ensemble``
    says (engine/teachers.py): ``logits`` (mean logits), ``probs`` (mean tempered probabilities)
    or ``out_of_fold`` (teachers trained with data.folds/hold_out; each training image is
    answered by the teacher that did not train on it). ``view_mean``: every image's soft label
    is the teacher's mean over all its cached views (test-time augmentation, no extra cost).
    Each teacher answers at its own resolution (``teacher_size``, else the size it trained at)
    while the student trains at ``data.size``: the cache holds the teacher's answer for each view
    of each image decoded at the teacher's size.
    """

    teacher: str | list[str] | None = None
    teacher_size: int | None = Field(None, ge=8, le=1024)  # px the teacher answers at (None: its checkpoint's)
    ensemble: Literal["logits", "probs", "out_of_fold"] = "logits"
    view_mean: bool = False  # the teacher's answer averaged over every cached view of the image
    loss: str = "student"
    alpha: float = Field(0.5, ge=0, le=1)
    beta: float | None = Field(None, ge=0)
    T: float = Field(4.0, gt=0)


class RunConfig(_Strict):
    """Everything one training run needs."""

    data: DataConfig = DataConfig()
    train: TrainConfig = TrainConfig()
    distill: DistillConfig = DistillConfig()
    out: str = "runs"
    name: str | None = None


def section_of(name: str) -> str | None:
    """The section (data, train or distill) whose field is called ``name``; None for a field of
    the run itself (out, name)."""
    if name in RunConfig.model_fields:
        return None
    for section in ("data", "train", "distill"):
        if name in RunConfig.model_fields[section].annotation.model_fields:
            return section
    raise KeyError(name)


def default_of(dotted: str) -> Any:
    """The default of a config field, e.g. ``default_of("train.epochs")`` -> 30."""
    model: type[BaseModel] = RunConfig
    *sections, name = dotted.split(".")
    for s in sections:
        model = model.model_fields[s].annotation
    return model.model_fields[name].default


def _fields_at(loc: tuple) -> list[str]:
    """The field names of the config section holding ``loc``'s last part ([] if there is none)."""
    model: Any = RunConfig
    for part in loc[:-1]:
        field = getattr(model, "model_fields", {}).get(part)
        model = field.annotation if field is not None else None
    return list(getattr(model, "model_fields", {}))


def unknown_field(field: str, loc: tuple) -> str:
    """'field 'train.epoch' is unknown; did you mean 'train.epochs'?' (or the section's fields)."""
    names = _fields_at(loc)
    near = [".".join([*map(str, loc[:-1]), n]) for n in difflib.get_close_matches(str(loc[-1]), names, n=2)]
    if near:
        return f"field {field!r} is unknown; did you mean {' or '.join(map(repr, near))}?"
    where = ".".join(map(str, loc[:-1])) or "a config"
    return f"field {field!r} is unknown; {where} has {', '.join(names)}."


def build_config(d: dict, where: str = "config") -> RunConfig:
    """Validate a nested dict into a :class:`RunConfig`, naming the first bad field (and, for
    an unknown one, the fields closest to it)."""
    try:
        return RunConfig.model_validate(d)
    except ValidationError as e:
        err = e.errors()[0]
        field = ".".join(str(x) for x in err["loc"])
        if err["type"] == "extra_forbidden":
            raise GeodistillError(f"In {where}, {unknown_field(field, err['loc'])}") from None
        raise GeodistillError(f"In {where}, field {field!r} is invalid: {err['msg']}.") from None
