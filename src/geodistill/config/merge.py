"""Config dicts: merged in layers, overridden by ``key=value`` strings, read from YAML files."""

from __future__ import annotations

import copy
from pathlib import Path
from typing import Any

import yaml

from geodistill.core.errors import GeodistillError


def _set_dotted(d: dict, dotted: str, value: Any) -> None:
    keys = dotted.split(".")
    for k in keys[:-1]:
        d = d.setdefault(k, {})
    d[keys[-1]] = value


def deep_merge(base: dict, over: dict) -> dict:
    """Recursive dict merge; ``over`` wins."""
    out = copy.deepcopy(base)
    for k, v in over.items():
        if isinstance(v, dict) and isinstance(out.get(k), dict):
            out[k] = deep_merge(out[k], v)
        else:
            out[k] = copy.deepcopy(v)
    return out


def parse_overrides(items: list[str]) -> dict:
    """``["train.lr=0.01", "data.size=64"]`` -> nested dict, values parsed as YAML scalars."""
    out: dict = {}
    for item in items:
        if "=" not in item:
            raise GeodistillError(f"Override {item!r} is not of the form section.key=value (e.g. train.lr=0.01).")
        key, raw = item.split("=", 1)
        _set_dotted(out, key.strip(), yaml.safe_load(raw))
    return out


def yaml_error_place(e: yaml.YAMLError) -> str:
    """'at line 3, column 7 (mapping values are not allowed here); fix that line' for a YAML error."""
    mark = getattr(e, "problem_mark", None)
    problem = getattr(e, "problem", None) or str(e).splitlines()[0]
    if mark is None:
        return f"({problem}); fix it"
    return f"at line {mark.line + 1}, column {mark.column + 1} ({problem}); fix that line"


def load_yaml(path: str | Path) -> dict:
    """Read a YAML config file into a dict, with a clear error when it is missing or malformed."""
    p = Path(path)
    if not p.is_file():
        raise GeodistillError(f"Config file {p} does not exist; pass the path of a YAML file.")
    try:
        d = yaml.safe_load(p.read_text()) or {}
    except yaml.YAMLError as e:
        raise GeodistillError(f"Config file {p} is not valid YAML {yaml_error_place(e)}.") from None
    if not isinstance(d, dict):
        raise GeodistillError(f"Config file {p} must hold a mapping (section: {{key: value}}), not {type(d).__name__}.")
    return d


def first_difference(planned: dict, stored: dict, skip: tuple[str, ...] = (), prefix: str = "") -> str | None:
    """The first dotted key whose ``planned`` value differs from ``stored`` (say 'train.lr: 0.003
    planned, 0.01 stored'), or None. Keys ``stored`` lacks (an older run), values planned as
    'auto' (resolved when the run trained) and the dotted keys in ``skip`` are not differences."""
    for k, v in planned.items():
        if k not in stored or v == "auto" or f"{prefix}{k}" in skip:
            continue
        if isinstance(v, dict) and isinstance(stored[k], dict):
            found = first_difference(v, stored[k], skip, f"{prefix}{k}.")
            if found:
                return found
        elif v != stored[k]:
            return f"{prefix}{k}: {v!r} planned, {stored[k]!r} stored"
    return None
