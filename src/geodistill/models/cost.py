"""Torch-side cost of a classifier: parameters, FLOPs, file size, eager latency and throughput.

Conventions (the same everywhere geodistill reports cost):

- **params**: number of parameter elements (trainable or not); buffers such as BatchNorm
  running statistics are not parameters.
- **FLOPs**: counted by ``torch.utils.flop_counter.FlopCounterMode`` on one forward pass at
  batch 1 (input ``1 x C x size x size``). FLOPs = 2 x multiply-accumulates of convolutions and
  matrix products (conv, linear, matmul, attention): a ``Conv2d(c_in, c_out, k)`` producing
  ``H x W`` outputs costs ``2 * c_out * H * W * c_in/groups * k * k``. Bias additions,
  normalisation, activations and pooling are *not* counted (well under 1 % for these CNNs).
- **size_bytes**: bytes of the artifact the runtime loads: ``torch`` = the fp32 tensor payload
  of the state_dict (a saved state_dict minus its few-kB container), ``onnx``/``onnx-int8`` =
  the ``.onnx`` file.
- **latency_ms**: median wall time of one call at the latency batch (default 1), after warm-up
  calls, measured with ``time.perf_counter``; the thread settings of torch and ONNX Runtime are
  left as they are (their defaults use all cores).
- **throughput**: images per second at the throughput batch (default 32) = batch / median
  wall time of one call.

Every runtime gets the same input: a uint8 ``N x C x size x size`` batch with the
normalisation inside the model (the exported-model contract of ``geodistill.deploy``).
"""

from __future__ import annotations

import contextlib
import json
import math
import platform
import statistics
import time
from collections.abc import Callable, Iterator, Sequence
from pathlib import Path
from typing import Any

try:
    import fcntl
except ImportError:  # not POSIX: runs of a pool may each measure their own latency
    fcntl = None

import numpy as np
import torch
from torch import nn

from geodistill.core.atomic import write_json
from geodistill.models.card import count_flops, input_channels, state_dict_bytes
from geodistill.models.preprocess import torch_runner, with_preprocessing


# ---------------------------------------------------------------- static cost
def count_params(model: nn.Module, trainable_only: bool = False) -> int:
    """Number of parameter elements of ``model`` (shared parameters counted once)."""
    return int(sum(p.numel() for p in model.parameters() if p.requires_grad or not trainable_only))


def file_size(path: str | Path) -> int:
    """Size of a file in bytes."""
    return Path(path).stat().st_size


# ---------------------------------------------------------------- timing
def time_calls(
    fn: Callable[[], Any],
    *,
    warmup: int = 3,
    repeats: int = 20,
    max_seconds: float | None = None,
    min_repeats: int = 3,
    clock: Callable[[], float] = time.perf_counter,
) -> list[float]:
    """Seconds taken by each of ``repeats`` calls of ``fn()`` after ``warmup`` untimed calls.

    With ``max_seconds``, stops early once the timed calls have used that budget (at least
    ``min_repeats`` timed calls are always made), so slow models can be profiled with the same code.
    """
    for _ in range(warmup):
        fn()
    times: list[float] = []
    spent = 0.0
    for i in range(max(repeats, 1)):
        t0 = clock()
        fn()
        dt = clock() - t0
        times.append(dt)
        spent += dt
        if max_seconds is not None and i + 1 >= min_repeats and spent >= max_seconds:
            break
    return times


def measure_latency(fn: Callable[[], Any], **kw) -> float:
    """Median milliseconds per call of ``fn()`` (keyword arguments as ``time_calls``)."""
    return 1000.0 * statistics.median(time_calls(fn, **kw))


def measure_throughput(fn: Callable[[], Any], batch: int, **kw) -> float:
    """Images per second when ``fn()`` processes ``batch`` images: batch / median seconds."""
    return batch / statistics.median(time_calls(fn, **kw))


def runtime_cost(
    run: Callable[[np.ndarray], Any],
    in_channels: int,
    size: int,
    batches: Sequence[int] = (1, 32),
    *,
    warmup: int = 3,
    repeats: int = 20,
    max_seconds: float | None = None,
    min_repeats: int = 3,
    seed: int = 0,
) -> dict:
    """Latency (ms, at ``batches[0]``) and throughput (img/s, at ``batches[-1]``) of ``run``.

    ``run`` takes a uint8 ``N x C x size x size`` numpy batch (random pixels, fixed seed).
    """
    rng = np.random.default_rng(seed)
    b_lat, b_thr = int(batches[0]), int(batches[-1])
    x_lat = rng.integers(0, 256, (b_lat, in_channels, size, size), dtype=np.uint8)
    x_thr = rng.integers(0, 256, (b_thr, in_channels, size, size), dtype=np.uint8)
    kw = dict(warmup=warmup, repeats=repeats, max_seconds=max_seconds, min_repeats=min_repeats)
    return {
        "latency_ms": measure_latency(lambda: run(x_lat), **kw),
        "latency_batch": b_lat,
        "throughput": measure_throughput(lambda: run(x_thr), b_thr, **kw),
        "throughput_batch": b_thr,
    }


