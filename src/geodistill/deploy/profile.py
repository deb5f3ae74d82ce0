"""ONNX-side cost of trained classifiers: many models on torch, ONNX Runtime fp32 and int8.

Conventions (params, FLOPs, size, latency, throughput) are those of `geodistill.models.cost`;
every runtime gets the same uint8 input with the normalisation inside the model.
"""

from __future__ import annotations

import math
import tempfile
import warnings
from collections.abc import Iterable, Sequence
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch import nn

from geodistill.core.errors import GeodistillError, GeodistillWarning
from geodistill.data.prepare import checkpoint_data_config, prepare_data
from geodistill.deploy.export import export_onnx
from geodistill.deploy.quantize import quantize_onnx
from geodistill.deploy.runtime import onnx_runner, onnx_session
from geodistill.models.card import count_flops, input_channels, state_dict_bytes
from geodistill.models.checkpoint import load_classifier
from geodistill.models.cost import count_params, file_size, runtime_cost
from geodistill.models.preprocess import torch_runner, with_preprocessing

RUNTIMES = ("torch", "onnx", "onnx-int8")


# ---------------------------------------------------------------- many models, many runtimes
def run_name(path: Path) -> str:
    """A checkpoint's name in tables: its run folder's name (every run writes ``model.ckpt``), or
    the file's stem when the file is named otherwise."""
    return path.parent.name if path.name in ("model.ckpt", "last.ckpt") and path.parent.name else path.stem


def label(row: dict) -> str:
    """'teacher-s0 (cnn4)': a profile row's name and architecture (the name alone when they agree)."""
    name, arch = str(row.get("name", "")), str(row.get("arch", ""))
    return name if not arch or arch == name else f"{name} ({arch})"


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
        name = run_name(Path(item))
    else:
        raise GeodistillError(f"Cannot profile {item!r}: pass checkpoint paths, nn.Modules or (name, module) pairs.")
    return str(name), model.eval(), meta


def profile_models(
    items: Iterable[Any],
    size: int | None = None,
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
    """One cost row per (model, runtime); every model is profiled at ``size`` px, by default
    (None) at the size its checkpoint trained at (64 px for a module without one).

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
            px = size or int(meta.get("size") or 64)
            c = int(meta.get("in_channels") or input_channels(model))
            normalizer = meta.get("normalizer")
            base = {
                "name": name,
                "arch": meta.get("arch") or getattr(model, "arch", type(model).__name__),
                "size": px,
                "params": count_params(model),
                "flops": count_flops(model, px, c),
            }
            onnx_path = None
            for runtime in runtimes:
                row = dict(base, runtime=runtime, calibration=None, threads=threads)
                if runtime == "torch":
                    wrapped = with_preprocessing(model, normalizer, c).eval()
                    row["size_bytes"] = state_dict_bytes(model)
                    row.update(runtime_cost(torch_runner(wrapped), c, px, batches, **kw))
                else:
                    if onnx_path is None:
                        onnx_path = export_onnx(
                            model,
                            Path(tmp) / f"{i}.onnx",
                            size=px,
                            in_channels=c,
                            normalizer=normalizer,
                            meta={"arch": base["arch"]},
                        )
                    path = onnx_path
                    if runtime == "onnx-int8":
                        images, row["calibration"] = _calibration(meta, calib, c, px)
                        path = quantize_onnx(onnx_path, Path(tmp) / f"{i}.int8.onnx", images)
                    row["size_bytes"] = file_size(path)
                    row.update(runtime_cost(onnx_runner(onnx_session(path, threads)), c, px, batches, **kw))
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
    out["teacher"] = label(teacher_row)
    out["student"] = label(student_row)
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
                label(r),
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
