"""Cost metrics of a classifier: parameters, FLOPs, file size, latency and throughput.

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

import json
import math
import platform
import statistics
import tempfile
import time
import warnings
from collections.abc import Callable, Iterable, Sequence
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch import nn

from geodistill.atomic import write_json
from geodistill.data.prepare import checkpoint_data_config, prepare_data
from geodistill.deploy.export import export_onnx
from geodistill.deploy.quantize import quantize_onnx
from geodistill.deploy.runtime import onnx_runner, onnx_session, torch_runner, with_preprocessing
from geodistill.engine.checkpoint import load_classifier
from geodistill.errors import GeodistillError, GeodistillWarning
from geodistill.models.card import count_flops, input_channels, state_dict_bytes

RUNTIMES = ("torch", "onnx", "onnx-int8")


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
    stored = _read_latencies(path)
    timing = _LATENCIES.get(key) or stored.get(key)
    if not isinstance(timing, dict) or not all(_is_number(timing.get(f)) for f in TIMING_FIELDS):
        measured = torch_cost(model, size, batches, in_channels=c, normalizer=normalizer, **JOB_TIMING)
        timing = {f: measured[f] for f in TIMING_FIELDS}
    if path is not None and stored.get(key) != timing:  # a new job folder gets the memo's figures too
        write_json(path, dict(stored, **{key: timing}))
    _LATENCIES[key] = timing
    return {**cost, **timing, "latency_key": key}


def clear_latency_memo() -> None:
    """Forget this process's measured latencies (`job_cost` then reads its file or measures)."""
    _LATENCIES.clear()


def _is_number(x: Any) -> bool:
    """A finite int or float (not bool)."""
    return isinstance(x, (int, float)) and not isinstance(x, bool) and math.isfinite(x)


# ---------------------------------------------------------------- many models, many runtimes
def _resolve(item: Any) -> tuple[str, nn.Module, dict]:
    """(name, model, meta) from a checkpoint path, an nn.Module or a (name, module) pair."""
    if isinstance(item, tuple) and len(item) == 2 and isinstance(item[1], nn.Module):
        name, model = item
        meta: dict = {}
    elif isinstance(item, nn.Module):
        model, meta = item, {}
        name = getattr(item, "arch", type(item).__name__)
    elif isinstance(item, (str, Path)):
        model, meta = load_classifier(item)
        name = Path(item).stem
    else:
        raise GeodistillError(f"Cannot profile {item!r}: pass checkpoint paths, nn.Modules or (name, module) pairs.")
    return str(name), model.eval(), meta


def profile_models(
    items: Iterable[Any],
    size: int = 64,
    batches: Sequence[int] = (1, 32),
    runtimes: Sequence[str] = RUNTIMES,
    *,
    calib: np.ndarray | None = None,
    warmup: int = 3,
    repeats: int = 20,
    max_seconds: float | None = None,
    threads: int | None = None,
    workdir: str | Path | None = None,
) -> list[dict]:
    """One cost row per (model, runtime); every model is profiled at ``size`` px.

    ``items``: checkpoint paths, ``nn.Module``s or ``(name, module)`` pairs. Runtimes: ``torch``
    (eager), ``onnx`` (ONNX Runtime fp32) and ``onnx-int8`` (ONNX Runtime, static QDQ int8).
    The int8 model is calibrated on ``calib`` (uint8 N x C x size x size images) when given,
    else on the training split a checkpoint trained with (``prepare_data`` on its saved data
    config), else on random pixels (row field ``calibration``: ``data``, ``training split`` or
    ``random``; random calibration gives representative speed and size, not accuracy). Exported files go to a
    temporary folder (or ``workdir``) and their sizes are reported. Rows are JSON-able dicts:
    ``name, arch, runtime, size, params, flops, size_bytes, latency_ms, latency_batch,
    throughput, throughput_batch, calibration, threads``. ``threads``: ``None`` leaves torch's
    and ONNX Runtime's thread settings alone (both default to all cores); a number sets both
    for the measurement (torch's setting is restored afterwards), which gives steadier figures
    on a machine shared with other jobs.
    """
    bad = [r for r in runtimes if r not in RUNTIMES]
    if bad:
        raise GeodistillError(f"Unknown runtime {bad[0]!r}: choose from {', '.join(RUNTIMES)}.")
    if not batches:
        raise GeodistillError("batches must list at least one batch size, e.g. (1, 32).")
    kw = dict(warmup=warmup, repeats=repeats, max_seconds=max_seconds)
    torch_threads = torch.get_num_threads()
    if threads:
        torch.set_num_threads(threads)
    try:
        rows = _profile(items, size, batches, runtimes, calib, threads, workdir, kw)
    finally:
        torch.set_num_threads(torch_threads)
    if any(r.get("calibration") == "random" for r in rows):
        warnings.warn(
            "int8 models were calibrated on random pixels (no calibration images given): "
            "their speed and size are representative, their accuracy is not.",
            GeodistillWarning,
        )
    return rows


def _calibration(meta: dict, calib: np.ndarray | None, c: int, size: int, count: int = 256) -> tuple[np.ndarray, str]:
    """int8 calibration images and where they came from: ``calib`` (``"data"``), else up to
    ``count`` images of the training split a checkpoint trained with (``"training split"``,
    through ``prepare_data``), else 32 random images (``"random"``)."""
    if calib is not None:
        return calib, "data"
    try:
        d = checkpoint_data_config(meta, size=size)
        if d is not None:
            data = prepare_data(d, normalizer=meta.get("normalizer"))
            return np.ascontiguousarray(data.images[data.train[:count]], dtype=np.uint8), "training split"
    except GeodistillError:
        pass  # the training data is gone: fall back to random pixels (and say so)
    return np.random.default_rng(0).integers(0, 256, (32, c, size, size), dtype=np.uint8), "random"


