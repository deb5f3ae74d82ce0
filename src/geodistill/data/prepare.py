"""One data path: a data config -> decoded images, the split and the normaliser (`TrainData`).

Training, `evaluate`, `export`, `profile`, `data info` and `predict` all come through
`prepare_data`, so a checkpoint is always evaluated and calibrated on the split it trained with.
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from geodistill.config import RunConfig
from geodistill.data.splits import make_split, split_from_files
from geodistill.data.store import load_dataset
from geodistill.data.transforms import Normalizer
from geodistill.errors import GeodistillError


@dataclass
class TrainData:
    """The decoded images, their labels and split, and the normaliser used by this model."""

    images: np.ndarray
    labels: np.ndarray
    classes: list[str]
    train: np.ndarray
    val: np.ndarray
    test: np.ndarray
    normalizer: Normalizer
    key: str
    size: int

    @property
    def channels(self) -> int:
        return int(self.images.shape[1])


def default_cache_dir(cfg: RunConfig) -> Path:
    """Where decoded images and teacher caches live: data.cache_dir, $GEODISTILL_CACHE or ~/.cache."""
    if cfg.data.cache_dir:
        return Path(cfg.data.cache_dir)
    return Path(os.environ.get("GEODISTILL_CACHE", Path.home() / ".cache" / "geodistill"))


def prepare_data(cfg: RunConfig, normalizer: dict | None = None) -> TrainData:
    """Decode (or memory-map) the dataset, split it, and fix the normaliser.

    ``normalizer`` (a dict from a checkpoint) overrides the config: a model is always fed the
    normalisation it was trained with.
    """
    d = cfg.data
    ds = load_dataset(
        d.dataset,
        d.root,
        size=d.size,
        channels=d.channels,
        cache_dir=default_cache_dir(cfg) / "images",
        strict=d.strict,
        download=d.download,
        n_per_class=d.n_per_class,
    )
    if d.split_files:
        split = split_from_files(ds.paths, d.split_files)
        if min(len(split.train), len(split.val), len(split.test)) == 0:
            raise GeodistillError(
                f"data.split_files must give non-empty train, val and test lists; got {split.sizes()}."
            )
    else:
        split = make_split(ds.labels, fractions=d.fractions, seed=d.split_seed)
    if normalizer is not None:
        norm = Normalizer.from_dict(normalizer)
    elif d.normalization == "mean_std":
        norm = Normalizer.from_images(np.asarray(ds.images[np.sort(split.train)]))
    else:
        norm = Normalizer.unit(ds.images.shape[1])
    return TrainData(ds.images, ds.labels, list(ds.classes), split.train, split.val, split.test, norm, ds.key, d.size)
