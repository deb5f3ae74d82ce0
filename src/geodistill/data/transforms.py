"""Batch transforms as tensor ops: the 8 dihedral views (D4) and normalisation.

Views. Aerial scenes have no canonical orientation; the 8 rotations/flips of the square form
the dihedral group D4. View ``v`` in 0..7 is ``g_v = R^(v mod 4) . F^(v >= 4)``: first flip
left-right (reverse the width axis) if ``v >= 4``, then rotate by ``(v mod 4) * 90`` degrees
counter-clockwise (``torch.rot90(x, k, dims=(-2, -1))``). View 0 is the identity.

Group law (with ``F R F = R^-1``): ``g_a . g_b = R^(k_a + s_a k_b) F^(f_a xor f_b)`` where
``s_a = -1`` if ``a`` flips else ``+1``; so the inverse of a pure rotation ``k`` is ``-k``
and every flipped view is its own inverse.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
import torch
from torch import Tensor, nn

NUM_VIEWS = 8


def _apply_one(x: Tensor, v: int) -> Tensor:
    if v >= 4:
        x = torch.flip(x, dims=(-1,))
    k = v % 4
    return torch.rot90(x, k, dims=(-2, -1)) if k else x


def _check_view(v: int) -> int:
    v = int(v)
    if not 0 <= v < NUM_VIEWS:
        raise ValueError(f"view {v} is out of range: views are 0..7")
    return v


def apply_view(x: Tensor, view: Tensor | int) -> Tensor:
    """Apply view ``view`` (an int, or one id per sample: shape (B,)) to a B x C x H x W batch.

    Per-sample views are vectorised by grouping the batch by view id (at most 8 groups);
    they need square images because an odd rotation swaps height and width.
    """
    if isinstance(view, Tensor) and view.ndim == 0:
        view = int(view.item())
    if not isinstance(view, Tensor):
        return _apply_one(x, _check_view(view))
    view = view.to(device=x.device, dtype=torch.long).reshape(-1)
    if view.numel() != x.shape[0]:
        raise ValueError(f"got {view.numel()} view ids for a batch of {x.shape[0]}")
    if view.numel() and (int(view.min()) < 0 or int(view.max()) >= NUM_VIEWS):
        raise ValueError("view ids must be in 0..7")
    if x.shape[-1] != x.shape[-2]:
        raise ValueError(f"per-sample views need square images, got {tuple(x.shape[-2:])}")
    out = torch.empty_like(x)
    for v in torch.unique(view).tolist():
        sel = (view == v).nonzero(as_tuple=True)[0]
        out[sel] = _apply_one(x[sel], v)
    return out


def inverse_view(view: Tensor | int) -> Tensor | int:
    """The view id that undoes ``view``: rotations k -> (4 - k) mod 4, flips are involutions."""
    if isinstance(view, Tensor):
        view = view.long()
        return torch.where(view >= 4, view, (4 - view) % 4)
    v = _check_view(view)
    return v if v >= 4 else (4 - v) % 4


def compose_views(a: Tensor | int, b: Tensor | int) -> Tensor | int:
    """The view ``c`` with ``apply_view(apply_view(x, b), a) == apply_view(x, c)``."""
    if isinstance(a, Tensor) or isinstance(b, Tensor):
        a_t = torch.as_tensor(a).long()
        b_t = torch.as_tensor(b).long()
        fa, ka, fb, kb = a_t // 4, a_t % 4, b_t // 4, b_t % 4
        k = (ka + torch.where(fa == 1, -kb, kb)) % 4
        return 4 * (fa ^ fb) + k
    fa, ka, fb, kb = _check_view(a) // 4, a % 4, _check_view(b) // 4, b % 4
    return 4 * (fa ^ fb) + (ka + (-kb if fa else kb)) % 4


def invert_view(x: Tensor, view: Tensor | int) -> Tensor:
    """Undo ``apply_view(·, view)``: ``invert_view(apply_view(x, v), v) == x``."""
    return apply_view(x, inverse_view(view))


def random_views(n: int, generator: torch.Generator | None = None) -> Tensor:
    """``n`` view ids drawn uniformly from 0..7 (int64)."""
    return torch.randint(0, NUM_VIEWS, (n,), generator=generator, dtype=torch.long)


class Normalizer(nn.Module):
    """``y = (x / 255 - mean) / std`` per channel, as float32, for uint8 (or 0..255 float) input.

    The thesis convention ``[0, 1]`` is ``mean = 0, std = 1`` (``Normalizer.unit(channels)``).
    ``Normalizer.from_images(train_images)`` uses the per-channel mean and population standard
    deviation of the training images on the [0, 1] scale.
    """

    mean: Tensor
    std: Tensor

    def __init__(self, mean: Sequence[float], std: Sequence[float]) -> None:
        super().__init__()
        m = torch.as_tensor(list(mean), dtype=torch.float32)
        s = torch.as_tensor(list(std), dtype=torch.float32)
        if m.ndim != 1 or m.shape != s.shape or m.numel() == 0:
            raise ValueError(f"mean and std must be equal-length lists, got {list(mean)} and {list(std)}")
        if bool((s <= 0).any()):
            raise ValueError(f"std must be positive, got {s.tolist()}")
        self.register_buffer("mean", m.view(1, -1, 1, 1))
        self.register_buffer("std", s.view(1, -1, 1, 1))

    @classmethod
    def unit(cls, channels: int = 3) -> Normalizer:
        """Scale to [0, 1] only (mean 0, std 1), as in the thesis."""
        return cls([0.0] * channels, [1.0] * channels)

    @classmethod
    def from_images(cls, images: np.ndarray | Tensor, chunk: int = 512, eps: float = 1e-6) -> Normalizer:
        """Per-channel mean/std (on x/255) of a uint8 N x C x H x W array, in chunks (float64 sums)."""
        n, c = int(images.shape[0]), int(images.shape[1])
        if n == 0:
            raise ValueError("cannot compute normalisation statistics of an empty image set")
        s1 = np.zeros(c, dtype=np.float64)
        s2 = np.zeros(c, dtype=np.float64)
        for start in range(0, n, chunk):
            block = images[start : start + chunk]
            block = block.numpy() if isinstance(block, Tensor) else np.asarray(block)
            block = block.astype(np.float64) / 255.0
            s1 += block.sum(axis=(0, 2, 3))
            s2 += np.square(block).sum(axis=(0, 2, 3))
        count = n * int(images.shape[2]) * int(images.shape[3])
        mean = s1 / count
        std = np.sqrt(np.maximum(s2 / count - mean**2, 0.0))
        std = np.where(std < eps, 1.0, std)
        return cls(mean.tolist(), std.tolist())

    def forward(self, x: Tensor) -> Tensor:
        return (x.float() / 255.0 - self.mean) / self.std

    def to_dict(self) -> dict[str, list[float]]:
        return {"mean": self.mean.flatten().tolist(), "std": self.std.flatten().tolist()}

    @classmethod
    def from_dict(cls, d: dict) -> Normalizer:
        return cls(d["mean"], d["std"])

    def extra_repr(self) -> str:
        fmt = lambda t: "[" + ", ".join(f"{v:.4f}" for v in t.flatten().tolist()) + "]"  # noqa: E731
        return f"mean={fmt(self.mean)}, std={fmt(self.std)}"
