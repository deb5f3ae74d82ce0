"""The paper's setting on a GPU (issue 27): ``--recipe paper`` on AID, as the paper runs it.

ImageNet-pretrained VGG16 teacher -> ImageNet-pretrained MobileNetV2 student at 224 px (AID's 150
px images upsampled), hard CE + KL + cosine on logits, against the student alone; the recipe's
3 seeds and its budget check; 10 epochs each, sized to about 10 minutes on one modern GPU
(precision auto: bf16 there). ImageNet weights come from torchvision's hub, or, where no hub is
reachable, from local files: ``GEODISTILL_VGG16_WEIGHTS`` and ``GEODISTILL_MOBILENET_V2_WEIGHTS``
(torchvision state dicts). ``--quick``: the same recipe on the synthetic set at 32 px on the CPU,
a CNN4 teacher, random weights and one epoch, so the benchmark cannot rot.
"""

from __future__ import annotations

import os
import time
from pathlib import Path

import torch

from benchmarks.common import AID
from geodistill.study.recipe import format_summary, run


def overrides(quick: bool) -> dict:
    """The user's layer over the paper recipe."""
    if quick:
        return {
            "data": {"dataset": "synthetic", "n_per_class": 6, "size": 16},
            "train": {"epochs": 1, "progress": False},
            "teacher": {"train": {"model": "cnn4", "weights": None}},  # VGG16 takes minutes on a CPU
            "student": {"train": {"weights": None}},
        }
    weights = {
        r: os.environ.get(f"GEODISTILL_{m}_WEIGHTS") for r, m in (("teacher", "VGG16"), ("student", "MOBILENET_V2"))
    }
    over: dict = {"data": {"dataset": "folder", "root": str(AID)}, "train": {"epochs": 10}}
    for role, path in weights.items():
        if path:
            over[role] = {"train": {"weights": path}}
    return over


def main(out_dir: Path, quick: bool = False) -> str:
    """Run the recipe in ``out_dir``; returns the Markdown section."""
    device = torch.cuda.get_device_name(0) if torch.cuda.is_available() else "CPU (no GPU)"
    t0 = time.perf_counter()
    summary = run("paper", overrides=overrides(quick), out=out_dir / "paper", seeds=[0, 1] if quick else None)
    minutes = (time.perf_counter() - t0) / 60
    head = (
        "## The paper's setting on a GPU (issue 27)\n\n"
        f"`python -m benchmarks paper_gpu` on {device}: {minutes:.1f} minutes wall."
        + (" **--quick**: synthetic, random weights, 1 epoch: the numbers only show that it runs." if quick else "")
    )
    return head + "\n\n" + format_summary(summary)
