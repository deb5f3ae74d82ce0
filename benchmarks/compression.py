"""Compression benchmark (issue 6): what the student saves over its teacher on this machine.

Pairs: VGG16 -> MobileNetV2 (the paper) and CNN4 -> CNN3 (the thesis), random weights, 30
classes (AID's count), at 32, 64 and 224 px, on one thread (torch and ONNX Runtime alike: the
2 cores of the reference machine are shared with other jobs, and multi-threaded medians there
swing by 10x from run to run). For each model: parameters, FLOPs (batch 1, 2 per
MAC), size of the artifact, latency at batch 1 and throughput at batch 32 (batch 8 at 224 px)
in PyTorch eager, ONNX Runtime fp32 and ONNX Runtime int8 (static QDQ, calibrated on random
pixels: speed and size are representative, accuracy is not). Each time is the median of
several runs after warm-up; slow cases stop after a few seconds of measurement (at least 3
runs). Ratios are teacher / student (throughput: student / teacher), so > 1 favours the student.
"""

from __future__ import annotations

import json
import time
import warnings
from pathlib import Path

import torch

from geodistill.core.atomic import write_text
from geodistill.deploy.profile import compression, format_compression, format_profile, profile_models
from geodistill.models import build_model

PAIRS = (("vgg16", "mobilenet_v2"), ("cnn4", "cnn3"))
SIZES = (32, 64, 224)
NUM_CLASSES = 30
THREADS = 1  # one thread for torch and ONNX Runtime: steadier medians on a shared 2-core machine


def run(
    sizes=SIZES, pairs=PAIRS, repeats: int = 15, max_seconds: float = 4.0, threads: int | None = THREADS
) -> tuple[list[dict], list[dict]]:
    """Profile every model of ``pairs`` at every size; returns (profile rows, compression rows)."""
    torch.manual_seed(0)
    names = [n for pair in pairs for n in pair]
    models = {n: build_model(n, NUM_CLASSES).eval() for n in dict.fromkeys(names)}
    rows: list[dict] = []
    ratios: list[dict] = []
    for size in sizes:
        batch = 8 if size >= 224 else 32
        t0 = time.perf_counter()
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")  # random calibration is announced in the text instead
            size_rows = profile_models(
                list(models.items()),
                size=size,
                batches=(1, batch),
                warmup=1 if size >= 224 else 2,
                repeats=repeats,
                max_seconds=max_seconds,
                threads=threads,
            )
        print(f"  {size} px profiled in {time.perf_counter() - t0:.0f} s", flush=True)
        rows += size_rows
        for teacher, student in pairs:
            for runtime in ("torch", "onnx", "onnx-int8"):
                t = next(r for r in size_rows if r["name"] == teacher and r["runtime"] == runtime)
                s = next(r for r in size_rows if r["name"] == student and r["runtime"] == runtime)
                ratios.append(dict(compression(t, s), size=size))
    return rows, ratios


def markdown(rows: list[dict], ratios: list[dict], sizes=SIZES) -> str:
    """The Markdown section: per size, the compression ratios then the raw figures."""
    parts = [
        "## Compression: teacher vs student cost (issue 6)\n",
        "Random-weight models with 30 classes, one thread; uint8 input with normalisation inside the model, "
        "as exported by `geodistill export`. FLOPs = 2 x multiply-accumulates of conv/linear at "
        "batch 1 (bias, BN, activations not counted). Size: fp32 state dict (torch) or .onnx file. "
        "Latency: median ms at batch 1; throughput: images/s at batch 32 (8 at 224 px). int8 = ONNX "
        "Runtime static QDQ per-channel quantisation calibrated on random pixels (speed and size "
        "only). Ratios are teacher / student (throughput student / teacher).\n",
    ]
    for size in sizes:
        parts.append(f"### {size} px\n")
        parts.append(format_compression([r for r in ratios if r["size"] == size]) + "\n")
        parts.append(format_profile([r for r in rows if r["size"] == size]) + "\n")
    return "\n".join(parts)


def main(out: Path, quick: bool = False) -> str:
    """Run the benchmark and return its Markdown section.

    ``out``: a ``.md`` file to write the section to, or a folder (the ``python -m benchmarks``
    runner passes one) that receives ``compression.md`` and the raw ``compression.json``.
    ``quick``: 32 px and the thesis pair only, fewer repeats.
    """
    out = Path(out)
    sizes = (32,) if quick else SIZES
    pairs = PAIRS[1:] if quick else PAIRS  # quick: the thesis pair only (VGG16's export alone takes a minute)
    rows, ratios = run(sizes, pairs, repeats=5 if quick else 15, max_seconds=1.0 if quick else 4.0)
    text = markdown(rows, ratios, sizes)
    md = out if out.suffix == ".md" else out / "compression.md"
    write_text(md, text)
    write_text(md.with_suffix(".json"), json.dumps({"rows": rows, "compression": ratios}, indent=1))
    return text


if __name__ == "__main__":
    import sys

    print(
        main(
            Path(sys.argv[1]) if len(sys.argv) > 1 else Path("/tmp/geodistill-bench/compression"),
            quick="--quick" in sys.argv,
        )
    )
