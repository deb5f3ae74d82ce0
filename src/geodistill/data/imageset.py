"""`ImageSet`: a decoded dataset held as uint8 N x C x H x W, with its labels and provenance."""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

import numpy as np


@dataclass
class ImageSet:
    """A decoded dataset: ``images[i]`` (uint8 C x H x W) has label ``labels[i]``."""

    images: np.ndarray
    labels: np.ndarray
    classes: list[str]
    paths: list[str]
    key: str
    name: str
    cache_path: Path | None = None
    root: Path | None = None
    skipped: list[str] = field(default_factory=list)

    def __len__(self) -> int:
        return int(self.images.shape[0])

    @property
    def num_classes(self) -> int:
        return len(self.classes)

    @property
    def channels(self) -> int:
        return int(self.images.shape[1])

    @property
    def size(self) -> int:
        return int(self.images.shape[2])

    def class_counts(self) -> np.ndarray:
        """Number of images per class, indexed by label."""
        return np.bincount(self.labels, minlength=len(self.classes))
