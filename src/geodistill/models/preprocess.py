"""Raw pixels in: a model wrapped with its normalisation, as it is exported, profiled and deployed.

``Preprocessed(model, mean, std)(x) = model((x / 255 - mean) / std)`` for a uint8 (or float
0..255) batch ``x``: the input contract of every model geodistill exports (`geodistill.deploy`)
and of every latency it measures (`models.cost`).
"""

from __future__ import annotations

from collections.abc import Callable, Sequence

import numpy as np
import torch
from torch import Tensor, nn

from geodistill.core.errors import GeodistillError


class Preprocessed(nn.Module):
    """``x uint8 (or float 0..255) -> model((x/255 - mean)/std)``: the model a user can feed raw pixels."""

    def __init__(self, model: nn.Module, mean: Sequence[float], std: Sequence[float]) -> None:
        super().__init__()
        self.model = model
        c = len(mean)
        self.register_buffer("mean", torch.tensor(list(mean), dtype=torch.float32).view(1, c, 1, 1))
        self.register_buffer("std", torch.tensor(list(std), dtype=torch.float32).view(1, c, 1, 1))

    def forward(self, x: Tensor) -> Tensor:
        return self.model((x.to(torch.float32) / 255.0 - self.mean) / self.std)


def normalizer_stats(normalizer: dict | None, in_channels: int) -> tuple[list[float], list[float]]:
    """``(mean, std)`` per channel from a Normalizer dict (``None`` = the [0,1] scaling: 0 and 1)."""
    if not normalizer:
        return [0.0] * in_channels, [1.0] * in_channels
    mean = [float(v) for v in np.ravel(normalizer.get("mean", [0.0]))]
    std = [float(v) for v in np.ravel(normalizer.get("std", [1.0]))]
    mean = mean * in_channels if len(mean) == 1 else mean
    std = std * in_channels if len(std) == 1 else std
    if len(mean) != in_channels or len(std) != in_channels:
        raise GeodistillError(
            f"The normaliser has {len(mean)} means and {len(std)} stds but the model takes {in_channels} "
            "channels; the checkpoint is inconsistent, re-save it."
        )
    if min(std) <= 0:
        raise GeodistillError("The normaliser has a non-positive std; the checkpoint is corrupt, re-save it.")
    return mean, std


def with_preprocessing(model: nn.Module, normalizer: dict | None, in_channels: int) -> Preprocessed:
    """Wrap ``model`` so it takes uint8 pixels (see the module docstring)."""
    mean, std = normalizer_stats(normalizer, in_channels)
    return Preprocessed(model, mean, std)


def torch_runner(module: nn.Module) -> Callable[[np.ndarray], np.ndarray]:
    """Numpy-in, numpy-out call of a uint8-input torch module under ``inference_mode``."""

    def run(x: np.ndarray) -> np.ndarray:
        with torch.inference_mode():
            return module(torch.from_numpy(x)).float().numpy()

    return run
