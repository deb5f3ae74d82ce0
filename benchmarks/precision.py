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

import numpy as np
import torch

from geodistill.config.run import build_config
from geodistill.data import load_dataset, make_split
from geodistill.data.prepare import TrainData
from geodistill.data.splits import Split
from geodistill.data.transforms import Normalizer
from geodistill.engine.precision import auto_rule, cpu_bf16_units
from geodistill.engine.trainer import fit
from geodistill.losses import Objective
from geodistill.models import build_model

AID = Path(__file__).resolve().parents[2] / "shared" / "data" / "aid150"
PRECISIONS = ("32-true", "bf16-mixed")


def _data(n_train: int, cache: Path) -> TrainData:
    ds = load_dataset("folder", AID, size=32, cache_dir=cache / "images")
    split = make_split(ds.labels, seed=0)
    train = np.sort(split.train)[:: max(1, len(split.train) // n_train)][:n_train]
    norm = Normalizer.from_images(np.asarray(ds.images[train]))
    return TrainData(ds, Split(train, split.val[: n_train // 3], split.test[:64]), norm)


def _cfg(model: str, precision: str):
    train = {"model": model, "epochs": 2, "batch_size": 64, "precision": precision, "progress": False}
    return build_config({"data": {"dataset": "folder", "size": 32}, "train": train})


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
    h = fit(cfg, data, student, Objective.preset("student"), None, run_dir, meta={"arch": model})["history"][-1]
    return h["train_time_s"], h["time_s"]


def main(out_dir: Path, quick: bool = False) -> str:
    """Run the benchmark; returns its Markdown section."""
    n_train, repeats = (384, 2) if quick else (1536, 3)
    data = _data(n_train, out_dir / "cache")
    rows = []
    for model in ("cnn4", "cnn3", "mobilenet_v2", "efficientnet_lite0"):  # teachers and students
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