def _profile(items, size, batches, runtimes, calib, threads, workdir, kw) -> list[dict]:
    """The body of ``profile_models``: export each model once, quantise once, time each runtime."""
    rows: list[dict] = []
    with tempfile.TemporaryDirectory(prefix="geodistill-profile-", dir=workdir) as tmp:
        for i, item in enumerate(items):
            name, model, meta = _resolve(item)
            c = int(meta.get("in_channels") or input_channels(model))
            normalizer = meta.get("normalizer")
            base = {
                "name": name,
                "arch": getattr(model, "arch", type(model).__name__),
                "size": size,
                "params": count_params(model),
                "flops": count_flops(model, size, c),
            }
            onnx_path = None
            for runtime in runtimes:
                row = dict(base, runtime=runtime, calibration=None, threads=threads)
                if runtime == "torch":
                    wrapped = with_preprocessing(model, normalizer, c).eval()
                    row["size_bytes"] = state_dict_bytes(model)
                    row.update(runtime_cost(torch_runner(wrapped), c, size, batches, **kw))
                else:
                    if onnx_path is None:
                        onnx_path = export_onnx(
                            model,
                            Path(tmp) / f"{i}.onnx",
                            size=size,
                            in_channels=c,
                            normalizer=normalizer,
                            meta={"arch": base["arch"]},
                        )
                    path = onnx_path
                    if runtime == "onnx-int8":
                        images, row["calibration"] = _calibration(meta, calib, c, size)
                        path = quantize_onnx(onnx_path, Path(tmp) / f"{i}.int8.onnx", images)
                    row["size_bytes"] = file_size(path)
                    row.update(runtime_cost(onnx_runner(onnx_session(path, threads)), c, size, batches, **kw))
                rows.append(row)
    return rows


# ---------------------------------------------------------------- reporting
def compression(teacher_row: dict, student_row: dict) -> dict:
    """How many times smaller/faster the student is: teacher / student for ``params, flops,
    size_bytes, latency_ms``, student / teacher for ``throughput`` (so > 1 always means the
    student is cheaper). A ratio with a zero or missing operand is ``None``."""

    def ratio(a: Any, b: Any) -> float | None:
        if a is None or b is None or b == 0:
            return None
        return float(a) / float(b)

    out = {k: ratio(teacher_row.get(k), student_row.get(k)) for k in ("params", "flops", "size_bytes", "latency_ms")}
    out["throughput"] = ratio(student_row.get("throughput"), teacher_row.get("throughput"))
    out["teacher"] = teacher_row.get("name")
    out["student"] = student_row.get("name")
    out["runtime"] = student_row.get("runtime")
    return out


def _human(n: float | None, unit: str = "") -> str:
    if n is None or (isinstance(n, float) and math.isnan(n)):
        return "-"
    for factor, prefix in ((1e9, "G"), (1e6, "M"), (1e3, "k")):
        if abs(n) >= factor:
            return f"{n / factor:.2f} {prefix}{unit}".rstrip()
    return f"{n:.0f} {unit}".rstrip() if float(n).is_integer() else f"{n:.2f} {unit}".rstrip()


def _table(header: Sequence[str], lines: Sequence[Sequence[str]]) -> str:
    widths = [max(len(h), *(len(l[i]) for l in lines)) if lines else len(h) for i, h in enumerate(header)]
    fmt = lambda cells: "| " + " | ".join(c.ljust(w) for c, w in zip(cells, widths)) + " |"  # noqa: E731
    sep = "|" + "|".join("-" * (w + 2) for w in widths) + "|"
    return "\n".join([fmt(header), sep, *(fmt(l) for l in lines)])


def format_profile(rows: Sequence[dict]) -> str:
    """A Markdown table of profile rows (params, FLOPs, size, latency, throughput)."""
    header = ["model", "runtime", "px", "params", "FLOPs", "size", "latency", "throughput"]
    lines = []
    for r in rows:
        runtime = r.get("runtime", "")
        if r.get("calibration") == "random":
            runtime += " (random calib.)"
        lat = r.get("latency_ms")
        thr = r.get("throughput")
        lines.append(
            [
                str(r.get("name", "")),
                runtime,
                str(r.get("size", "")),
                _human(r.get("params")),
                _human(r.get("flops")),
                _human(r.get("size_bytes"), "B"),
                "-" if lat is None else f"{lat:.2f} ms (b={r.get('latency_batch', 1)})",
                "-" if thr is None else f"{thr:.1f} img/s (b={r.get('throughput_batch', '?')})",
            ]
        )
    return _table(header, lines)


def format_compression(ratios: Sequence[dict]) -> str:
    """A Markdown table of ``compression`` results (ratios printed as ``12.3x``)."""
    x = lambda v: "-" if v is None else f"{v:.1f}x"  # noqa: E731
    header = ["teacher -> student", "runtime", "params", "FLOPs", "size", "latency", "throughput"]
    lines = [
        [
            f"{r.get('teacher')} -> {r.get('student')}",
            str(r.get("runtime", "")),
            x(r["params"]),
            x(r["flops"]),
            x(r["size_bytes"]),
            x(r["latency_ms"]),
            x(r["throughput"]),
        ]
        for r in ratios
    ]
    return _table(header, lines)
