"""The one training loop: a teacher, a student alone and a distilled student differ only in the
objective and whether a teacher source is given.

Built on Lightning Fabric (devices, DDP, multi-node, precision). :class:`Trainer` runs
``setup -> [resume] -> per epoch: train_epoch -> validate -> end_epoch (record, best model,
checkpoint, report) -> stop rule`` over one typed :class:`TrainState`, which is saved
(:meth:`Trainer.train_state`) and loaded (:meth:`Trainer.resume`) in one place. What each step
sees comes from :mod:`geodistill.engine.batches`, a pure function of (seed, epoch, step, rank),
so a run resumed from a mid-epoch checkpoint is bit-identical to an uninterrupted one.
"""

from __future__ import annotations

import contextlib
import logging
import time
from pathlib import Path

import numpy as np
import torch
from torch import Tensor, nn

from geodistill.core import interrupt
from geodistill.core.errors import GeodistillError
from geodistill.core.progress import job
from geodistill.data.views import plan_of
from geodistill.engine.batches import assemble_batch, epoch_order
from geodistill.engine.context import RunContext
from geodistill.engine.evaluate import evaluate_split
from geodistill.engine.outputs import RunOutputs
from geodistill.engine.state import StepHook, StopRule, TrainState, lr_factor, patience_rule, step_hooks
from geodistill.losses import LossInputs, Objective
from geodistill.models import first_layer_weight
from geodistill.models.checkpoint import read_resumable, save_checkpoint
from geodistill.teachers.cache import TeacherSource

logger = logging.getLogger(__name__)


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


def _check_finite(loss: Tensor, terms: dict[str, Tensor], epoch: int, step: int) -> None:
    """Stop with the first non-finite loss term named (``epoch``, ``step`` count from 0)."""
    if torch.isfinite(loss):
        return
    bad = [n for n, v in terms.items() if not torch.isfinite(v)] or ["total"]
    value = float(terms.get(bad[0], loss).detach())
    raise GeodistillError(
        f"Loss term {bad[0]!r} became {value} at epoch {epoch + 1}, step {step + 1}; "
        "lower train.lr, or check the data and the objective's weights."
    )


