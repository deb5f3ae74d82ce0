"""What bf16 autocast saves on this CPU, and whether ``train.precision: auto`` picks it where it
pays (`engine.precision`: on a CPU with AMX or AVX512-BF16, bf16 for a model without grouped
convolutions; a rule, not a timing, so every process decides alike).

AID (../shared/data/aid150) at 32 px, issue 11's teacher (CNN4) and its two students (CNN3 and
MobileNetV2 from random init), the product's training loop (`engine.trainer.fit`) with each precision on the same
data and batches, interleaved repeats, each one timed epoch after a warm-up epoch. Reported:
median epoch time (training part, and with validation), the ratio bf16-mixed ÷ 32-true, and what
"auto" picks for the model here (and whether that is the faster of the two as measured).
Whether bf16 keeps accuracy at convergence is measured in ``benchmarks.converged`` (``BF16``).
"""

from __future__ import annotations

import statistics
from pathlib import Path

import torch

from benchmarks.common import AID, epochs_of, subset
from geodistill.config.run import build_config
from geodistill.data.prepare import TrainData
from geodistill.engine.precision import auto_rule, cpu_bf16_units
from geodistill.losses import Objective
from geodistill.models import build_model

PRECISIONS = ("32-true", "bf16-mixed")


def _cfg(model: str, precision: str):
    train = {"model": model, "epochs": 2, "batch_size": 64, "precision": precision, "progress": False}
    return build_config({"data": {"dataset": "folder", "root": str(AID), "size": 32}, "train": train})


def _auto(model: str, data: TrainData, ratio: float) -> str:
    """What precision "auto" picks for ``model`` here, and whether the measured ``ratio`` agrees."""
    picked, _ = auto_rule(_cfg(model, "auto").train, build_model(model, len(data.classes)))
    faster = "bf16-mixed" if ratio < 1 else "32-true"
    return picked + (" (the faster here)" if picked == faster else f" (NOT the faster here: {faster})")


def _epoch(model: str, precision: str, data: TrainData, run_dir: Path) -> tuple[float, float]:
    """(training s, training + validation s) of the second epoch of a 2-epoch run."""
    cfg = _cfg(model, precision)
    torch.manual_seed(0)
    student = build_model(model, len(data.classes))
    h = epochs_of(cfg, data, student, Objective.preset("student"), None, run_dir)[-1]
    return h["train_time_s"], h["time_s"]


def main(out_dir: Path, quick: bool = False) -> str:
    """Run the benchmark; returns its Markdown section."""
    n_train, repeats = (64, 1) if quick else (1536, 3)
    data = subset(32, n_train, out_dir / "cache", quick, normalize=True)
    rows = []
    models = ("cnn3", "mobilenet_v2") if quick else ("cnn4", "cnn3", "mobilenet_v2", "efficientnet_lite0")
    for model in models:  # teachers and students
        times: dict[str, list[tuple[float, float]]] = {p: [] for p in PRECISIONS}
        for r in range(repeats):  # interleaved, so a machine getting busier biases neither side
            for p in PRECISIONS:
                times[p].append(_epoch(model, p, data, out_dir / f"{model}-{p}-{r}"))
        med = {p: [statistics.median(t[i] for t in times[p]) for i in (0, 1)] for p in PRECISIONS}
        (f_train, f_all), (b_train, b_all) = med["32-true"], med["bf16-mixed"]
        rows.append(
            f"| {model} | {f_train:.2f} | {b_train:.2f} | **{b_train / f_train:.2f}** | {f_all:.2f} | {b_all:.2f} | "
            f"**{b_all / f_all:.2f}** | {_auto(model, data, b_all / f_all)} |"
        )
    return "\n".join(
        [
            "## bf16 autocast on the CPU: what precision 'auto' saves",
            "",
            f"AID 32 px, {n_train} training images, {len(data.val)} validation images, batch 64, the product's loop "
            f"(`fit`), median of {repeats} interleaved repeats, each the second epoch of a 2-epoch run; torch threads "
            f"{torch.get_num_threads()}; this CPU has bf16 units (AMX or AVX512-BF16): {cpu_bf16_units()}.",
            "",
            "| model | train s/epoch fp32 | bf16 | **ratio** | with validation fp32 | bf16 | **ratio** | "
            "'auto' picks |",
            "|---|---:|---:|---:|---:|---:|---:|---|",
            *rows,
            "",
            "Accuracy at convergence under bf16: `python -m benchmarks.converged --lane precision` (section "
            "'Converged distillation on AID').",
            "",
        ]
    )
