"""The loss-term registry and the spec grammar.

A term is registered once, next to its pure function, by decorating a small wrapper::

    @term("kl", label="KL", params={"T": 4.0}, needs=("t_logits",), show=("T",))
    def _kl(inp: LossInputs, T: float) -> Tensor:
        return kl(inp.s_logits, inp.t_logits, T)

Spec grammar: ``term ('+' term)*`` with ``term = name[:weight][@key=value,key=value...]``, e.g.
``"ce:0.7 + kl:0.3@T=4 + cos_feat:0.3 + nuc:0.01"`` (a missing weight means 1).
"""

from __future__ import annotations

import math
import re
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any

from torch import Tensor

from geodistill.core.errors import GeodistillError


@dataclass
class LossInputs:
    """What one training step hands to the objective."""

    s_logits: Tensor
    target: Tensor
    t_logits: Tensor | None = None
    s_feat: Tensor | None = None
    t_feat: Tensor | None = None
    first_weight: Tensor | None = None


TermFn = Callable[..., Tensor]  # (inp: LossInputs, **params) -> scalar tensor


@dataclass(frozen=True)
class TermDef:
    """How a term is computed and displayed: ``fn(inp, **params)``, its label in formulas, its
    parameters with defaults, the `LossInputs` fields it reads besides ``s_logits``, the params
    written in spec/formula even at their default, an optional formula label built from the
    params, and whether ``s_feat`` goes through the objective's learned projector first."""

    name: str
    fn: TermFn
    label: str
    params: tuple[tuple[str, float], ...]
    needs: tuple[str, ...]
    always_show: tuple[str, ...] = ()
    formula_label: Callable[[Mapping[str, float]], str] | None = None
    projects_features: bool = False
    prose: str | None = None  # the name in sentences ('soft CE'); the label when None

    @property
    def needs_teacher(self) -> bool:
        return bool(set(self.needs) & {"t_logits", "t_feat"})

    @property
    def needs_features(self) -> bool:
        return bool(set(self.needs) & {"s_feat", "t_feat"})

    @property
    def needs_first_weight(self) -> bool:
        return "first_weight" in self.needs


TERMS: dict[str, TermDef] = {}
_GREEK = {"alpha": "α", "beta": "β", "gamma": "γ"}
_NAME = re.compile(r"^[a-z_]+$")


def term(
    name: str,
    *,
    label: str,
    params: Mapping[str, float] | None = None,
    needs: tuple[str, ...] = (),
    show: tuple[str, ...] = (),
    formula_label: Callable[[Mapping[str, float]], str] | None = None,
    projects_features: bool = False,
    prose: str | None = None,
) -> Callable[[TermFn], TermFn]:
    """Decorator registering ``fn(inp: LossInputs, **params) -> Tensor`` as term ``name``."""

    def register(fn: TermFn) -> TermFn:
        if not _NAME.match(name):
            raise GeodistillError(f"objective term name '{name}' must be lower-case letters and '_' (spec grammar).")
        if name in TERMS:
            raise GeodistillError(f"objective term '{name}' is registered twice; pick another name.")
        TERMS[name] = TermDef(
            name, fn, label, tuple((params or {}).items()), tuple(needs), show, formula_label, projects_features, prose
        )
        return fn

    return register


def unregister_term(name: str) -> None:
    """Remove term ``name`` from the registry (for tests and plug-ins that clean up)."""
    TERMS.pop(name, None)


def get_term(name: str) -> TermDef:
    """The registered term ``name``, or a one-sentence error naming the known ones."""
    if name not in TERMS:
        raise GeodistillError(f"objective term '{name}' is unknown; choose one of {', '.join(TERMS)}.")
    return TERMS[name]


def _round(x: float) -> float:
    """Round to 12 significant digits so ``float(format(x, '.12g')) == x`` (spec round trip)."""
    return float(f"{x:.12g}")


def _fmt(x: float) -> str:
    return f"{x:.12g}"


