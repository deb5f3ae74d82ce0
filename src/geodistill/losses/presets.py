"""Named objective recipes (presets). Each is one registered `Preset`: its terms as a function
of (α, β, T), which of α/β/T it uses, a description, and the facts and labels that the engine,
sweeps, tables and statistics ask of it. Adding a preset is one ``register_preset(Preset(...))``.
"""

from __future__ import annotations

import hashlib
import re
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any

from geodistill.core.errors import GeodistillError

from .terms import TERMS, Term, get_term, make_term, parse_spec

HYPER = ("alpha", "beta", "T")  # the preset coordinates a config, sweep or results row carries
_TAGS = {"alpha": "a", "beta": "b", "T": "T"}
_PROBE_ALPHA = 0.5  # α at which a preset's structural facts (needs a teacher, ...) are read

Builder = Callable[[float, "float | None", float], list[Term]]


def _value(v: Any) -> str:
    return "tied" if v is None else format(v, "g")


@dataclass(frozen=True)
class Preset:
    """A named objective: ``build(alpha, beta, T) -> terms``; ``uses``: which of α/β/T change
    it (the others are not recorded in its sweep points); ``about``: one line for humans;
    ``prose``: its name in sentences ('the thesis objective')."""

    name: str
    build: Builder
    uses: tuple[str, ...]
    about: str
    prose: str

    def terms(self, alpha: float = _PROBE_ALPHA, beta: float | None = None, T: float = 4.0) -> list[Term]:
        """The terms at (α, β, T); ``beta=None`` means the preset's default (β = α where it uses β)."""
        return self.build(alpha, beta, T)

    def _needs(self) -> set[str]:
        return {f for t in self.terms() if t.active for f in get_term(t.name).needs}

    @property
    def needs_teacher(self) -> bool:
        """Whether it reads the teacher (at a generic α; α = 0 may switch the teacher off)."""
        return bool(self._needs() & {"t_logits", "t_feat"})

    @property
    def needs_features(self) -> bool:
        return bool(self._needs() & {"s_feat", "t_feat"})

    @property
    def needs_first_weight(self) -> bool:
        return "first_weight" in self._needs()

    def coords(self, combo: Mapping[str, Any]) -> dict[str, Any]:
        """The α/β/T entries of ``combo`` this preset uses."""
        return {k: combo[k] for k in HYPER if k in combo and k in self.uses}

    def row_label(self, combo: Mapping[str, Any]) -> str:
        """Table-row label: ``kl+cos alpha=0.7 beta=0.1 T=4``."""
        return " ".join([self.name] + [f"{k}={_value(v)}" for k, v in self.coords(combo).items()])

    def fragment(self, combo: Mapping[str, Any], keys: tuple[str, ...] = HYPER) -> str:
        """Folder-name fragment: ``kl_cos-a0.3-b0.1-T4`` (only the ``keys`` it uses)."""
        used = self.coords(combo)
        return self.name.replace("+", "_") + "".join(f"-{_TAGS[k]}{_value(used[k])}" for k in keys if k in used)


PRESETS: dict[str, Preset] = {}


def register_preset(preset: Preset) -> Preset:
    """Add ``preset`` under its name (an error if the name is taken)."""
    if preset.name in PRESETS:
        raise GeodistillError(f"objective preset '{preset.name}' is registered twice; pick another name.")
    PRESETS[preset.name] = preset
    return preset


def unregister_preset(name: str) -> None:
    """Remove preset ``name`` (for tests and plug-ins that clean up)."""
    PRESETS.pop(name, None)


def get_preset(name: str) -> Preset | None:
    """The preset called ``name``, or None (the loss is then an objective spec string)."""
    return PRESETS.get(name)


def list_presets() -> list[str]:
    """Names accepted by `Objective.preset`."""
    return list(PRESETS)


def check_alpha(alpha: float) -> float:
    """α as a float in [0, 1], or a one-sentence error."""
    try:
        a = float(alpha)
    except (TypeError, ValueError) as exc:
        raise GeodistillError(f"objective alpha must be a number in [0, 1], got {alpha!r}.") from exc
    if not 0.0 <= a <= 1.0:
        raise GeodistillError(f"objective alpha must be in [0, 1], got {alpha}.")
    return a


# ---------------------------------------------------------------- a loss: preset or spec


def loss_terms(loss: str, alpha: float = _PROBE_ALPHA, beta: float | None = None, T: float = 4.0) -> list[Term]:
    """The terms of a loss that is a preset name (at α, β, T) or a spec string."""
    preset = get_preset(loss)
    return preset.terms(check_alpha(alpha), beta, T) if preset else parse_spec(loss)


def check_loss(loss: str, where: str) -> None:
    """A one-sentence error unless ``loss`` is a preset name or a valid spec string."""
    if get_preset(loss):
        return
    try:
        parse_spec(loss)
    except GeodistillError as e:
        raise GeodistillError(
            f"{where}: loss {loss!r} is neither a preset ({', '.join(PRESETS)}) "
            f"nor a valid spec ({str(e).rstrip('.')})."
        ) from None


def loss_coords(loss: str, combo: Mapping[str, Any]) -> dict[str, Any]:
    """The α/β/T of ``combo`` that change the loss (all of them for a spec string)."""
    preset = get_preset(loss)
    return preset.coords(combo) if preset else {k: combo[k] for k in HYPER if k in combo}


