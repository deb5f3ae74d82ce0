"""The one training loop: a teacher, a student alone and a distilled student differ only in the
objective and whether a teacher source is given.

Built on Lightning Fabric (devices, DDP, multi-node, precision); batches come straight from the
in-memory uint8 store (no DataLoader workers to fight the compute threads). Every random choice
of step s in epoch e is a pure function of (seed, e, s, rank), so a run resumed from a mid-epoch
checkpoint replays exactly the batches and views an uninterrupted run would have seen.
"""

from __future__ import annotations

import math
import os
import signal
import time
from collections.abc import Callable
from pathlib import Path

import numpy as np
import torch
from torch import Tensor, nn

from geodistill.atomic import write_json as write_json_atomic
from geodistill.config import RunConfig
from geodistill.data.prepare import TrainData
from geodistill.data.transforms import NUM_VIEWS, apply_view
from geodistill.engine.cache import TeacherSource
from geodistill.engine.checkpoint import save_checkpoint
from geodistill.errors import GeodistillError
from geodistill.losses import LossInputs, Objective
from geodistill.metrics import confusion, metrics_from_confusion
from geodistill.models import first_layer_weight

_FABRICS: dict[tuple, object] = {}


def get_fabric(cfg: RunConfig):
    """One Fabric per process and setting (DDP launches once; later runs reuse its processes)."""
    from lightning.fabric import Fabric

    t = cfg.train
    precision = {"32": "32-true", "bf16": "bf16-mixed"}.get(t.precision, t.precision)
    key = (t.accelerator, str(t.devices), t.strategy, t.num_nodes, precision)
    if key not in _FABRICS:
        fabric = Fabric(
            accelerator=t.accelerator,
            devices=t.devices,
            strategy=t.strategy,
            num_nodes=t.num_nodes,
            precision=precision,
        )
        fabric.launch()
        _FABRICS[key] = fabric
    return _FABRICS[key]


class TrainStep(nn.Module):
    """Student + objective in one module so that DDP syncs the projector's gradients too.

    forward(x, y, t_logits, t_feat) -> (loss, per-term values, student logits).
    """

    def __init__(self, student: nn.Module, objective: Objective) -> None:
        super().__init__()
        self.student, self.objective = student, objective

    def forward(self, x: Tensor, y: Tensor, t_logits: Tensor | None, t_feat: Tensor | None):
        if self.objective.needs_features:
            logits, feats = self.student.forward_features(x)
        else:
            logits, feats = self.student(x), None
        w1 = first_layer_weight(self.student) if self.objective.needs_first_weight else None
        total, terms = self.objective(
            LossInputs(
                s_logits=logits.float(),
                target=y,
                t_logits=t_logits,
                s_feat=None if feats is None else feats.float(),
                t_feat=t_feat,
                first_weight=w1,
            )
        )
        return total, terms, logits


def _step_generator(seed: int, epoch: int, step: int, rank: int) -> torch.Generator:
    g = torch.Generator()
    g.manual_seed(int(np.random.SeedSequence([seed, epoch, step, rank]).generate_state(1)[0]))
    return g


def epoch_order(train: np.ndarray, seed: int, epoch: int, rank: int, world: int, batch: int) -> list[np.ndarray]:
    """This rank's batches for one epoch: a seeded permutation, sharded by rank, last partial
    batch dropped when at least one full batch exists (keeps batch-norm statistics sane)."""
    perm = np.random.default_rng([seed, epoch]).permutation(train)
    shard = perm[rank::world]
    n_full = len(shard) // batch
    if n_full == 0:
        return [shard]
    return [shard[i * batch : (i + 1) * batch] for i in range(n_full)]


def random_crop(x: Tensor, g: torch.Generator, pad: int = 4) -> Tensor:
    """Reflect-pad by ``pad`` and crop back at one random offset per batch (translation jitter)."""
    h, w = x.shape[-2:]
    xp = torch.nn.functional.pad(x.float(), (pad, pad, pad, pad), mode="reflect").to(x.dtype)
    i, j = (int(v) for v in torch.randint(0, 2 * pad + 1, (2,), generator=g))
    return xp[..., i : i + h, j : j + w]


def lr_factor(step: int, total: int, warmup: int) -> float:
    """Linear warm-up to 1 over ``warmup`` steps, then cosine decay to 0 at ``total``."""
    if warmup > 0 and step < warmup:
        return (step + 1) / warmup
    progress = (step - warmup) / max(1, total - warmup)
    return 0.5 * (1.0 + math.cos(math.pi * min(1.0, progress)))


@torch.no_grad()
def evaluate_split(
    fabric, model: nn.Module, data: TrainData, idx: np.ndarray, batch: int = 256, channels_last: bool = True
) -> dict:
    """Metrics of ``model`` on the images ``idx``; sharded across processes, confusion summed."""
    model.eval()
    shard = idx[fabric.global_rank :: fabric.world_size]
    k = len(data.classes)
    cm = torch.zeros(k, k, dtype=torch.long)
    for s in range(0, len(shard), batch):
        b = shard[s : s + batch]
        x = data.normalizer(torch.from_numpy(np.asarray(data.images[b])))
        if channels_last:
            x = x.contiguous(memory_format=torch.channels_last)
        preds = model(x.to(fabric.device)).argmax(1).cpu()
        cm += confusion(preds, torch.from_numpy(data.labels[b]), k)
    if fabric.world_size > 1:
        cm = fabric.all_reduce(cm.to(fabric.device), reduce_op="sum").cpu().long()
    return metrics_from_confusion(cm, data.classes)


