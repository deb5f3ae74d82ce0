"""What the benchmarks share: where AID lives, the data of a full or a quick run, one trained run's
epoch times through the product's loop, and the machine they ran on."""

from __future__ import annotations

import contextlib
import os
import platform
from pathlib import Path

import numpy as np
import torch

from geodistill.config import RunConfig
from geodistill.data import load_dataset, make_split
from geodistill.data.prepare import TrainData
from geodistill.data.splits import Split
from geodistill.data.transforms import Normalizer
from geodistill.engine.context import run_context
from geodistill.engine.trainer import fit
from geodistill.losses import Objective

HERE = Path(__file__).resolve().parent
AID = Path(os.environ.get("GEODISTILL_AID", HERE.parents[1] / "shared" / "data" / "aid150"))


def subset(size: int, n_train: int, cache: Path, quick: bool, normalize: bool = False) -> TrainData:
    """A training subset of ``n_train`` images at ``size`` px: of AID (split seed 0), or with
    ``quick`` of the embedded synthetic set, so a quick run needs no data on disk."""
    if quick:
        ds = load_dataset("synthetic", size=size, n_per_class=max(8, n_train // 5), cache_dir=cache / "images")
    else:
        ds = load_dataset("folder", AID, size=size, cache_dir=cache / "images")
    split = make_split(ds.labels, seed=0)
    train = np.sort(split.train)[:: max(1, len(split.train) // n_train)][:n_train]
    norm = Normalizer.from_images(np.asarray(ds.images[train])) if normalize else Normalizer.unit(ds.channels)
    return TrainData(ds, Split(train, split.val[: max(16, n_train // 3)], split.test[:64]), norm)


def epochs_of(cfg: RunConfig, data: TrainData, student, objective: Objective, teacher, run_dir: Path) -> list[dict]:
    """The epoch rows of one run of the product's training loop (`engine.trainer.fit`)."""
    ctx = run_context(cfg, run_dir, data, student, resume=False)
    return fit(ctx, student, objective, teacher, meta={"arch": cfg.train.model}).history


def machine() -> str:
    """This machine in one line: system, cores, CPU model, torch and its threads."""
    cpu = "unknown CPU"
    with contextlib.suppress(OSError, StopIteration):
        cpu = next(
            ln.split(":", 1)[1].strip()
            for ln in Path("/proc/cpuinfo").read_text().splitlines()
            if ln.startswith("model name")
        )
    return (
        f"{platform.system()} {platform.machine()}, {os.cpu_count()} cores ({cpu}), torch {torch.__version__}, "
        f"{torch.get_num_threads()} threads, no GPU used"
    )
