"""A run's numeric precision. ``train.precision: auto`` is a rule, never a timing:

- on a CUDA GPU that supports bf16: bf16-mixed;
- on a CPU with bf16 matrix units (AMX or AVX512-BF16): bf16-mixed for a model of plain
  (ungrouped) convolutions and linear layers, fp32 for a model with grouped or depthwise
  convolutions, which such CPUs run slower in bf16 (an epoch of the thesis CNNs takes
  0.6-0.75x the fp32 time, MobileNetV2's 2.1x, EfficientNet-Lite0's 1.2x: BENCHMARKS.md,
  "bf16 autocast on the CPU");
- anywhere else: fp32.

The rule reads the model and the hardware only, so every process on one host decides alike,
whatever the load. The first process of a study writes its decision for an architecture into
the study folder (``<folder>/precision/<model>.json``); every later process, shard and re-run
of that folder reads it, so even shards on different hosts train alike. A resumed run keeps the
precision its checkpoint trained with. Every results.json records the decision.
"""

from __future__ import annotations

import json
import re
import socket
from pathlib import Path

import torch
from torch import nn

from geodistill.config.run import TrainConfig
from geodistill.core.atomic import create_once
from geodistill.models.checkpoint import read_resumable
from geodistill.results.result import Precision

ALIASES = {"32": "32-true", "bf16": "bf16-mixed"}
CONCRETE = ("32-true", "bf16-mixed", "16-mixed")
FOLDER = "precision"  # the decisions' folder inside a study folder


def cpu_bf16_units() -> bool:
    """Whether this CPU has AMX tiles or AVX512-BF16 (torch's private probes; absent -> False)."""
    probes = ("_is_amx_tile_supported", "_is_avx512_bf16_supported")
    return any(getattr(torch.cpu, name, lambda: False)() for name in probes)


def _on_cuda(t: TrainConfig) -> bool:
    return t.accelerator in ("cuda", "gpu") or (t.accelerator == "auto" and torch.cuda.is_available())


def has_grouped_conv(model: nn.Module) -> bool:
    """Whether any convolution of ``model`` is grouped (depthwise included)."""
    return any(isinstance(m, nn.modules.conv._ConvNd) and m.groups > 1 for m in model.modules())


def auto_rule(t: TrainConfig, model: nn.Module) -> tuple[str, str]:
    """(precision, why) of the module docstring's rule for ``model`` on this host."""
    if _on_cuda(t):
        if torch.cuda.is_available() and torch.cuda.is_bf16_supported():
            return "bf16-mixed", "a CUDA GPU with bf16"
        return "32-true", "a CUDA GPU without bf16"
    if not cpu_bf16_units():
        return "32-true", "a CPU without bf16 units"
    if has_grouped_conv(model):
        return "32-true", "a CPU with bf16 units, but a model with grouped convolutions (slower in bf16 there)"
    return "bf16-mixed", "a CPU with bf16 units and a model of plain convolutions"


def _file(study_dir: Path, model: str) -> Path:
    return study_dir / FOLDER / (re.sub(r"[^A-Za-z0-9._-]+", "_", model) + ".json")


def _kept(last: Path | None) -> str | None:
    """The concrete precision checkpoint ``last`` (a run being resumed) trained with, if any."""
    if last is None or not last.is_file():
        return None
    before = (read_resumable(last).get("config") or {}).get("train") or {}
    return before.get("precision") if before.get("precision") in CONCRETE else None


def decide(t: TrainConfig, model: nn.Module, study_dir: Path | None, resume_from: Path | None = None) -> Precision:
    """The precision a run of ``t`` (student ``model``) trains in. A fixed ``t.precision`` is
    spelled out; ``auto`` is, in order: what ``resume_from`` trained with, what the study folder
    ``study_dir`` recorded for ``t.model``, else `auto_rule`, recorded there for the others."""
    if t.precision != "auto":
        return Precision(ALIASES.get(t.precision, t.precision), False, "set in the config")
    kept = _kept(resume_from)
    if kept is not None:
        return Precision(kept, True, f"kept from {resume_from}, the run being resumed")
    value, why = auto_rule(t, model)
    mine = Precision(value, True, why, host=socket.gethostname())
    if study_dir is None:
        return mine
    path = _file(Path(study_dir), t.model)
    mine = Precision(value, True, why, host=mine.host, file=str(path))
    create_once(path, json.dumps(mine.to_dict(), indent=2))
    recorded = json.loads(path.read_text(encoding="utf-8"))
    return Precision(recorded["value"], True, recorded["why"], host=recorded.get("host"), file=str(path))


def with_precision(t: TrainConfig, p: Precision) -> TrainConfig:
    """``t`` with its precision made concrete (what checkpoints and results.json record)."""
    return t.model_copy(update={"precision": p.value})


def precision_note(p: Precision) -> str:
    """', bf16-mixed (auto: a CPU with bf16 units ...)' for a run's header line; '' for plain fp32."""
    if p.value == "32-true" and not p.auto:
        return ""
    return f", {p.value}" + (f" (auto: {p.why})" if p.auto else "")
