"""`Objective`: a weighted sum of named loss terms that prints its own formula.

Spec grammar: ``term ('+' term)*`` with ``term = name[:weight][@key=value,key=value...]``, e.g.
``"ce:0.7 + kl:0.3@T=4 + cos_feat:0.3 + nuc:0.01"`` (a missing weight means 1).

Terms (parameters and defaults in brackets):
  ce [ls=0]          hard-label cross-entropy with label smoothing ls
  kl [T=4]           T^2 KL(p_t^T || p_s^T)
  soft_ce [T=4]      T^2 * soft-target cross-entropy (the thesis's form)
  cos_logits         1 - cos(s_logits, t_logits)
  cos_prob [T=1]     1 - cos(p_s^T, p_t^T)
  cos_feat           1 - cos(P s_feat, t_feat), P a learned linear projector when widths differ
  nuc                nuclear norm of the student's first-layer weight
  dkd [alpha=1, beta=8, T=4]    Decoupled KD
  dist [beta=1, gamma=1, T=1]   DIST
Terms with weight 0 are kept (so α sweeps keep one spec shape) but are inactive: they add
nothing, need no inputs, and are logged only when their inputs happen to be present.
"""

from __future__ import annotations

import math
import re
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass
from typing import Any

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from ..errors import GeodistillError
from . import functional as LF


@dataclass
class LossInputs:
    """What one training step hands to the objective."""

    s_logits: Tensor
    target: Tensor
    t_logits: Tensor | None = None
    s_feat: Tensor | None = None
    t_feat: Tensor | None = None
    first_weight: Tensor | None = None


@dataclass(frozen=True)
class TermDef:
    """How a term is computed and displayed."""

    label: str
    params: tuple[tuple[str, float], ...]  # (name, default)
    needs: tuple[str, ...]  # LossInputs fields it reads besides s_logits
    always_show: tuple[str, ...]  # params written in spec/formula even at default


TERMS: dict[str, TermDef] = {
    "ce": TermDef("CE", (("ls", 0.0),), ("target",), ()),
    "kl": TermDef("KL", (("T", 4.0),), ("t_logits",), ("T",)),
    "soft_ce": TermDef("softCE", (("T", 4.0),), ("t_logits",), ("T",)),
    "cos_logits": TermDef("cos(logits)", (), ("t_logits",), ()),
    "cos_prob": TermDef("cos(p)", (("T", 1.0),), ("t_logits",), ("T",)),
    "cos_feat": TermDef("cos(feat)", (), ("s_feat", "t_feat"), ()),
    "nuc": TermDef("‖W₁‖*", (), ("first_weight",), ()),
    "dkd": TermDef("DKD", (("alpha", 1.0), ("beta", 8.0), ("T", 4.0)), ("t_logits", "target"), ("alpha", "beta", "T")),
    "dist": TermDef("DIST", (("beta", 1.0), ("gamma", 1.0), ("T", 1.0)), ("t_logits",), ("beta", "gamma", "T")),
}
_GREEK = {"alpha": "α", "beta": "β", "gamma": "γ"}
_NAME = re.compile(r"^[a-z_]+$")


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

    def spec(self) -> str:
        d = TERMS[self.name]
        defaults = dict(d.params)
        shown = [(k, v) for k, v in self.params if k in d.always_show or v != defaults[k]]
        extra = "@" + ",".join(f"{k}={_fmt(v)}" for k, v in shown) if shown else ""
        return f"{self.name}:{_fmt(self.weight)}{extra}"

    def formula(self) -> str:
        d = TERMS[self.name]
        defaults = dict(d.params)
        shown = [(k, v) for k, v in self.params if k in d.always_show or v != defaults[k]]
        if self.name == "cos_prob":
            label = f"cos(p, T={self.p['T']:g})"
        elif shown:
            label = d.label + "(" + ", ".join(f"{_GREEK.get(k, k)}={v:g}" for k, v in shown) + ")"
        else:
            label = d.label
        return f"{self.weight:g}·{label}"