@dataclass(frozen=True)
class Term:
    """One named, weighted term; ``params`` holds every parameter (defaults filled in)."""

    name: str
    weight: float
    params: tuple[tuple[str, float], ...] = ()

    @property
    def p(self) -> dict[str, float]:
        return dict(self.params)

    @property
    def active(self) -> bool:
        return self.weight > 0

    @property
    def definition(self) -> TermDef:
        return get_term(self.name)

    def _shown(self) -> list[tuple[str, float]]:
        d = self.definition
        defaults = dict(d.params)
        return [(k, v) for k, v in self.params if k in d.always_show or v != defaults[k]]

    def spec(self) -> str:
        shown = self._shown()
        extra = "@" + ",".join(f"{k}={_fmt(v)}" for k, v in shown) if shown else ""
        return f"{self.name}:{_fmt(self.weight)}{extra}"

    def formula(self) -> str:
        d, shown = self.definition, self._shown()
        if d.formula_label is not None:
            label = d.formula_label(self.p)
        elif shown:
            label = d.label + "(" + ", ".join(f"{_GREEK.get(k, k)}={v:g}" for k, v in shown) + ")"
        else:
            label = d.label
        return f"{self.weight:g}·{label}"


def _check_values(name: str, weight: float, values: dict[str, float]) -> None:
    """Range rules by parameter name: finite; T > 0; ls in [0, 1); alpha/beta/gamma >= 0."""
    if not math.isfinite(weight) or weight < 0:
        raise GeodistillError(f"objective term '{name}': weight must be finite and >= 0, got {weight}.")
    for k, v in values.items():
        if not math.isfinite(v):
            raise GeodistillError(f"objective term '{name}': {k} must be finite, got {v}.")
    if "T" in values and values["T"] <= 0:
        raise GeodistillError(f"objective term '{name}': temperature T must be > 0, got {values['T']}.")
    if "ls" in values and not 0 <= values["ls"] < 1:
        raise GeodistillError(f"objective term '{name}': label smoothing ls must be in [0, 1), got {values['ls']}.")
    for k in ("alpha", "beta", "gamma"):
        if k in values and values[k] < 0:
            raise GeodistillError(f"objective term '{name}': {k} must be >= 0, got {values[k]}.")


def make_term(name: str, weight: float = 1.0, **params: Any) -> Term:
    """Validate and build a `Term` (unknown names/params, weight finite >= 0, T > 0, ...)."""
    defaults = dict(get_term(name).params)
    for key in params:
        if key not in defaults:
            allowed = ", ".join(defaults) or "none"
            raise GeodistillError(f"objective term '{name}' has no parameter '{key}' (allowed: {allowed}).")
    try:
        weight = float(weight)
        values = {k: float(params.get(k, v)) for k, v in defaults.items()}
    except (TypeError, ValueError) as exc:
        raise GeodistillError(f"objective term '{name}': weight and parameters must be numbers ({exc}).") from exc
    _check_values(name, weight, values)
    return Term(name, _round(weight), tuple((k, _round(v)) for k, v in values.items()))


def _parse_params(name: str, tail: str) -> dict[str, str]:
    params: dict[str, str] = {}
    for kv in tail.split(","):
        key, eq, val = kv.partition("=")
        if not eq or not key.strip() or not val.strip():
            raise GeodistillError(f"objective term '{name}': cannot read parameter '{kv.strip()}'; write key=value.")
        if key.strip() in params:
            raise GeodistillError(f"objective term '{name}' sets '{key.strip()}' twice.")
        params[key.strip()] = val.strip()
    return params


def parse_spec(spec: str) -> list[Term]:
    """Parse ``"ce:0.7 + kl:0.3@T=4"`` into terms (see module docstring for the grammar)."""
    if not isinstance(spec, str) or not spec.strip():
        raise GeodistillError("objective spec is empty; write e.g. 'ce:0.7 + kl:0.3@T=4'.")
    terms = []
    for raw in spec.split("+"):
        part = raw.strip()
        if not part:
            raise GeodistillError(f"objective spec '{spec}' has an empty term (check the '+' signs).")
        head, _, tail = part.partition("@")
        name, colon, weight = head.partition(":")
        name = name.strip()
        if not _NAME.match(name):
            raise GeodistillError(
                f"objective spec '{spec}': cannot read term '{part}'; write name[:weight][@key=value,...]."
            )
        if colon and not weight.strip():
            raise GeodistillError(f"objective term '{name}' has ':' but no weight.")
        params = _parse_params(name, tail) if tail.strip() or "@" in part else {}
        weight_value: Any = weight.strip() if colon else 1.0
        terms.append(make_term(name, weight_value, **params))
    return terms
