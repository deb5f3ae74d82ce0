"""A run's numeric precision. ``train.precision: auto`` is bf16 autocast where it is faster, else fp32:

- on a CUDA GPU that supports bf16: bf16-mixed;
- on a CPU with bf16 matrix units (AMX or AVX512-BF16), one process: bf16-mixed only if a few
  timed training steps of the run's own student, at its batch and image size, take under
  ``FASTER`` x the fp32 time. The model decides: on such a CPU bf16 runs a CNN3 epoch at 32 px
  in 0.72x the fp32 time but a MobileNetV2 epoch in 2.1x (depthwise convolutions;
  BENCHMARKS.md, "bf16 autocast on the CPU");
- anywhere else (other CPUs emulate bf16 slowly; several processes must agree without timing): fp32.

Decided once per run before training and written into its config; a resumed run keeps the
precision its checkpoint trained with (`kept_precision`, before any Fabric exists). One process
times a given architecture, image shape and batch once (`time_precisions` is remembered), so the
runs it compares (seeds, the student alone and distilled, the budget check) share one precision.
"""

from __future__ import annotations

import copy
import time
from pathlib import Path

import torch
import torch.nn.functional as F
from torch import nn

from geodistill.config import RunConfig, TrainConfig
from geodistill.engine.checkpoint import read_resumable

ALIASES = {"32": "32-true", "bf16": "bf16-mixed"}
FASTER = 0.9  # bf16 is chosen on a CPU when its step takes < FASTER x the fp32 step


def cpu_bf16_units() -> bool:
    """Whether this CPU has AMX tiles or AVX512-BF16 (torch's private probes; absent -> False)."""
    probes = ("_is_amx_tile_supported", "_is_avx512_bf16_supported")
    return any(getattr(torch.cpu, name, lambda: False)() for name in probes)


def _on_cuda(t: TrainConfig) -> bool:
    return t.accelerator in ("cuda", "gpu") or (t.accelerator == "auto" and torch.cuda.is_available())


def fabric_precision(t: TrainConfig) -> str:
    """Lightning Fabric's name for ``t.precision`` without timing anything: the aliases spelled
    out; "auto" is bf16-mixed on a bf16-capable CUDA GPU, else 32-true (a CPU's bf16 needs
    `resolve_precision`'s timing)."""
    if t.precision != "auto":
        return ALIASES.get(t.precision, t.precision)
    cuda_bf16 = _on_cuda(t) and torch.cuda.is_available() and torch.cuda.is_bf16_supported()
    return "bf16-mixed" if cuda_bf16 else "32-true"


def needs_timing(t: TrainConfig) -> bool:
    """Whether "auto" must time the student: one process on a CPU with bf16 units."""
    one_process = str(t.devices) == "1" and t.num_nodes == 1
    return t.precision == "auto" and one_process and not _on_cuda(t) and cpu_bf16_units()


def _fresh_batch(shape: tuple[int, ...], num_classes: int) -> tuple[torch.Tensor, torch.Tensor]:
    g = torch.Generator().manual_seed(0)
    return torch.randn(shape, generator=g), torch.randint(0, num_classes, (shape[0],), generator=g)


def step_seconds(model: nn.Module, x: torch.Tensor, y: torch.Tensor, bf16: bool) -> float:
    """Seconds of one forward + backward of ``model`` on (x, y) under CE, bf16 autocast or not."""
    t0 = time.perf_counter()
    with torch.autocast("cpu", dtype=torch.bfloat16, enabled=bf16):
        out = model(x)
    loss = F.cross_entropy(out.float(), y)
    loss.backward()
    model.zero_grad(set_to_none=True)
    return time.perf_counter() - t0


def time_precisions(
    student: nn.Module, shape: tuple[int, ...], num_classes: int, channels_last: bool, budget_s: float = 2.0
) -> dict:
    """Fastest step milliseconds of a copy of ``student`` in fp32 and in bf16 on a random batch
    of ``shape``: one warm-up step each, then alternating steps (3 to 20 pairs, until
    ``budget_s``), so a machine getting busier biases neither; the fastest step is the least
    disturbed by other processes. The global RNG is left as it was."""
    with torch.random.fork_rng(devices=[]):  # CPU timing: leave every GPU's RNG (and CUDA) alone
        model = copy.deepcopy(student).train()
        x, y = _fresh_batch(shape, num_classes)
        if channels_last:
            model, x = model.to(memory_format=torch.channels_last), x.contiguous(memory_format=torch.channels_last)
        times: dict[bool, list[float]] = {False: [], True: []}
        for bf16 in (False, True):
            step_seconds(model, x, y, bf16)
        start = time.perf_counter()
        while len(times[True]) < 20 and (len(times[True]) < 3 or time.perf_counter() - start < budget_s):
            for bf16 in (False, True):
                times[bf16].append(step_seconds(model, x, y, bf16))
    fp32, bf16 = (1000 * min(times[b]) for b in (False, True))
    return {"fp32_ms": fp32, "bf16_ms": bf16, "ratio": bf16 / fp32}


_TIMED: dict[tuple, dict] = {}  # (arch, shape, classes, channels_last) -> time_precisions' answer, per process


def _with(cfg: RunConfig, precision: str) -> RunConfig:
    return cfg.model_copy(update={"train": cfg.train.model_copy(update={"precision": precision})})


def kept_precision(cfg: RunConfig, last: Path | None) -> RunConfig:
    """``cfg`` with "auto" replaced by the precision checkpoint ``last`` (a run being resumed)
    trained with, on any hardware; ``cfg`` unchanged when there is no such checkpoint."""
    if cfg.train.precision != "auto" or last is None or not last.is_file():
        return cfg
    before = read_resumable(last).get("config", {}).get("train", {})
    return _with(cfg, before["precision"]) if before.get("precision") in ("32-true", "bf16-mixed") else cfg


def resolve_precision(
    cfg: RunConfig, student: nn.Module, shape: tuple[int, ...], num_classes: int
) -> tuple[RunConfig, dict | None]:
    """``cfg`` with ``train.precision`` made concrete (see the module docstring), and the timing
    that decided it (None when nothing was timed; the same dict for every run of one process
    that timed the same architecture and shape)."""
    t = cfg.train
    if not needs_timing(t):
        return _with(cfg, fabric_precision(t)), None
    key = (t.model, tuple(shape), num_classes, t.channels_last)
    if key not in _TIMED:
        _TIMED[key] = time_precisions(student, shape, num_classes, t.channels_last)
    timing = _TIMED[key]
    return _with(cfg, "bf16-mixed" if timing["ratio"] < FASTER else "32-true"), timing


def precision_note(precision: str, timing: dict | None) -> str:
    """', bf16-mixed (a step takes 0.72x fp32's)' for a run's header line; '' for plain fp32."""
    why = f" (a step takes {timing['ratio']:.2f}x fp32's)" if timing else ""
    return "" if precision == "32-true" and not timing else f", {precision}{why}"
