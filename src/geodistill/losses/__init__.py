"""Distillation losses: pure functions registered as terms (`functional`, `terms`), named
recipes (`presets`) and the `Objective` that combines terms."""

from .functional import ce as ce
from .functional import cosine as cosine
from .functional import dist as dist
from .functional import dkd as dkd
from .functional import kl as kl
from .functional import mse as mse
from .functional import nuclear_norm as nuclear_norm
from .functional import soft_ce as soft_ce
from .objective import Objective
from .presets import (
    PRESETS,
    Preset,
    get_preset,
    list_presets,
    loss_coords,
    loss_fragment,
    loss_hyper_keys,
    loss_label,
    loss_needs_teacher,
    loss_prose,
    loss_terms,
    register_preset,
    safe_name,
    unregister_preset,
)
from .terms import TERMS, LossInputs, Term, TermDef, get_term, make_term, parse_spec, term, unregister_term

__all__ = [
    "PRESETS",
    "TERMS",
    "LossInputs",
    "Objective",
    "Preset",
    "Term",
    "TermDef",
    "get_preset",
    "get_term",
    "list_presets",
    "loss_coords",
    "loss_fragment",
    "loss_hyper_keys",
    "loss_label",
    "loss_needs_teacher",
    "loss_prose",
    "loss_terms",
    "make_term",
    "parse_spec",
    "register_preset",
    "safe_name",
    "term",
    "unregister_preset",
    "unregister_term",
]
