"""Training-speed benchmark (issue 4): what distillation costs over training the student alone.

On AID (../shared/data/aid150; ``--quick``: the synthetic set, one repeat) at 64 px, VGG16
teacher -> MobileNetV2 student, one process, same data, same batches. Each figure is the median over ``repeats`` epochs:
(a) epoch time of distillation reading the teacher cache / epoch time of the student alone;
(b) the same with the teacher run on every step (what the cache saves);
(c) images/s of geodistill's training step / a bare hand-written PyTorch loop doing the same
    math (uint8 batch -> dihedral view -> [0,1] -> student -> CE + KL + cosine on logits -> AdamW).
Only the training part of an epoch is timed (validation excluded).
"""

from __future__ import annotations

import statistics
import time
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F
import torchvision

from benchmarks.common import epochs_of, subset
from geodistill.config.run import build_config
from geodistill.data.prepare import TrainData
from geodistill.data.transforms import NUM_VIEWS, Normalizer
from geodistill.data.views import ViewSet
from geodistill.losses import Objective
from geodistill.models import build_model
from geodistill.teachers.cache import OnTheFlyTeacher, build_teacher_cache


def _epoch_times(cfg, data, objective_name: str, teacher_src, t_dim, run_dir: Path, repeats: int) -> list[float]:
    student = build_model("mobilenet_v2", len(data.classes))
    obj = (
        Objective.preset(objective_name, alpha=0.5, T=4.0, s_dim=student.feature_dim, t_dim=t_dim)
        if objective_name != "student"
        else Objective.preset("student")
    )
    cfg = cfg.model_copy(update={"train": cfg.train.model_copy(update={"epochs": repeats + 1})})
    return [h["train_time_s"] for h in epochs_of(cfg, data, student, obj, teacher_src, run_dir)[1:]]  # warm-up first


def _bare_loop(data: TrainData, cache, steps: int, batch: int, t_dim: int) -> float:
    """Images/s of a hand-written loop on torchvision's MobileNetV2: the same batch size, views,
    objective (CE + KL + cosine on logits, as the kl+cos preset) and optimiser, with none of
    geodistill's code in the step."""
    torch.manual_seed(0)
    net = torchvision.models.mobilenet_v2(num_classes=len(data.classes)).to(memory_format=torch.channels_last)
    opt = torch.optim.AdamW(net.parameters(), lr=1e-3, weight_decay=5e-4)
    net.train()
    order = np.random.default_rng(0).permutation(data.train)
    seen, t0, T = 0, 0.0, 4.0
    for s in range(steps + 2):
        if s == 2:
            t0, seen = time.perf_counter(), 0
        idx = order[(s * batch) % (len(order) - batch) :][:batch]
        views = torch.randint(0, NUM_VIEWS, (batch,))
        x = torch.from_numpy(np.asarray(data.images[idx]))
        for v in range(NUM_VIEWS):  # each view applied to its group of the batch at once
            m = views == v
            if m.any():
                xv = x[m].flip(-1) if v >= 4 else x[m]
                x[m] = torch.rot90(xv, v % 4, (2, 3))
        x = (x.float() / 255.0).contiguous(memory_format=torch.channels_last)
        y = torch.from_numpy(data.labels[idx]).long()
        r = cache.rows[idx]
        tz = torch.from_numpy(np.asarray(cache.logits[r, views.numpy()], dtype=np.float32))
        z = net(x)
        # the kl+cos preset at alpha=0.5: 0.5·CE + 0.5·KL(T=4) + 0.5·(1 - cos(z_s, z_t))
        kl = F.kl_div(F.log_softmax(z / T, 1), F.log_softmax(tz / T, 1), reduction="batchmean", log_target=True) * T * T
        cos = (1 - F.cosine_similarity(z, tz, dim=1)).mean()
        loss = 0.5 * F.cross_entropy(z, y) + 0.5 * kl + 0.5 * cos
        opt.zero_grad(set_to_none=True)
        loss.backward()
        opt.step()
        seen += batch
    return seen / (time.perf_counter() - t0)


def main(out_dir: Path, quick: bool = False) -> str:
    """Run the benchmark; returns its Markdown section."""
    n_train, repeats, batch = (32, 1, 16) if quick else (512, 3, 32)
    cache = out_dir / "cache"
    data = subset(64, n_train, cache, quick)
    base = build_config(
        {
            "data": {"dataset": "synthetic" if quick else "folder", "size": 64},
            "train": {"model": "mobilenet_v2", "batch_size": batch, "lr": 1e-3, "progress": False, "warmup_epochs": 0},
        }
    )
    teacher = build_model("cnn4" if quick else "vgg16", len(data.classes)).eval()  # quick: the code path only
    t0 = time.perf_counter()
    tcache = build_teacher_cache(
        teacher,
        data.images,
        data.train,
        Normalizer.unit(3),
        data_key=data.key,
        size=64,
        views=ViewSet(),
        cache_root=cache,
    )
    cache_s = time.perf_counter() - t0
    steps = n_train // batch
    # interleave the four measurements so a machine that gets busier or quieter over time
    # biases none of the ratios; each fit runs a warm-up epoch and one timed epoch
    alone, cached, onfly, bare_ips = [], [], [], []
    for r in range(repeats):
        alone += _epoch_times(base, data, "student", None, None, out_dir / f"alone{r}", 1)
        cached += _epoch_times(base, data, "kl+cos", tcache, teacher.feature_dim, out_dir / f"cached{r}", 1)
        onfly += _epoch_times(
            base,
            data,
            "kl+cos",
            OnTheFlyTeacher(teacher, Normalizer.unit(3)),
            teacher.feature_dim,
            out_dir / f"onfly{r}",
            1,
        )
        bare_ips.append(_bare_loop(data, tcache, steps, batch, teacher.feature_dim))
    ours_ips = [steps * batch / t for t in cached]
    med = statistics.median
    a, b, c = med(cached) / med(alone), med(onfly) / med(alone), med(ours_ips) / med(bare_ips)
    return "\n".join(
        [
            "## Training speed: distillation vs the student alone (issue 4)",
            "",
            f"AID 64 px, VGG16 teacher -> MobileNetV2 student, {n_train} training images, batch {batch}, "
            f"{steps} steps per epoch, median of {repeats} interleaved repeats, each one timed epoch after a "
            f"warm-up epoch; torch threads {torch.get_num_threads()}.",
            "",
            "| measure | value | goal |",
            "|---|---:|---:|",
            f"| (a) epoch time, distill with teacher cache ÷ student alone | **{a:.2f}** | ≤ 1.15 |",
            f"| (b) epoch time, distill with teacher every step ÷ student alone | {b:.2f} | (the saving) |",
            f"| (c) images/s, geodistill step ÷ bare PyTorch loop (same math) | **{c:.2f}** | ≥ 0.85 |",
            f"| student alone, s/epoch | {med(alone):.2f} | |",
            f"| distill + cache, s/epoch | {med(cached):.2f} | |",
            f"| distill + teacher each step, s/epoch | {med(onfly):.2f} | |",
            f"| bare loop, images/s | {med(bare_ips):.1f} | |",
            f"| teacher cache build ({n_train} images × 8 views) | {cache_s:.1f} s | paid once per teacher |",
            "",
        ]
    )
