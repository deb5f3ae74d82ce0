"""Sweeps as studies: α/β/T/loss/teacher-set grids and the loss ablation, compiled into a `Study`.

A sweep description (``--file``, or the command line's flags) holds ``recipe`` (a named recipe
under everything else; none if absent), ``base`` (the user's config layer; its ``teacher`` /
``student`` sub-sections apply to one role only), ``teacher``, ``student``, ``datasets``,
``grid`` (field -> values, a Cartesian product), ``ablation`` (every registered preset, with the
recipe's α/β/T where it lists that loss), ``seeds``, and any other `Study` field (``teachers``:
a sweep's distilled points read one teacher per seed unless it says otherwise; ``teacher_seeds``,
``folds``, ``splits``, ``budget_check``). The points: the student alone, the ablation, the grid.
"""

from __future__ import annotations

import typing
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

import yaml

from geodistill.config.merge import deep_merge, load_yaml
from geodistill.config.study import SWEEPABLE, Objective, Study, TeacherKind, build_study, load_recipe
from geodistill.core.errors import GeodistillError
from geodistill.losses import PRESETS
from geodistill.losses.presets import check_loss

THESIS11 = [round(0.05 * i, 2) for i in range(11)]  # 0, 0.05, ..., 0.5
THESIS5 = [0.1, 0.2, 0.3, 0.4, 0.5]
NAMED_GRIDS = {"thesis11": THESIS11, "thesis5": THESIS5}
TEACHER_KINDS = typing.get_args(TeacherKind)
SWEEP_KEYS = (
    "recipe",
    "base",
    "teacher",
    "student",
    "datasets",
    "grid",
    "ablation",
    "seeds",
    "teachers",
    "teacher_seeds",
    "teacher_seed",
    "folds",
    "splits",
    "budget_check",
)


def _is_num(v: Any) -> bool:
    return isinstance(v, (int, float)) and not isinstance(v, bool)


def _check_values(key: str, values: list, where: str) -> list:
    """Validate one grid axis; returns its values without duplicates (order kept)."""
    if not values:
        raise GeodistillError(f"{where} has no values; give at least one, e.g. alpha=[0.1,0.3].")
    out: list = []
    for v in values:
        if key == "alpha" and not (_is_num(v) and 0 <= v <= 1):
            raise GeodistillError(f"{where}: alpha value {v!r} is not a number in [0, 1].")
        if key == "beta":
            if isinstance(v, str) and v.strip().lower() in ("tied", "alpha", "none", "null"):
                v = None  # β = α (the presets' default)
            if v is not None and not (_is_num(v) and v >= 0):
                raise GeodistillError(f"{where}: beta value {v!r} is not a number >= 0 (or 'tied' for β = α).")
        if key == "T" and not (_is_num(v) and v > 0):
            raise GeodistillError(f"{where}: T value {v!r} is not a number > 0.")
        if key == "teachers" and v not in TEACHER_KINDS:
            raise GeodistillError(f"{where}: teachers value {v!r} is not one of {', '.join(TEACHER_KINDS)}.")
        if key == "loss":
            if not isinstance(v, str) or not v.strip():
                raise GeodistillError(f"{where}: loss value {v!r} is not a preset name or an objective spec string.")
            v = v.strip()
            check_loss(v, where)
        if _is_num(v):
            v = float(v)
        if v not in out:
            out.append(v)
    return out


def _axis(key: str, raw: Any, where: str) -> list:
    if key not in SWEEPABLE:
        raise GeodistillError(f"{where}: {key!r} is not a sweepable field; use {', '.join(SWEEPABLE)}.")
    if isinstance(raw, str) and raw.strip() in NAMED_GRIDS:
        if key != "alpha":
            raise GeodistillError(f"{where}: the named grid {raw.strip()!r} is a list of α values; use it with alpha.")
        return list(NAMED_GRIDS[raw.strip()])
    values = list(raw) if isinstance(raw, (list, tuple)) else [raw]
    return _check_values(key, values, where)


