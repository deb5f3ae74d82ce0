"""Where a run stands (`TrainState`), its schedule, and the rules asked after each step and epoch."""

from __future__ import annotations

import math
from collections.abc import Callable
from dataclasses import asdict, dataclass, field, fields


def lr_factor(step: int, total: int, warmup: int) -> float:
    """Linear warm-up to 1 over ``warmup`` steps, then cosine decay to 0 at ``total``."""
    if warmup > 0 and step < warmup:
        return (step + 1) / warmup
    progress = (step - warmup) / max(1, total - warmup)
    return 0.5 * (1.0 + math.cos(math.pi * min(1.0, progress)))


@dataclass
class TrainState:
    """Where a run stands; with the model, optimizer, schedule and RNG it resumes exactly.

    ``epoch`` counts finished epochs and ``step`` the finished steps of the current one, whose
    running sums are ``loss_sum`` (Σ batch mean loss × batch size), ``correct`` and ``seen``.
    ``history`` holds one row per finished epoch (the rows of metrics.csv).
    """

    epoch: int = 0
    step: int = 0
    global_step: int = 0
    best_val: float = -1.0
    best_epoch: int = -1
    bad_epochs: int = 0
    history: list[dict] = field(default_factory=list)
    loss_sum: float = 0.0
    correct: int = 0
    seen: int = 0

    @property
    def train_loss(self) -> float:
        """Mean training loss over the images seen so far this epoch."""
        return self.loss_sum / max(self.seen, 1)

    @property
    def train_acc(self) -> float:
        """Training accuracy over the images seen so far this epoch."""
        return self.correct / max(self.seen, 1)

    def add_step(self, loss: float, correct: int, n: int) -> None:
        """Count one optimizer step over ``n`` images with mean loss ``loss``."""
        self.loss_sum += loss * n
        self.correct += correct
        self.seen += n
        self.step += 1
        self.global_step += 1

    def end_epoch(self, row: dict, val_acc: float) -> bool:
        """Record a finished epoch and start the next; returns whether ``val_acc`` is a new best."""
        self.history.append(row)
        improved = val_acc > self.best_val
        if improved:
            self.best_val, self.best_epoch, self.bad_epochs = val_acc, self.epoch + 1, 0
        else:
            self.bad_epochs += 1
        self.epoch, self.step = self.epoch + 1, 0
        self.loss_sum, self.correct, self.seen = 0.0, 0, 0
        return improved

    def to_dict(self) -> dict:
        """The fields as plain data (what ``last.ckpt`` stores and ``fit`` returns)."""
        return asdict(self)

    @classmethod
    def from_dict(cls, d: dict) -> TrainState:
        """The state stored by :meth:`to_dict` (or by older versions, with a ``partial`` slot)."""
        kw = {f.name: d[f.name] for f in fields(cls) if f.name in d}
        if "partial" in d and d.get("step"):
            kw["loss_sum"], kw["correct"], kw["seen"] = d["partial"]
        return cls(**kw)


StepHook = Callable[[TrainState], None]
step_hooks: list[StepHook] = []
"""Called after every optimizer step (after any checkpoint) with the live state, by every
:class:`Trainer` of this process built without its own ``hooks``. The resume tests append one
that kills the process mid-epoch (tests/hooks)."""

StopRule = Callable[[TrainState], str | None]
"""Asked after each epoch is recorded: the reason to stop now, or None to go on."""


def patience_rule(patience: int | None) -> StopRule:
    """Stop once validation accuracy has not improved for ``patience`` epochs (never when None)."""

    def rule(state: TrainState) -> str | None:
        if patience is not None and state.bad_epochs >= patience:
            return f"no validation gain for {patience} epochs (best epoch {state.best_epoch})"
        return None

    return rule
