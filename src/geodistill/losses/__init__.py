"""Distillation losses: pure functions (`functional`) and the `Objective` that combines them."""

from .functional import ce, cosine, dist, dkd, kl, nuclear_norm, soft_ce
from .objective import PRESETS, LossInputs, Objective, Term, list_presets, make_term, parse_spec

__all__ = [
    "PRESETS",
    "LossInputs",
    "Objective",
    "Term",
    "ce",
    "cosine",
    "dist",
    "dkd",
    "kl",
    "list_presets",
    "make_term",
    "nuclear_norm",
    "parse_spec",
    "soft_ce",
]