def make_term(name: str, weight: float = 1.0, **params: Any) -> Term:
    """Validate and build a `Term` (unknown names/params, weight finite >= 0, T > 0, ...)."""
    if name not in TERMS:
        raise GeodistillError(f"objective term '{name}' is unknown; choose one of {', '.join(TERMS)}.")
    d = TERMS[name]
    defaults = dict(d.params)
    for key in params:
        if key not in defaults:
            allowed = ", ".join(defaults) or "none"
            raise GeodistillError(f"objective term '{name}' has no parameter '{key}' (allowed: {allowed}).")
    try:
        weight = float(weight)
        values = {k: float(params.get(k, v)) for k, v in defaults.items()}
    except (TypeError, ValueError) as exc:
        raise GeodistillError(f"objective term '{name}': weight and parameters must be numbers ({exc}).") from exc
    if not math.isfinite(weight) or weight < 0:
        raise GeodistillError(f"objective term '{name}': weight must be finite and >= 0, got {weight}.")
    for k, v in values.items():
        if not math.isfinite(v):
            raise GeodistillError(f"objective term '{name}': {k} must be finite, got {v}.")
    if "T" in values and values["T"] <= 0:
        raise GeodistillError(f"objective term '{name}': temperature T must be > 0, got {values['T']}.")
    if name == "ce" and not 0 <= values["ls"] < 1:
        raise GeodistillError(f"objective term 'ce': label smoothing ls must be in [0, 1), got {values['ls']}.")
    for k in ("alpha", "beta", "gamma"):
        if k in values and values[k] < 0:
            raise GeodistillError(f"objective term '{name}': {k} must be >= 0, got {values[k]}.")
    return Term(name, _round(weight), tuple((k, _round(v)) for k, v in values.items()))


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
        params: dict[str, str] = {}
        if tail.strip() or "@" in part:
            for kv in tail.split(","):
                key, eq, val = kv.partition("=")
                if not eq or not key.strip() or not val.strip():
                    raise GeodistillError(
                        f"objective term '{name}': cannot read parameter '{kv.strip()}'; write key=value."
                    )
                if key.strip() in params:
                    raise GeodistillError(f"objective term '{name}' sets '{key.strip()}' twice.")
                params[key.strip()] = val.strip()
        weight_value: Any = weight.strip() if colon else 1.0
        terms.append(make_term(name, weight_value, **params))
    return terms