def _kill_hook(global_step: int) -> None:
    """Test hook: GEODISTILL_KILL_AT_STEP=N sends SIGKILL to this process after step N."""
    at = os.environ.get("GEODISTILL_KILL_AT_STEP")
    if at is not None and global_step == int(at):
        os.kill(os.getpid(), signal.SIGKILL)


def fit(
    cfg: RunConfig,
    data: TrainData,
    student: nn.Module,
    objective: Objective,
    teacher: TeacherSource | None,
    run_dir: Path,
    *,
    meta: dict,
    resume: bool = False,
    log: Callable[[str], None] = print,
) -> dict:
    """Train ``student`` under ``objective``; returns the training record.

    Writes ``last.ckpt`` (resumable state, every ``checkpoint_every`` steps and each epoch),
    ``model.ckpt`` (best validation accuracy) and ``metrics.csv`` under ``run_dir``.
    """
    t = cfg.train
    fabric = get_fabric(cfg)
    rank, world = fabric.global_rank, fabric.world_size
    torch.manual_seed(t.seed)
    if t.channels_last:
        student = student.to(memory_format=torch.channels_last)
    step_module = TrainStep(student, objective)
    params = [p for p in step_module.parameters() if p.requires_grad]
    if t.optimizer == "sgd":
        opt = torch.optim.SGD(params, lr=t.lr, momentum=0.9, nesterov=True, weight_decay=t.weight_decay)
    else:
        opt = torch.optim.AdamW(params, lr=t.lr, weight_decay=t.weight_decay)
    steps_per_epoch = len(epoch_order(data.train, t.seed, 0, rank, world, t.batch_size))
    total, warmup = steps_per_epoch * t.epochs, int(round(t.warmup_epochs * steps_per_epoch))
    sched = torch.optim.lr_scheduler.LambdaLR(opt, lambda s: lr_factor(s, total, warmup))
    module, opt = fabric.setup(step_module, opt)

    aug = cfg.data.augment
    n_views = NUM_VIEWS if aug.startswith("dihedral") else 1
    state = {
        "epoch": 0,
        "step": 0,
        "global_step": 0,
        "best_val": -1.0,
        "best_epoch": -1,
        "bad_epochs": 0,
        "history": [],
        "partial": [0.0, 0, 0],
    }
    last, best = run_dir / "last.ckpt", run_dir / "model.ckpt"
    if resume and last.is_file():
        ck = torch.load(last, map_location="cpu", weights_only=True)
        ts = ck["train_state"]
        step_module.student.load_state_dict(ck["state_dict"])
        step_module.objective.load_state_dict(ts["objective"])
        opt.load_state_dict(ts["optimizer"])
        sched.load_state_dict(ts["scheduler"])
        torch.set_rng_state(ts["torch_rng"])
        state = {k: ts[k] for k in state}
        log(f"resumed from {last} at epoch {state['epoch'] + 1}, step {state['step']}")

    def checkpoint(path: Path, with_state: bool, metrics: dict | None = None) -> None:
        if not fabric.is_global_zero:
            return
        ts = None
        if with_state:
            ts = dict(
                state,
                objective=step_module.objective.state_dict(),
                optimizer=opt.state_dict(),
                scheduler=sched.state_dict(),
                torch_rng=torch.get_rng_state(),
            )
        save_checkpoint(
            path,
            step_module.student,
            arch=meta["arch"],
            num_classes=len(data.classes),
            in_channels=data.channels,
            classes=data.classes,
            size=data.size,
            normalizer=data.normalizer.to_dict(),
            metrics=metrics or {},
            config=cfg.model_dump(),
            train_state=ts,
        )

    csv_path = run_dir / "metrics.csv"
    tb = _tensorboard(run_dir) if fabric.is_global_zero else None
    bar = _progress_bar() if (t.progress and fabric.is_global_zero) else None
    start_epoch = state["epoch"]
    for epoch in range(start_epoch, t.epochs):
        module.train()
        batches = epoch_order(data.train, t.seed, epoch, rank, world, t.batch_size)
        t0 = time.perf_counter()
        first = state["step"] if epoch == start_epoch else 0
        loss_sum, correct, seen = state["partial"] if first else (0.0, 0, 0)
        task = (
            bar.add_task(f"epoch {epoch + 1}/{t.epochs}", total=len(batches), completed=first, info="") if bar else None
        )
        for step in range(first, len(batches)):
            idx = batches[step]
            g = _step_generator(t.seed, epoch, step, rank)
            x_u8 = torch.from_numpy(np.asarray(data.images[idx]))
            views = torch.randint(0, n_views, (len(idx),), generator=g)
            if n_views > 1:
                x_u8 = apply_view(x_u8, views)
            if aug == "dihedral+crop":
                x_u8 = random_crop(x_u8, g)
            y = torch.from_numpy(data.labels[idx]).long()
            t_logits = t_feat = None
            if teacher is not None:
                t_logits, t_feat = teacher(idx, views, x_u8, feats=objective.needs_features)
            x = data.normalizer(x_u8)
            if t.channels_last:
                x = x.contiguous(memory_format=torch.channels_last)
            x, y = x.to(fabric.device), y.to(fabric.device)
            t_logits = None if t_logits is None else t_logits.to(fabric.device)
            t_feat = None if t_feat is None else t_feat.to(fabric.device)
            loss, terms, logits = module(x, y, t_logits, t_feat)
            if not torch.isfinite(loss):
                bad = [n for n, v in terms.items() if not torch.isfinite(v)] or ["total"]
                raise GeodistillError(
                    f"Loss term {bad[0]!r} became {float(terms.get(bad[0], loss).detach())} at epoch {epoch + 1}, step {step + 1}; "
                    "lower train.lr, or check the data and the objective's weights."
                )
            opt.zero_grad(set_to_none=True)
            fabric.backward(loss)
            opt.step()
            sched.step()
            loss_sum += float(loss.detach()) * len(idx)
            correct += int((logits.argmax(1) == y).sum())
            seen += len(idx)
            state["step"], state["global_step"] = step + 1, state["global_step"] + 1
            state["partial"] = [loss_sum, correct, seen]
            if t.checkpoint_every and state["global_step"] % t.checkpoint_every == 0:
                checkpoint(last, True)
                fabric.barrier()
            if bar is not None:
                bar.update(task, advance=1, info=f"loss {loss_sum / seen:.3f} acc {correct / seen:.3f}")
            _kill_hook(state["global_step"])
        if bar is not None:
            bar.remove_task(task)
        train_took = time.perf_counter() - t0
        val = evaluate_split(fabric, step_module.student, data, data.val, channels_last=t.channels_last)
        took = time.perf_counter() - t0
        row = {
            "epoch": epoch + 1,
            "train_loss": loss_sum / max(seen, 1),
            "train_acc": correct / max(seen, 1),
            "val_acc": val["accuracy"],
            "val_f1": val["f1_macro"],
            "lr": sched.get_last_lr()[0],
            "train_time_s": train_took,
            "time_s": took,
        }
        state["history"].append(row)
        improved = val["accuracy"] > state["best_val"]
        if improved:
            state["best_val"], state["best_epoch"], state["bad_epochs"] = val["accuracy"], epoch + 1, 0
            checkpoint(
                best, False, {"val": {"accuracy": val["accuracy"], "f1_macro": val["f1_macro"]}, "epoch": epoch + 1}
            )
        else:
            state["bad_epochs"] += 1
        state["epoch"], state["step"] = epoch + 1, 0
        stop = t.patience is not None and state["bad_epochs"] >= t.patience
        checkpoint(last, True)
        if fabric.is_global_zero:
            _append_csv(csv_path, row)
            if tb is not None:
                for k, v in row.items():
                    if k != "epoch":
                        tb.add_scalar(k, v, epoch + 1)
            if t.progress:
                (bar.console.print if bar is not None else log)(
                    f"  epoch {epoch + 1:3d}/{t.epochs}  loss {row['train_loss']:.4f}  train {row['train_acc']:.3f}"
                    f"  val {row['val_acc']:.3f}{' *' if improved else '  '}  {took:.1f}s"
                )
        fabric.barrier()
        if stop:
            log(f"  early stop: no validation gain for {t.patience} epochs (best epoch {state['best_epoch']})")
            break
    if bar is not None:
        bar.stop()
    if tb is not None:
        tb.close()
    return state


def _progress_bar():
    """A live per-step bar on a terminal (loss, accuracy); nothing when output is not a TTY."""
    import sys

    if not sys.stderr.isatty():
        return None
    from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeRemainingColumn

    bar = Progress(
        TextColumn("  {task.description}"),
        BarColumn(),
        MofNCompleteColumn(),
        TextColumn("{task.fields[info]}"),
        TimeRemainingColumn(),
        transient=True,
    )
    bar.start()
    return bar


def _tensorboard(run_dir: Path):
    """TensorBoard event files next to metrics.csv when the tensorboard package is installed."""
    try:
        from torch.utils.tensorboard import SummaryWriter
    except ImportError:
        return None
    return SummaryWriter(str(run_dir / "tensorboard"))


def _append_csv(path: Path, row: dict) -> None:
    new = not path.is_file()
    with open(path, "a") as f:
        if new:
            f.write(",".join(row) + "\n")
        f.write(",".join(f"{v:.6g}" if isinstance(v, float) else str(v) for v in row.values()) + "\n")


__all__ = ["TrainData", "epoch_order", "evaluate_split", "fit", "get_fabric", "lr_factor", "write_json_atomic"]