def torch_cost(
    model: nn.Module,
    size: int,
    batches: Sequence[int] = (1, 32),
    *,
    in_channels: int | None = None,
    normalizer: dict | None = None,
    timing: bool = True,
    **kw,
) -> dict:
    """The cost figures of a PyTorch model in eager mode (what ``geodistill run`` reports).

    Returns ``params, flops, size_bytes`` and, with ``timing``, ``latency_ms, latency_batch,
    throughput, throughput_batch`` (uint8 input, normalisation inside, as for exported models;
    timed in eval mode, the model's mode is restored afterwards).
    """
    c = in_channels or input_channels(model)
    row = {"params": count_params(model), "flops": count_flops(model, size, c), "size_bytes": state_dict_bytes(model)}
    if timing:
        was_training = model.training
        try:
            wrapped = with_preprocessing(model, normalizer, c).eval()
            row.update(runtime_cost(torch_runner(wrapped), c, size, batches, **kw))
        finally:
            model.train(was_training)
    return row


# ---------------------------------------------------------------- latency measured once per job
JOB_TIMING = {"warmup": 5, "repeats": 50, "min_repeats": 20, "max_seconds": 5.0}
"""How `job_cost` times a model: the median of 20 to 50 calls (as many as fit in 5 s, at least
20) after 5 warm-up calls."""
TIMING_FIELDS = ("latency_ms", "latency_batch", "throughput", "throughput_batch")
_LATENCIES: dict[str, dict] = {}  # this process's measurements, by `latency_key`


def latency_key(arch: str, num_classes: int, size: int, in_channels: int, batches: Sequence[int]) -> str:
    """What a latency depends on: architecture, classes, input size and channels, batches,
    runtime (torch eager), torch's threads and version, and the machine."""
    b = ",".join(str(int(x)) for x in batches)
    return (
        f"{arch}|{num_classes} classes|{size}px|{in_channels}ch|batches {b}|torch eager|"
        f"{torch.get_num_threads()} threads|torch {torch.__version__}|{platform.node()}"
    )


def _read_latencies(path: Path | None) -> dict[str, dict]:
    """The latencies stored in ``path`` (none when it is absent or unreadable)."""
    try:
        data = json.loads(path.read_text(encoding="utf-8")) if path is not None and path.is_file() else {}
    except (OSError, ValueError):
        return {}
    return data if isinstance(data, dict) else {}


def job_cost(
    model: nn.Module,
    size: int,
    *,
    arch: str,
    num_classes: int,
    normalizer: dict | None = None,
    cache_file: str | Path | None = None,
    batches: Sequence[int] = (1, 32),
) -> dict:
    """`torch_cost` of a trained model, its latency and throughput measured once per
    `latency_key` (`JOB_TIMING`) and then reused: from this process's memo, else from
    ``cache_file`` (JSON, key -> figures; a run writes it next to its folder, so every run of a
    job, and a resumed job, shares one measurement per architecture). Adds ``latency_key``."""
    c = input_channels(model)
    cost = torch_cost(model, size, batches, in_channels=c, timing=False)
    key = latency_key(arch, num_classes, size, c, batches)
    path = Path(cache_file) if cache_file is not None else None
    with _locked(path):  # runs of a pool measure one architecture once, not each its own
        timing = _latency(model, size, batches, c, normalizer, key, path)
    return {**cost, **timing, "latency_key": key}


@contextlib.contextmanager
def _locked(path: Path | None) -> Iterator[None]:
    """An exclusive lock on ``path``'s hidden lock file, ``.{name}.flock`` (POSIX; none elsewhere
    or without a path). It stays, empty: removing a lock file others may hold open is a race."""
    if path is None or fcntl is None:
        yield
        return
    path.parent.mkdir(parents=True, exist_ok=True)
    with open(path.with_name(f".{path.name}.flock"), "a") as f:
        fcntl.flock(f, fcntl.LOCK_EX)
        try:
            yield
        finally:
            fcntl.flock(f, fcntl.LOCK_UN)


def _latency(model: nn.Module, size: int, batches: Sequence[int], c: int, normalizer: dict | None, key: str,
             path: Path | None) -> dict:  # fmt: skip
    """The timing figures of ``key``: this process's memo, else ``path``'s, else measured now."""
    stored = _read_latencies(path)
    timing = _LATENCIES.get(key) or stored.get(key)
    if not isinstance(timing, dict) or not all(_is_number(timing.get(f)) for f in TIMING_FIELDS):
        measured = torch_cost(model, size, batches, in_channels=c, normalizer=normalizer, **JOB_TIMING)
        timing = {f: measured[f] for f in TIMING_FIELDS}
    if path is not None and stored.get(key) != timing:  # a new job folder gets the memo's figures too
        write_json(path, dict(stored, **{key: timing}))
    _LATENCIES[key] = timing
    return timing


def clear_latency_memo() -> None:
    """Forget this process's measured latencies (`job_cost` then reads its file or measures)."""
    _LATENCIES.clear()


def _is_number(x: Any) -> bool:
    """A finite int or float (not bool)."""
    return isinstance(x, (int, float)) and not isinstance(x, bool) and math.isfinite(x)