class Trainer:
    """Trains ``student`` under ``objective`` (with ``teacher``'s answers when given) as the
    `RunContext` says (its resolved config, data, Fabric and folder).

    Writes ``last.ckpt`` (resumable state, every ``checkpoint_every`` steps and each epoch),
    ``model.ckpt`` (best validation accuracy), ``metrics.csv`` and TensorBoard scalars.
    """

    def __init__(
        self,
        ctx: RunContext,
        student: nn.Module,
        objective: Objective,
        teacher: TeacherSource | None,
        *,
        meta: dict,
        hooks: list[StepHook] | None = None,
        stop_rule: StopRule | None = None,
    ) -> None:
        self.cfg, self.data, self.fabric, self.run_dir = ctx.cfg, ctx.data, ctx.fabric, ctx.run_dir
        self.student, self.objective, self.teacher, self.meta = student, objective, teacher, meta
        self.hooks = list(step_hooks if hooks is None else hooks)
        self.stop_rule = stop_rule or patience_rule(ctx.cfg.train.patience)
        self.plan = plan_of(ctx.cfg.data)
        self.state = TrainState()
        self.last, self.best = ctx.last, ctx.best

    def epoch_batches(self, epoch: int) -> list[np.ndarray]:
        """This process's image indices for each step of ``epoch``."""
        t, f = self.cfg.train, self.fabric
        return epoch_order(self.data.train, t.seed, epoch, f.global_rank, f.world_size, t.batch_size)

    def setup(self) -> None:
        """Seed; optimizer; linear warm-up + cosine decay to 0 over the run's steps; Fabric wrapping."""
        t = self.cfg.train
        torch.manual_seed(t.seed)
        if t.channels_last:
            self.student = self.student.to(memory_format=torch.channels_last)
        self.step_module = TrainStep(self.student, self.objective)
        params = [p for p in self.step_module.parameters() if p.requires_grad]
        if t.optimizer == "sgd":
            opt = torch.optim.SGD(params, lr=t.lr, momentum=0.9, nesterov=True, weight_decay=t.weight_decay)
        else:
            opt = torch.optim.AdamW(params, lr=t.lr, weight_decay=t.weight_decay)
        steps_per_epoch = len(self.epoch_batches(0))
        total, warmup = steps_per_epoch * t.epochs, int(round(t.warmup_epochs * steps_per_epoch))
        self.sched = torch.optim.lr_scheduler.LambdaLR(opt, lambda s: lr_factor(s, total, warmup))
        self.module, self.opt = self.fabric.setup(self.step_module, opt)

    def fit(self, resume: bool = False) -> TrainState:
        """Set up, resume from ``last.ckpt`` when asked and present, train until the epochs run
        out or the stop rule fires; returns the final state. A signal (`core.interrupt`) stops
        it after the step in progress, with a resumable ``last.ckpt`` (`stop_if_asked`)."""
        self.setup()
        if resume and self.last.is_file():
            self.resume(self.last)
        t = self.cfg.train
        single = self.fabric.world_size == 1  # under DDP every rank would have to agree on the step
        with job(1) as j, interrupt.deferred() if single else contextlib.nullcontext():
            self.report = RunOutputs(self.run_dir, rank0=self.fabric.is_global_zero, progress=t.progress, job=j)
            self.report.start(t.epochs, self.state.epoch)
            try:
                while self.state.epoch < t.epochs:
                    t0 = time.perf_counter()
                    self.train_epoch()
                    train_took = time.perf_counter() - t0
                    val = self.validate()
                    stop = self.end_epoch(val, train_took, time.perf_counter() - t0)
                    self.stop_if_asked()
                    if stop:
                        break
            finally:
                self.report.close()
        return self.state

    def stop_if_asked(self) -> None:
        """When a signal came (`core.interrupt.deferred`): write ``last.ckpt`` at this step
        boundary and raise `Interrupted` naming it; resuming from it is exact."""
        signum = interrupt.take()
        if signum is None:
            return
        self.save(self.last, with_state=True)
        st = self.state
        where = f"epoch {st.epoch + 1}, step {st.step}" if st.step else f"the end of epoch {st.epoch}"
        raise interrupt.Interrupted(signum, str(self.last), where)

    def train_epoch(self) -> None:
        """The remaining steps of the current epoch (all of them unless resumed mid-epoch)."""
        self.module.train()
        batches = self.epoch_batches(self.state.epoch)
        self.report.start_epoch(len(batches), self.state.step)
        for step in range(self.state.step, len(batches)):
            self.train_step(batches[step], step)

    def train_step(self, idx: np.ndarray, step: int) -> None:
        """One optimizer step on images ``idx``; checkpoints every ``checkpoint_every`` steps."""
        t, st, fabric = self.cfg.train, self.state, self.fabric
        b = assemble_batch(
            self.data,
            idx,
            self.plan,
            seed=t.seed,
            epoch=st.epoch,
            step=step,
            rank=fabric.global_rank,
            teacher=self.teacher,
            teacher_feats=self.objective.needs_features,
            channels_last=t.channels_last,
            device=fabric.device,
        )
        loss, terms, logits = self.module(b.x, b.y, b.t_logits, b.t_feat)
        _check_finite(loss, terms, st.epoch, step)
        self.opt.zero_grad(set_to_none=True)
        fabric.backward(loss)
        self.opt.step()
        self.sched.step()
        st.add_step(float(loss.detach()), int((logits.argmax(1) == b.y).sum()), len(idx))
        if t.checkpoint_every and st.global_step % t.checkpoint_every == 0:
            self.save(self.last, with_state=True)
            fabric.barrier()
        self.report.step(st)
        for hook in self.hooks:
            hook(st)
        self.stop_if_asked()

    def validate(self) -> dict:
        """Metrics of the student on the validation split."""
        student, data, last = self.step_module.student, self.data, self.cfg.train.channels_last
        return evaluate_split(self.fabric, student, data, data.val, channels_last=last, per_image=False)

    def end_epoch(self, val: dict, train_took: float, took: float) -> bool:
        """Record the epoch, keep the best model, checkpoint, report; returns whether to stop."""
        st = self.state
        row = {
            "epoch": st.epoch + 1,
            "train_loss": st.train_loss,
            "train_acc": st.train_acc,
            "val_acc": val["accuracy"],
            "val_f1": val["f1_macro"],
            "lr": self.sched.get_last_lr()[0],
            "train_time_s": train_took,
            "time_s": took,
        }
        improved = st.end_epoch(row, val["accuracy"])
        if improved:
            metrics = {"val": {"accuracy": val["accuracy"], "f1_macro": val["f1_macro"]}, "epoch": row["epoch"]}
            self.save(self.best, metrics=metrics)
        reason = self.stop_rule(st)
        self.save(self.last, with_state=True)
        self.report.epoch(row, improved, self.cfg.train.epochs, st.best_val)
        self.fabric.barrier()
        if reason is not None:
            logger.info(f"  early stop: {reason}")
        return reason is not None

    def train_state(self) -> dict:
        """What ``last.ckpt`` stores to resume: the state's fields, the objective's buffers and
        parameters, the optimizer, the schedule and the torch RNG."""
        return dict(
            self.state.to_dict(),
            objective=self.step_module.objective.state_dict(),
            optimizer=self.opt.state_dict(),
            scheduler=self.sched.state_dict(),
            torch_rng=torch.get_rng_state(),
        )

    def resume(self, path: Path) -> None:
        """Load what :meth:`train_state` stored (and the student's weights) from ``path``."""
        ck = read_resumable(path)
        if "train_state" not in ck or "state_dict" not in ck:
            raise GeodistillError(
                f"{path} holds no training state to resume; delete it to train this run from its first epoch."
            )
        ts = ck["train_state"]
        self.step_module.student.load_state_dict(ck["state_dict"])
        self.step_module.objective.load_state_dict(ts["objective"])
        self.opt.load_state_dict(ts["optimizer"])
        self.sched.load_state_dict(ts["scheduler"])
        torch.set_rng_state(ts["torch_rng"])
        self.state = TrainState.from_dict(ts)
        logger.info(f"resumed from {path} at epoch {self.state.epoch + 1}, step {self.state.step}")

    def save(self, path: Path, *, with_state: bool = False, metrics: dict | None = None) -> None:
        """Write the student (rank 0 only, atomically), with the resumable state when asked."""
        if not self.fabric.is_global_zero:
            return
        data = self.data
        save_checkpoint(
            path,
            self.step_module.student,
            arch=self.meta["arch"],
            num_classes=len(data.classes),
            in_channels=data.channels,
            classes=data.classes,
            size=data.size,
            normalizer=data.normalizer.to_dict(),
            metrics=metrics or {},
            config=self.cfg.model_dump(),
            train_state=self.train_state() if with_state else None,
        )


def fit(ctx: RunContext, student: nn.Module, objective: Objective, teacher: TeacherSource | None, *, meta: dict):
    """Train ``student`` under ``objective`` with a :class:`Trainer`; returns the final
    :class:`TrainState` (``best_val``, ``best_epoch``, ``history``, ...)."""
    return Trainer(ctx, student, objective, teacher, meta=meta).fit(ctx.resume)


__all__ = [
    "StepHook",
    "StopRule",
    "TrainState",
    "Trainer",
    "fit",
    "lr_factor",
    "patience_rule",
    "step_hooks",
]
