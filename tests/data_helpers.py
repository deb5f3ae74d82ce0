"""Tiny image folders for the data-layer tests (built in tmp_path, never shipped)."""

from __future__ import annotations

from pathlib import Path

import numpy as np
from PIL import Image


def rgb(seed: int, size: int = 8, w: int | None = None) -> np.ndarray:
    """A deterministic H x W x 3 uint8 image with distinct content per seed."""
    rng = np.random.default_rng(seed)
    return rng.integers(0, 256, (size, w or size, 3), dtype=np.uint8)


def write_image(path: Path, arr: np.ndarray, fmt: str | None = None) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    Image.fromarray(arr).save(path, format=fmt)
    return path


def make_folder(root: Path, counts: dict[str, int], ext: str = "png", size: int = 8, start: int = 0) -> Path:
    """root/<class>/<class>_<i>.<ext> with ``counts[class]`` random RGB images each."""
    seed = start
    for cls, n in counts.items():
        for i in range(n):
            write_image(root / cls / f"{cls}_{i}.{ext}", rgb(seed, size))
            seed += 1
    return root