class Objective(nn.Module):
    """``L = sum_j w_j * term_j`` over named terms; ``forward`` returns ``(total, raw terms)``.

    Attributes: ``terms`` (tuple of `Term`), ``needs_teacher``, ``needs_features``,
    ``needs_first_weight`` (over active terms, i.e. weight > 0), ``projector`` (the learned
    ``s_dim -> t_dim`` linear map for ``cos_feat``; identity when widths agree or are unknown).
    """

    def __init__(self, terms: Iterable[Term], s_dim: int | None = None, t_dim: int | None = None) -> None:
        super().__init__()
        self.terms: tuple[Term, ...] = tuple(terms)
        if not self.terms:
            raise GeodistillError("objective has no terms; write e.g. 'ce:1'.")
        names = [t.name for t in self.terms]
        for n in names:
            if names.count(n) > 1:
                raise GeodistillError(f"objective term '{n}' appears twice; merge the weights.")
        if not any(t.active for t in self.terms):
            raise GeodistillError(f"objective '{self.spec}' has no term with a weight > 0.")
        needs = {f for t in self.terms if t.active for f in TERMS[t.name].needs}
        self.needs_teacher = bool(needs & {"t_logits", "t_feat"})
        self.needs_features = bool(needs & {"s_feat", "t_feat"})
        self.needs_first_weight = "first_weight" in needs
        self.s_dim, self.t_dim = s_dim, t_dim
        if "cos_feat" in names and s_dim and t_dim and s_dim != t_dim:
            self.projector: nn.Module = nn.Linear(s_dim, t_dim, bias=False)
        else:
            self.projector = nn.Identity()

    # ----- construction -------------------------------------------------------------------
    @classmethod
    def parse(cls, spec: str, s_dim: int | None = None, t_dim: int | None = None) -> Objective:
        """Build from a spec string such as ``"ce:0.7 + kl:0.3@T=4"``."""
        return cls(parse_spec(spec), s_dim=s_dim, t_dim=t_dim)

    @classmethod
    def from_config(
        cls,
        cfg: str | Mapping[str, Any] | Iterable[Mapping[str, Any]],
        s_dim: int | None = None,
        t_dim: int | None = None,
    ) -> Objective:
        """From a spec string, a mapping ``{name: weight | {weight: w, **params}}`` or a list
        of ``{name: ..., weight: ..., **params}`` mappings."""
        if isinstance(cfg, str):
            return cls.parse(cfg, s_dim, t_dim)
        if isinstance(cfg, Mapping):
            items = [{"name": k, **(v if isinstance(v, Mapping) else {"weight": v})} for k, v in cfg.items()]
        else:
            items = [dict(c) for c in cfg]
        terms = []
        for item in items:
            if "name" not in item:
                raise GeodistillError(f"objective config entry {item} has no 'name'.")
            name = item.pop("name")
            terms.append(make_term(str(name), item.pop("weight", 1.0), **item))
        return cls(terms, s_dim=s_dim, t_dim=t_dim)

    @classmethod
    def thesis(cls, alpha: float, beta: float | None = None, T: float = 4.0, label_smoothing: float = 0.0) -> Objective:
        """The thesis: ``α·softCE(T) + (1−α)·CE + β·‖W₁‖*``, with ``β = α`` when beta is None."""
        return cls.preset("thesis", alpha=alpha, beta=beta, T=T, label_smoothing=label_smoothing)

    @classmethod
    def preset(
        cls,
        name: str,
        *,
        alpha: float = 0.5,
        beta: float | None = None,
        T: float = 4.0,
        s_dim: int | None = None,
        t_dim: int | None = None,
        label_smoothing: float = 0.0,
    ) -> Objective:
        """A named recipe from `PRESETS` (see there for each formula); ``label_smoothing`` goes
        to the CE term."""
        if name not in _BUILDERS:
            raise GeodistillError(f"objective preset '{name}' is unknown; choose one of {', '.join(PRESETS)}.")
        terms = _BUILDERS[name](_check_alpha(alpha), beta, T)
        if label_smoothing:
            terms = [make_term("ce", t.weight, ls=label_smoothing) if t.name == "ce" else t for t in terms]
        return cls(terms, s_dim=s_dim, t_dim=t_dim)

    # ----- description ----------------------------------------------------------------------
    @property
    def spec(self) -> str:
        """The spec string; ``Objective.parse(obj.spec)`` rebuilds the same terms."""
        return " + ".join(t.spec() for t in self.terms)

    def __str__(self) -> str:
        return "L = " + " + ".join(t.formula() for t in self.terms)

    def extra_repr(self) -> str:
        return repr(self.spec)

    # ----- computation ----------------------------------------------------------------------
    def _term_value(self, term: Term, inp: LossInputs) -> Tensor:
        p, s = term.p, inp.s_logits
        if term.name == "ce":
            return LF.ce(s, inp.target, label_smoothing=p["ls"])
        if term.name == "kl":
            return LF.kl(s, inp.t_logits, p["T"])
        if term.name == "soft_ce":
            return LF.soft_ce(s, inp.t_logits, p["T"])
        if term.name == "cos_logits":
            return LF.cosine(s, inp.t_logits)
        if term.name == "cos_prob":
            t = inp.t_logits.detach().to(s.dtype)
            return LF.cosine(F.softmax(s / p["T"], dim=1), F.softmax(t / p["T"], dim=1))
        if term.name == "cos_feat":
            s_feat = inp.s_feat
            if isinstance(self.projector, nn.Identity) and s_feat.shape[1:] != inp.t_feat.shape[1:]:
                raise GeodistillError(
                    f"objective term 'cos_feat': student features have {s_feat.shape[1]} dims "
                    f"and teacher features {inp.t_feat.shape[1]}; pass s_dim and t_dim to the "
                    "Objective so it learns a projector."
                )
            weight = getattr(self.projector, "weight", None)
            if isinstance(weight, Tensor):  # a float16/bf16 student still meets an fp32 projector
                s_feat = s_feat.to(weight.dtype)
            return LF.cosine(self.projector(s_feat), inp.t_feat)
        if term.name == "nuc":
            return LF.nuclear_norm(inp.first_weight)
        if term.name == "dkd":
            return LF.dkd(s, inp.t_logits, inp.target, p["alpha"], p["beta"], p["T"])
        if term.name == "dist":
            return LF.dist(s, inp.t_logits, p["beta"], p["gamma"], p["T"])
        raise AssertionError(term.name)  # unreachable: names are validated in make_term

    def forward(self, inp: LossInputs) -> tuple[Tensor, dict[str, Tensor]]:
        """``(total, {term name: raw unweighted value, detached})``."""
        total: Tensor | None = None
        raw: dict[str, Tensor] = {}
        for term in self.terms:
            missing = [f for f in TERMS[term.name].needs if getattr(inp, f) is None]
            if missing:
                if term.active:
                    raise GeodistillError(f"objective term '{term.name}' needs LossInputs.{missing[0]} but it is None.")
                continue
            if term.active:
                value = self._term_value(term, inp)
                total = term.weight * value if total is None else total + term.weight * value
            else:
                with torch.no_grad():
                    value = self._term_value(term, inp)
            raw[term.name] = value.detach()
        assert total is not None  # at least one active term (checked in __init__)
        return total, raw


