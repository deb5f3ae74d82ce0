"""A study: teachers, then students x objectives x seeds, as one validated document.

`geodistill run --recipe`, `geodistill sweep`, `geodistill frontier` and every benchmark are
studies, compiled into one plan of runs (`study.plan`) and executed by one executor
(`study.execute`). Named recipes are studies shipped as YAML (``config/recipes/*.yaml``).

Config layers, lowest first (one order, `role_spec`): ``base`` < ``teacher`` / ``student`` (the
role's section) < ``overrides`` (the user's: ``--set``, ``--dataset``, a sweep file's ``base``)
< ``overrides.teacher`` / ``overrides.student`` < the run's own coordinates (its objective,
seed, split seed, teachers).

``choose_from`` lists distillation methods of which the job keeps one: each is trained on the
``screen_seeds`` (default: the first seed), the one with the best mean validation accuracy
there is added to the objectives for every seed (`study.choose`); never chosen on test images.

``students`` lists candidate students (each its model, size, weights and budget; their run
names start with ``model@size-``); without it the student role's config is the one student.

Teacher sets (``teachers``, per objective or for the whole study): ``one`` (one teacher, seed
``teacher_seed``, for every student seed), ``per_seed`` (a teacher per student seed),
``ensemble`` (the mean of teachers seeded ``teacher_seeds``), ``out_of_fold`` (``folds``
teachers, each trained without one fold); ``view_mean`` averages any of them over the cached
views. ``splits: per_seed`` ties the split seed to the run seed (the field's repeated random
splits): each seed gets its own split, and its own teachers trained on it.
"""

from __future__ import annotations

import copy
from importlib import resources
from typing import Any, Literal

import yaml
from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator

from geodistill.config.merge import deep_merge
from geodistill.core.errors import GeodistillError

TeacherKind = Literal["one", "per_seed", "ensemble", "out_of_fold"]
SWEEPABLE = ("alpha", "beta", "T", "loss", "teachers")


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid")


class Objective(_Strict):
    """One objective a study trains its students under: a `DistillConfig` update (``loss`` and
    the α/β/T it sets) and the teacher set it reads (None: the study's ``teachers``)."""

    loss: str = "student"
    alpha: float | None = Field(None, ge=0, le=1)
    beta: float | None = Field(None, ge=0)
    T: float | None = Field(None, gt=0)
    teachers: TeacherKind | None = None
    view_mean: bool = False

    def distill(self) -> dict[str, Any]:
        """The ``distill`` fields it sets (α/β/T only where given; β given as null means β = α)."""
        given = [k for k in ("alpha", "beta", "T") if k in self.model_fields_set]
        hyper = {k: getattr(self, k) for k in given if getattr(self, k) is not None or k == "beta"}
        return {"loss": self.loss, **hyper, **({"view_mean": True} if self.view_mean else {})}

    def coords(self) -> dict[str, Any]:
        """Its loss and the α/β/T it gives (what names and labels it)."""
        return {
            "loss": self.loss,
            **{k: getattr(self, k) for k in ("alpha", "beta", "T") if k in self.model_fields_set},
        }


class Student(_Strict):
    """One candidate student of a study: its model, image size, weights, and any other config it
    trains with (``train`` / ``data`` sections over the student role's)."""

    model: str = Field(pattern=r"^[A-Za-z0-9_.:-]+$")
    size: int | None = Field(None, ge=8, le=1024)
    weights: str | None = None
    train: dict[str, Any] = {}
    data: dict[str, Any] = {}

    @classmethod
    def parse(cls, text: str, **more: Any) -> Student:
        """``"cnn3x2@64"`` -> model cnn3x2 at 64 px (``more``: the other fields)."""
        model, _, size = text.strip().partition("@")
        return cls(model=model, size=int(size) if size else None, **more)

    @property
    def name(self) -> str:
        """``model@size`` (``model`` alone without a size): the prefix of its runs' names."""
        return self.model + (f"@{self.size}" if self.size else "")

    def spec(self) -> dict[str, Any]:
        """Its config layer."""
        train = {"model": self.model, **({"weights": self.weights} if self.weights else {}), **self.train}
        return {"train": train, "data": {**({"size": self.size} if self.size else {}), **self.data}}


class Study(_Strict):
    """A study document (see the module docstring for the layers and the teacher sets)."""

    about: str = ""
    base: dict[str, Any] = {}
    teacher: dict[str, Any] = {}
    student: dict[str, Any] = {}
    overrides: dict[str, Any] = {}
    datasets: list[str | dict[str, Any]] | None = None
    students: list[Student] = []
    objectives: list[Objective] = [Objective()]
    choose_from: list[Objective] = []
    screen_seeds: list[int] | None = None
    grid: dict[str, list[Any]] = {}
    seeds: list[int] = [0]
    teachers: TeacherKind = "one"
    teacher_seed: int = 0
    teacher_seeds: list[int] = [0, 1, 2]
    folds: int = Field(3, ge=2, le=20)
    splits: Literal["fixed", "per_seed"] = "fixed"
    budget_check: bool = False
    # student runs trained at once, each in a process of its own (train.threads threads each); how
    # runs are scheduled, never their numbers (a pool's runs equal a serial run's, test_sweep)
    workers: int = Field(1, ge=1, le=256)
    teacher_ckpt: str | list[str] | None = None

    @field_validator("seeds", "teacher_seeds")
    @classmethod
    def _seeds(cls, v: list[int]) -> list[int]:
        if not v or any(s < 0 for s in v) or len(set(v)) != len(v):
            raise ValueError("must be a non-empty list of distinct integers >= 0, e.g. [0, 1, 2]")
        return v


def build_study(d: dict[str, Any], where: str = "the study") -> Study:
    """Validate a study document, naming the first bad field in one sentence."""
    try:
        return Study.model_validate(d)
    except ValidationError as e:
        err = e.errors()[0]
        loc = ".".join(str(x) for x in err["loc"])
        raise GeodistillError(f"In {where}, field {loc!r} is invalid: {err['msg']}.") from None


def updated(study: Study, where: str = "the study", **fields: Any) -> Study:
    """``study`` with some fields replaced, validated again (objectives keep what they give)."""
    d = study.model_dump()
    for key in ("objectives", "choose_from"):  # what each objective gives, not its defaults
        d[key] = [o.model_dump(exclude_unset=True) for o in getattr(study, key)]
    return build_study({**d, **fields}, where=where)


def role_spec(study: Study, role: str) -> dict[str, Any]:
    """The config dict of a ``role`` ('teacher' or 'student') before the run's own coordinates."""
    user = {k: v for k, v in study.overrides.items() if k not in ("teacher", "student")}
    layers = [study.base, getattr(study, role), user, study.overrides.get(role) or {}]
    out: dict[str, Any] = {}
    for layer in layers:
        out = deep_merge(out, copy.deepcopy(layer))
    return out


def recipe_names() -> list[str]:
    """The recipes shipped with geodistill."""
    files = resources.files("geodistill.config").joinpath("recipes").iterdir()
    return sorted(f.name.removesuffix(".yaml") for f in files if f.name.endswith(".yaml"))


def load_recipe(name: str) -> Study:
    """The shipped recipe ``name`` as a `Study`, or one sentence listing the names."""
    if name not in recipe_names():
        raise GeodistillError(f"Recipe {name!r} is unknown; choose one of {', '.join(recipe_names())}.")
    text = resources.files("geodistill.config").joinpath("recipes", f"{name}.yaml").read_text(encoding="utf-8")
    return build_study(yaml.safe_load(text) or {}, where=f"recipe {name}")
