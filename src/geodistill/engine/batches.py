"""Training batches: which images a step sees, in which view, with which teacher answer.

Every random choice of step s in epoch e is a pure function of (seed, e, s, rank), so a run
resumed from a mid-epoch checkpoint replays exactly the batches and views an uninterrupted run
would have seen. Batches come straight from the in-memory uint8 store (no DataLoader workers).
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import torch
from torch import Tensor

from geodistill.data.prepare import TrainData
from geodistill.data.views import ViewPlan
from geodistill.teachers.cache import TeacherSource


@dataclass
class Batch:
    """One training step's input on the training device; teacher fields are None without a teacher."""

    x: Tensor
    y: Tensor
    t_logits: Tensor | None
    t_feat: Tensor | None


def epoch_order(train: np.ndarray, seed: int, epoch: int, rank: int, world: int, batch: int) -> list[np.ndarray]:
    """This rank's batches for one epoch: a seeded permutation, sharded by rank, last partial
    batch dropped when at least one full batch exists (keeps batch-norm statistics sane)."""
    perm = np.random.default_rng([seed, epoch]).permutation(train)
    shard = perm[rank::world]
    n_full = len(shard) // batch
    if n_full == 0:
        return [shard]
    return [shard[i * batch : (i + 1) * batch] for i in range(n_full)]


def step_generator(seed: int, epoch: int, step: int, rank: int) -> torch.Generator:
    """The generator of one step's random views and crop, seeded by (seed, epoch, step, rank)."""
    g = torch.Generator()
    g.manual_seed(int(np.random.SeedSequence([seed, epoch, step, rank]).generate_state(1)[0]))
    return g


def random_crop(x: Tensor, g: torch.Generator, pad: int = 4) -> Tensor:
    """Reflect-pad by ``pad`` and crop back at one random offset per batch (translation jitter)."""
    h, w = x.shape[-2:]
    xp = torch.nn.functional.pad(x.float(), (pad, pad, pad, pad), mode="reflect").to(x.dtype)
    i, j = (int(v) for v in torch.randint(0, 2 * pad + 1, (2,), generator=g))
    return xp[..., i : i + h, j : j + w]


def assemble_batch(
    data: TrainData,
    idx: np.ndarray,
    plan: ViewPlan,
    *,
    seed: int,
    epoch: int,
    step: int,
    rank: int,
    teacher: TeacherSource | None = None,
    teacher_feats: bool = False,
    channels_last: bool = True,
    device: torch.device | str = "cpu",
) -> Batch:
    """Images ``idx`` as step ``step`` of ``epoch``: a view id of ``plan.viewset`` per image (then
    one random crop when ``plan.crop``) drawn from :func:`step_generator`, the teacher's answer for exactly those
    pixels, the student's normalisation, optionally channels_last, on ``device``."""
    g = step_generator(seed, epoch, step, rank)
    x_u8 = torch.from_numpy(np.asarray(data.images[idx]))
    views = torch.randint(0, plan.views, (len(idx),), generator=g)
    if plan.views > 1:
        x_u8 = plan.viewset.apply(x_u8, views)
    if plan.crop:
        x_u8 = random_crop(x_u8, g, plan.crop_pad)
    y = torch.from_numpy(data.labels[idx]).long()
    t_logits = t_feat = None
    if teacher is not None:
        t_logits, t_feat = teacher(idx, views, x_u8, feats=teacher_feats)
    x = data.normalizer(x_u8)
    if channels_last:
        x = x.contiguous(memory_format=torch.channels_last)
    return Batch(
        x.to(device),
        y.to(device),
        None if t_logits is None else t_logits.to(device),
        None if t_feat is None else t_feat.to(device),
    )