def loss_hyper_keys(loss: str) -> tuple[str, ...]:
    """Which of α/β/T a distilled run of ``loss`` records in its results: those its preset uses
    (DIST records T only), all three for a spec string."""
    preset = get_preset(loss)
    return preset.uses if preset else HYPER


def loss_needs_teacher(loss: str) -> bool:
    """Whether runs of ``loss`` read a teacher (a preset at a generic α, or a spec's active terms)."""
    preset = get_preset(loss)
    if preset:
        return preset.needs_teacher
    return any(t.active and get_term(t.name).needs_teacher for t in parse_spec(loss))


def safe_name(text: str) -> str:
    """``text`` as a file-name fragment: runs of other characters than ``A-Za-z0-9.=-`` -> ``_``."""
    return re.sub(r"[^A-Za-z0-9.=-]+", "_", text).strip("_") or "x"


def loss_fragment(loss: str, combo: Mapping[str, Any], keys: tuple[str, ...] = HYPER) -> str:
    """Folder-name fragment of a loss: the preset's, or a file-safe text of a spec plus a short
    hash (two specs never share a folder) and the ``keys`` of ``combo`` present."""
    preset = get_preset(loss)
    if preset:
        return preset.fragment(combo, keys)
    head = f"{safe_name(loss)[:40]}-{hashlib.sha1(loss.encode()).hexdigest()[:6]}"
    return head + "".join(f"-{_TAGS[k]}{_value(combo[k])}" for k in keys if k in combo)


def loss_label(loss: str, combo: Mapping[str, Any]) -> str:
    """Table-row label of a loss: the preset's, else the spec string itself."""
    preset = get_preset(loss)
    return preset.row_label(combo) if preset else loss


def loss_prose(name: str | None) -> str:
    """The name of an objective in sentences: 'kl+cos' -> 'KL+cosine', 'thesis' -> 'the thesis
    objective', a spec's term names -> their labels; unknown names unchanged."""
    if not name:
        return "an unnamed objective"
    if name in PRESETS:
        return PRESETS[name].prose
    parts = [p.strip() for p in str(name).split("+")]
    return "+".join(_part_prose(p) for p in parts)


def _part_prose(part: str) -> str:
    key = part.lower()
    if key in PRESETS:
        return PRESETS[key].prose
    d = TERMS.get(key)
    return (d.prose or d.label) if d else part


# ---------------------------------------------------------------- the built-in presets


def _tied(a: float, b: float | None) -> float:
    return a if b is None else b


register_preset(
    Preset(
        "student",
        lambda a, b, T: [make_term("ce", 1.0)],
        (),
        "CE only: the student trained alone (alpha, beta, T unused).",
        "the student alone",
    )
)
register_preset(
    Preset(
        "kl",
        lambda a, b, T: [make_term("ce", 1 - a), make_term("kl", a, T=T)],
        ("alpha", "T"),
        "(1−α)·CE + α·KL(T): Hinton distillation (Hinton et al. 2015).",
        "KL",
    )
)
register_preset(
    Preset(
        "cos",
        lambda a, b, T: [make_term("ce", 1 - a), make_term("cos_logits", a)],
        ("alpha",),
        "(1−α)·CE + α·cos(logits): cosine similarity between student and teacher logits.",
        "cosine",
    )
)
register_preset(
    Preset(
        "kl+cos",
        lambda a, b, T: [make_term("ce", 1 - a), make_term("kl", a, T=T), make_term("cos_logits", _tied(a, b))],
        ("alpha", "beta", "T"),
        "(1−α)·CE + α·KL(T) + β·cos(logits), β = α if not given: the paper's hard CE + KL + cosine similarity.",
        "KL+cosine",
    )
)
register_preset(
    Preset(
        "thesis",
        lambda a, b, T: [make_term("soft_ce", a, T=T), make_term("ce", 1 - a), make_term("nuc", _tied(a, b))],
        ("alpha", "beta", "T"),
        "α·softCE(T) + (1−α)·CE + β·‖W₁‖*, β = α if not given: the thesis objective.",
        "the thesis objective",
    )
)
register_preset(
    Preset(
        "dkd",
        lambda a, b, T: [make_term("ce", 1.0), make_term("dkd", 1.0, T=T)],
        ("T",),
        "CE + DKD(α=1, β=8, T): Decoupled KD with the paper's weights (alpha, beta unused; "
        "write a spec to change them).",
        "DKD",
    )
)
register_preset(
    Preset(
        "dist",
        lambda a, b, T: [make_term("ce", 1.0), make_term("dist", 1.0, T=T)],
        ("T",),
        "CE + DIST(β=1, γ=1, T): DIST with the paper's weights (alpha, beta unused; write a spec to change them).",
        "DIST",
    )
)
register_preset(
    Preset(
        "kl+feat",
        lambda a, b, T: [make_term("ce", 1 - a), make_term("kl", a, T=T), make_term("cos_feat", _tied(a, b))],
        ("alpha", "beta", "T"),
        "(1−α)·CE + α·KL(T) + β·(1 − cos(P·f_s, f_t)), β = α if not given: KL plus feature-level cosine "
        "through a learned linear projector P (FitNets, Romero et al. 2015, with a cosine instead of L2).",
        "KL+feature cosine",
    )
)