def parse_grid(items: Sequence[str]) -> dict[str, list]:
    """``["alpha=thesis5", "beta=[0,tied]", "T=4"]`` -> ``{"alpha": [0.1, …, 0.5], "beta": [0.0,
    None], "T": [4.0]}``. Named α grids: ``thesis11`` (0, 0.05, …, 0.5) and ``thesis5`` (0.1, …,
    0.5); otherwise a YAML value or list. ``beta`` ``tied`` (or ``null``) means β = α."""

    grid: dict[str, list] = {}
    for item in items:
        where = f"Grid entry {item!r}"
        if "=" not in item:
            raise GeodistillError(f"{where} is not name=values (e.g. alpha=thesis5 or beta=[0,0.001]).")
        key, raw = (s.strip() for s in item.split("=", 1))
        if key in grid:
            raise GeodistillError(f"{where}: {key!r} is given twice; put all its values in one list.")
        if raw in NAMED_GRIDS or key not in SWEEPABLE:
            grid[key] = _axis(key, raw, where)
            continue
        if key == "loss" and not raw.startswith("["):
            grid[key] = _axis(key, raw, where)  # one spec string, which may hold ':' and '@'
            continue
        try:
            value = yaml.safe_load(raw)
        except yaml.YAMLError:
            raise GeodistillError(f"{where}: cannot read {raw!r}; write a list such as [0.1, 0.3].") from None
        grid[key] = _axis(key, value, where)
    return grid


def normalize_grid(grid: Mapping[str, Any], where: str = "the sweep's grid") -> dict[str, list]:
    """A grid mapping (from YAML or Python) checked and expanded like :func:`parse_grid`."""
    if not isinstance(grid, Mapping):
        raise GeodistillError(f"{where} must map field names to lists, e.g. grid: {{alpha: [0.1, 0.3]}}.")
    return {str(k): _axis(str(k), v, f"{where}, field {k!r}") for k, v in grid.items()}


def load_sweep_file(path: str | Path) -> dict:
    """A sweep description from YAML, its keys, seeds and grid checked (the grid expanded)."""
    d = load_yaml(path)
    _check_keys(d, str(path))
    if "grid" in d:
        d["grid"] = normalize_grid(d["grid"] or {}, f"In {path}, grid")
    return d


def _check_keys(sweep: Mapping, where: str) -> None:
    for k in sweep:
        if k not in SWEEP_KEYS:
            raise GeodistillError(f"In {where}, key {k!r} is unknown; use {', '.join(SWEEP_KEYS)}.")
    for k in ("base", "teacher", "student"):
        if sweep.get(k) is not None and not isinstance(sweep[k], Mapping):
            raise GeodistillError(f"In {where}, {k!r} must be a mapping of config sections (data/train/distill).")
    seeds = sweep.get("seeds")
    if seeds is not None:
        seeds = seeds if isinstance(seeds, list) else [seeds]
        if not seeds or not all(isinstance(s, int) and not isinstance(s, bool) and s >= 0 for s in seeds):
            raise GeodistillError(f"In {where}, 'seeds' must be a list of integers >= 0, e.g. [0, 1, 2].")


def ablation(recipe: Study | None) -> list[Objective]:
    """The loss ablation: every registered preset, in registration order, at the α/β/T the
    recipe's objectives (then the methods it chooses from) first give that loss."""
    given: dict[str, Objective] = {}
    for o in [*recipe.objectives, *recipe.choose_from] if recipe else []:
        given.setdefault(o.loss, o)
    out = []
    for name in PRESETS:
        o = given.get(name)
        coords = {k: getattr(o, k) for k in ("alpha", "beta", "T") if o is not None and k in o.model_fields_set}
        out.append(Objective(loss=name, **coords))
    return out


def sweep_study(sweep: Mapping[str, Any], where: str = "the sweep description") -> Study:
    """The `Study` of a sweep description (module docstring); one sentence for a bad key."""
    _check_keys(sweep, where)
    named = sweep.get("recipe")
    recipe = load_recipe(named) if isinstance(named, str) else named  # a name, or a Study
    base = dict(sweep.get("base") or {})
    overrides = deep_merge(base, {r: sweep[r] for r in ("teacher", "student") if sweep.get(r)})
    objectives = [Objective()] + (ablation(recipe) if sweep.get("ablation") else [])
    exclude = {"objectives", "choose_from", "about", "budget_check", "workers"}
    doc = recipe.model_dump(exclude=exclude) if recipe else {}
    doc.update({k: sweep[k] for k in SWEEP_KEYS[8:] if sweep.get(k) is not None})
    doc["teachers"] = sweep.get("teachers") or "per_seed"
    seeds = sweep.get("seeds") if sweep.get("seeds") is not None else doc.get("seeds", [0])
    doc.update(
        overrides=deep_merge(doc.get("overrides") or {}, overrides),
        datasets=sweep.get("datasets"),
        seeds=seeds if isinstance(seeds, list) else [seeds],
        objectives=[o.model_dump(exclude_unset=True) for o in objectives],
        grid=normalize_grid(sweep.get("grid") or {}, f"In {where}, grid"),
    )
    study = build_study(doc, where=where)
    if len(study.objectives) == 1 and not study.grid:
        raise GeodistillError("The sweep has no points; give --grid (e.g. alpha=thesis5) and/or --ablation.")
    return study