def _check_alpha(alpha: float) -> float:
    try:
        a = float(alpha)
    except (TypeError, ValueError) as exc:
        raise GeodistillError(f"objective alpha must be a number in [0, 1], got {alpha!r}.") from exc
    if not 0.0 <= a <= 1.0:
        raise GeodistillError(f"objective alpha must be in [0, 1], got {alpha}.")
    return a


_Builder = Callable[[float, "float | None", float], list[Term]]
_BUILDERS: dict[str, _Builder] = {
    "student": lambda a, b, T: [make_term("ce", 1.0)],
    "kl": lambda a, b, T: [make_term("ce", 1 - a), make_term("kl", a, T=T)],
    "cos": lambda a, b, T: [make_term("ce", 1 - a), make_term("cos_logits", a)],
    "kl+cos": lambda a, b, T: [
        make_term("ce", 1 - a),
        make_term("kl", a, T=T),
        make_term("cos_logits", a if b is None else b),
    ],
    "thesis": lambda a, b, T: [
        make_term("soft_ce", a, T=T),
        make_term("ce", 1 - a),
        make_term("nuc", a if b is None else b),
    ],
    "dkd": lambda a, b, T: [make_term("ce", 1.0), make_term("dkd", 1.0, T=T)],
    "dist": lambda a, b, T: [make_term("ce", 1.0), make_term("dist", 1.0, T=T)],
}

PRESETS: dict[str, str] = {
    "student": "CE only: the student trained alone (alpha, beta, T unused).",
    "kl": "(1−α)·CE + α·KL(T): Hinton distillation.",
    "cos": "(1−α)·CE + α·cos(logits): cosine similarity between student and teacher logits.",
    "kl+cos": "(1−α)·CE + α·KL(T) + β·cos(logits), β = α if not given: the paper's hard CE + KL + cosine similarity.",
    "thesis": "α·softCE(T) + (1−α)·CE + β·‖W₁‖*, β = α if not given: the thesis objective.",
    "dkd": "CE + DKD(α=1, β=8, T): Decoupled KD with the paper's weights (alpha, beta unused; "
    "write a spec to change them).",
    "dist": "CE + DIST(β=1, γ=1, T): DIST with the paper's weights (alpha, beta unused; write a spec to change them).",
}


def list_presets() -> list[str]:
    """Names accepted by `Objective.preset`."""
    return list(PRESETS)
