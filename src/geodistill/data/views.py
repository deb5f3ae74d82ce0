"""Exact view sets: a finite augmentation whose every element has an id, so the teacher's answer
for each (image, view id) can be cached and looked up exactly.

A view id ``v`` in ``0 .. n_views-1`` decodes to ``(crop c, dihedral d)`` with ``d = v % 8``
(or ``d = 0`` without dihedral views) and ``c = v // 8``. Crop ``c`` of a ``g x g`` grid pads the
image by ``pad`` pixels (reflection) and takes the ``H x W`` window at offset
``(o[c // g], o[c % g])`` with ``o = round(linspace(0, 2 pad, g))``; then dihedral view ``d`` is
applied (`transforms.apply_view`). ``g = 1`` is the identity crop (offset ``pad, pad``), so the
plain dihedral set is the special case ``crop_grid = 1``.

Fixing the crop parameters inside the view id is how FKD (Shen & Xing, "A Fast Knowledge
Distillation Framework for Visual Recognition", ECCV 2022) stores soft labels for random crops;
here the set is small and fixed, so it is cached completely rather than sampled.

`view_plan` is the one reading of ``data.augment``: which view set a batch draws from, and
whether a random crop (outside any finite set, so the teacher must run live) comes on top.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import torch
from torch import Tensor

from geodistill.core.errors import GeodistillError
from geodistill.data.transforms import NUM_VIEWS, apply_view


@dataclass(frozen=True)
class ViewSet:
    """``dihedral`` (8 rotations/flips or identity only) x a ``crop_grid`` x ``crop_grid`` grid of crops."""

    dihedral: bool = True
    crop_grid: int = 1
    crop_pad: int = 4

    def __post_init__(self) -> None:
        if self.crop_grid < 1:
            raise GeodistillError(f"data.crop_grid must be at least 1, got {self.crop_grid}.")
        if self.crop_grid > 1 and self.crop_pad < 1:
            raise GeodistillError(f"data.crop_pad must be at least 1 when data.crop_grid > 1, got {self.crop_pad}.")
        if self.crop_grid > 2 * self.crop_pad + 1:  # offsets round(linspace(0, 2 pad, g)) would repeat
            raise GeodistillError(
                f"data.crop_grid={self.crop_grid} needs data.crop_pad >= {self.crop_grid // 2} "
                f"(got {self.crop_pad}): a {self.crop_grid}-wide grid has only {2 * self.crop_pad + 1} distinct "
                "offsets, so some view ids would be the same crop."
            )

    @property
    def n_dihedral(self) -> int:
        return NUM_VIEWS if self.dihedral else 1

    @property
    def n_crops(self) -> int:
        return self.crop_grid * self.crop_grid

    @property
    def n_views(self) -> int:
        return self.n_dihedral * self.n_crops

    def decode(self, view: int) -> tuple[int, int]:
        """``(crop id, dihedral id)`` of view id ``view``."""
        if not 0 <= view < self.n_views:
            raise GeodistillError(f"view id {view} is outside this view set (0..{self.n_views - 1}).")
        return view // self.n_dihedral, view % self.n_dihedral

    def crop_offset(self, crop: int) -> tuple[int, int]:
        """Top-left corner ``(row, col)`` of crop ``crop`` inside the ``pad``-padded image."""
        if self.crop_grid == 1:
            return self.crop_pad, self.crop_pad
        o = np.round(np.linspace(0, 2 * self.crop_pad, self.crop_grid)).astype(int)
        return int(o[crop // self.crop_grid]), int(o[crop % self.crop_grid])

    def apply(self, x: Tensor, views: Tensor | int) -> Tensor:
        """Views of a batch ``x`` (B x C x H x W, any dtype): one view id per image, or one for all."""
        v = torch.as_tensor(views, dtype=torch.long)
        if v.ndim == 0:
            v = v.expand(x.shape[0])
        crops, dihedral = v // self.n_dihedral, v % self.n_dihedral
        if self.n_crops > 1:
            x = self._crop(x, crops)
        return apply_view(x, dihedral) if self.dihedral else x

    def _crop(self, x: Tensor, crops: Tensor) -> Tensor:
        h, w, p = x.shape[-2], x.shape[-1], self.crop_pad
        padded = torch.nn.functional.pad(x.float(), (p, p, p, p), mode="reflect").to(x.dtype)
        out = torch.empty_like(x)
        for c in torch.unique(crops).tolist():
            rows = crops == c
            i, j = self.crop_offset(int(c))
            out[rows] = padded[rows, :, i : i + h, j : j + w]
        return out

    def random(self, n: int, generator: torch.Generator | None = None) -> Tensor:
        """``n`` view ids drawn uniformly from the set."""
        return torch.randint(0, self.n_views, (n,), generator=generator)

    def key(self) -> dict:
        """What identifies this set in a teacher-cache key (the plain dihedral set keeps the
        key it always had: ``{"views": 8}``)."""
        k: dict = {"views": self.n_views}
        if self.crop_grid > 1:
            k.update(crop_grid=self.crop_grid, crop_pad=self.crop_pad)
        return k


@dataclass(frozen=True)
class ViewPlan:
    """What ``data.augment`` asks of each training batch: a view id from ``viewset`` per image,
    then (``crop``) one random translation of up to ``crop_pad`` pixels per batch."""

    viewset: ViewSet
    crop: bool = False
    crop_pad: int = 4

    @property
    def views(self) -> int:
        """How many view ids a batch draws from (1 = the identity only)."""
        return self.viewset.n_views

    @property
    def teacher_runs_live(self) -> bool:
        """Random crops are outside the cached view set, so the teacher must see each cropped batch."""
        return self.crop


AUGMENTS = ("none", "dihedral", "dihedral+grid", "dihedral+crop")


def view_plan(augment: str, crop_grid: int = 3, crop_pad: int = 4) -> ViewPlan:
    """The plan for ``data.augment``: ``none`` (identity), ``dihedral`` (the 8 views),
    ``dihedral+grid`` (8 views x a ``crop_grid`` x ``crop_grid`` grid of fixed crops: exact,
    cached) or ``dihedral+crop`` (8 views + a random crop: the teacher runs live)."""
    if augment not in AUGMENTS:
        raise GeodistillError(f"data.augment must be one of {', '.join(AUGMENTS)}, not {augment!r}.")
    grid = crop_grid if augment == "dihedral+grid" else 1
    vs = ViewSet(dihedral=augment != "none", crop_grid=grid, crop_pad=crop_pad)
    return ViewPlan(vs, crop=augment == "dihedral+crop", crop_pad=crop_pad)


def plan_of(data_cfg) -> ViewPlan:
    """`view_plan` of a ``DataConfig`` (its ``augment``, ``crop_grid`` and ``crop_pad``)."""
    return view_plan(data_cfg.augment, data_cfg.crop_grid, data_cfg.crop_pad)
