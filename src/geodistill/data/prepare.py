"""One data path: a data config -> (ImageSet, Split, Normalizer), bundled as `TrainData`.

Training, `evaluate`, `export`, `profile` (int8 calibration) and `data info` all come through
`prepare_data`, so a checkpoint is always evaluated and calibrated on the split it trained with
(``checkpoint_data_config`` rebuilds that config from a checkpoint's metadata). `predict` needs
no dataset: it decodes its files with the same ``imageio.read_image`` the image cache uses.
"""

from __future__ import annotations

from dataclasses import dataclass, replace
from pathlib import Path

import numpy as np

from geodistill.config.run import DataConfig, RunConfig, build_config
from geodistill.core.errors import GeodistillError
from geodistill.data.folds import fold_split, make_folds
from geodistill.data.imageset import ImageSet
from geodistill.data.splits import Split, make_split, ratio_split, split_from_files
from geodistill.data.store import default_cache_dir, image_cache_dir, load_dataset
from geodistill.data.transforms import Normalizer

__all__ = ["TrainData", "checkpoint_data_config", "default_cache_dir", "make_data_split", "prepare_data"]


@dataclass(frozen=True)
class TrainData:
    """The decoded dataset, its train/val/test split and the normaliser a model is fed with."""

    dataset: ImageSet
    split: Split
    normalizer: Normalizer

    @property
    def images(self) -> np.ndarray:
        return self.dataset.images

    @property
    def labels(self) -> np.ndarray:
        return self.dataset.labels

    @property
    def classes(self) -> list[str]:
        return list(self.dataset.classes)

    @property
    def key(self) -> str:
        return self.dataset.key

    @property
    def size(self) -> int:
        return self.dataset.size

    @property
    def channels(self) -> int:
        return self.dataset.channels

    @property
    def train(self) -> np.ndarray:
        return self.split.train

    @property
    def val(self) -> np.ndarray:
        return self.split.val

    @property
    def test(self) -> np.ndarray:
        return self.split.test


def make_data_split(ds: ImageSet, d: DataConfig) -> Split:
    """The split of ``d``: its split files when given (all three non-empty), else its protocol
    split when ``d.train_ratio`` is set (`splits.ratio_split`), else the seeded stratified split
    with ``d.fractions`` (both with ``d.split_seed``). With ``d.folds`` and
    ``d.hold_out`` the training part loses fold ``hold_out`` (`data.folds`, seeded by the split
    seed): what an out-of-fold teacher trains on."""
    if d.train_ratio is not None:
        split = ratio_split(ds.labels, d.train_ratio, d.val_ratio, seed=d.split_seed)
    elif not d.split_files:
        split = make_split(ds.labels, fractions=d.fractions, seed=d.split_seed, classes=ds.classes)
    else:
        split = split_from_files(ds.paths, d.split_files)
        if min(len(split.train), len(split.val), len(split.test)) == 0:
            raise GeodistillError(
                f"data.split_files must give non-empty train, val and test lists; got {split.sizes()}."
            )
    if d.folds is None:
        return split
    fit, _ = fold_split(split.train, make_folds(ds.labels, split.train, d.folds, d.split_seed), d.hold_out)
    return replace(split, train=fit)


def prepare_data(cfg: RunConfig | DataConfig, normalizer: dict | None = None) -> TrainData:
    """Decode (or memory-map) the dataset of ``cfg`` (a run config or its data section), split
    it, and fix the normaliser.

    Decoded images are cached under ``image_cache_dir(cfg)``. ``normalizer`` (a dict from a
    checkpoint) overrides the config: a model is always fed the normalisation it was trained
    with; otherwise ``mean_std`` uses the per-channel mean and std of the training split.
    """
    d = cfg.data if isinstance(cfg, RunConfig) else cfg
    ds = load_dataset(
        d.dataset,
        d.root,
        size=d.size,
        channels=d.channels,
        cache_dir=image_cache_dir(d),
        strict=d.strict,
        download=d.download,
        n_per_class=d.n_per_class,
    )
    split = make_data_split(ds, d)
    if normalizer is not None:
        norm = Normalizer.from_dict(normalizer)
    elif d.normalization == "mean_std":
        norm = Normalizer.from_images(np.asarray(ds.images[np.sort(split.train)]))
    else:
        norm = Normalizer.unit(ds.channels)
    return TrainData(ds, split, norm)


def checkpoint_data_config(
    meta: dict,
    *,
    dataset: str | None = None,
    root: str | Path | None = None,
    size: int | None = None,
    where: str = "the checkpoint",
) -> DataConfig | None:
    """The data config a checkpoint trained with (``meta["config"]["data"]``), at ``size`` px
    and the checkpoint's channel count, or ``None`` when it names no dataset.

    ``dataset`` names another dataset instead: then only the split rule (fractions or ratios) and seed are kept
    (the split files and ``n_per_class`` belong to the trained dataset). ``root`` moves the
    dataset folder (split files name relative paths, so they still apply).
    """
    saved = dict((meta.get("config") or {}).get("data") or {})
    if dataset is not None and dataset != saved.get("dataset"):
        saved = {k: saved[k] for k in ("fractions", "split_seed", "train_ratio", "val_ratio") if k in saved}
        saved["dataset"] = dataset
    if not saved.get("dataset"):
        return None
    if root is not None:
        saved["root"] = str(root)
    saved["size"] = int(size or meta["size"])
    saved["channels"] = int(meta["in_channels"])
    return build_config({"data": saved}, where=where).data
