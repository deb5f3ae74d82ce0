"""`Objective`: a weighted sum of named loss terms that prints its own formula.

Spec grammar (see `terms`): ``term ('+' term)*`` with ``term = name[:weight][@key=value,...]``,
e.g. ``"ce:0.7 + kl:0.3@T=4 + cos_feat:0.3 + nuc:0.01"`` (a missing weight means 1).

Terms (parameters and defaults in brackets; each registered next to its pure function):
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

import dataclasses
from collections.abc import Iterable, Mapping
from typing import Any

import torch
from torch import Tensor, nn

from geodistill.core.errors import GeodistillError

from .presets import PRESETS, check_alpha, get_preset, list_presets
from .terms import LossInputs, Term, get_term, make_term, parse_spec


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
        needs = {f for t in self.terms if t.active for f in get_term(t.name).needs}
        self.needs_teacher = bool(needs & {"t_logits", "t_feat"})
        self.needs_features = bool(needs & {"s_feat", "t_feat"})
        self.needs_first_weight = "first_weight" in needs
        self.s_dim, self.t_dim = s_dim, t_dim
        if any(get_term(n).projects_features for n in names) and s_dim and t_dim and s_dim != t_dim:
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
        to every term with an ``ls`` parameter (the CE term)."""
        preset = get_preset(name)
        if preset is None:
            raise GeodistillError(f"objective preset '{name}' is unknown; choose one of {', '.join(PRESETS)}.")
        terms = preset.terms(check_alpha(alpha), beta, T)
        if label_smoothing:
            terms = [_with_smoothing(t, label_smoothing) for t in terms]
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
    def _project(self, inp: LossInputs) -> LossInputs:
        """``inp`` with ``s_feat`` mapped by the learned projector (for feature terms)."""
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
        return dataclasses.replace(inp, s_feat=self.projector(s_feat))

    def _term_value(self, term: Term, inp: LossInputs) -> Tensor:
        d = get_term(term.name)
        return d.fn(self._project(inp) if d.projects_features else inp, **term.p)

    def forward(self, inp: LossInputs) -> tuple[Tensor, dict[str, Tensor]]:
        """``(total, {term name: raw unweighted value, detached})``."""
        total: Tensor | None = None
        raw: dict[str, Tensor] = {}
        for term in self.terms:
            missing = [f for f in get_term(term.name).needs if getattr(inp, f) is None]
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


def _with_smoothing(term: Term, ls: float) -> Term:
    """``term`` with label smoothing ``ls`` where it has an ``ls`` parameter."""
    return make_term(term.name, term.weight, **dict(term.p, ls=ls)) if "ls" in term.p else term


__all__ = ["PRESETS", "LossInputs", "Objective", "Term", "list_presets", "make_term", "parse_spec"]
