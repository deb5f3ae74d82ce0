"""Rank 0's outputs of a run: its part of the progress view, metrics.csv, TensorBoard scalars."""

from __future__ import annotations

from pathlib import Path

from geodistill.core.progress import Job
from geodistill.engine.state import TrainState


class RunOutputs:
    """Rank 0's outputs: the run's part of the progress view (`geodistill.progress`: epoch and
    step bars on a terminal, epoch lines at each tenth of the run), metrics.csv, TensorBoard.
    ``progress`` False: no bars and no epoch lines."""

    def __init__(self, run_dir: Path, *, rank0: bool, progress: bool, job: Job) -> None:
        self.csv, self.rank0, self.job = run_dir / "metrics.csv", rank0, job
        self.name = run_dir.name
        self.tb = _tensorboard(run_dir) if rank0 else None
        self.shown = rank0 and progress

    def start(self, epochs: int, done: int) -> None:
        if self.shown:
            self.job.start_epochs(self.name, epochs, done)

    def start_epoch(self, steps: int, done: int) -> None:
        if self.shown:
            self.job.start_epoch(steps, done)

    def step(self, state: TrainState) -> None:
        if self.shown:
            self.job.step(f"loss {state.train_loss:.3f} acc {state.train_acc:.3f}")

    def epoch(self, row: dict, improved: bool, epochs: int, best: float) -> None:
        if not self.rank0:
            return
        _append_csv(self.csv, row)
        if self.tb is not None:
            for k, v in row.items():
                if k != "epoch":
                    self.tb.add_scalar(k, v, row["epoch"])
        if self.shown:
            line = (
                f"  [{self.name}] epoch {row['epoch']:3d}/{epochs}  loss {row['train_loss']:.4f}  "
                f"train {100 * row['train_acc']:.2f}%  val {100 * row['val_acc']:.2f}%{' *' if improved else ''}  "
                f"{row['time_s']:.1f}s"
            )
            self.job.end_epoch(row["epoch"], epochs, line, f"val {100 * row['val_acc']:.2f}% (best {100 * best:.2f}%)")

    def close(self) -> None:
        if self.tb is not None:
            self.tb.close()


def _tensorboard(run_dir: Path):
    """TensorBoard event files next to metrics.csv when the tensorboard package is installed."""
    try:
        from torch.utils.tensorboard import SummaryWriter
    except ImportError:
        return None
    return SummaryWriter(str(run_dir / "tensorboard"))


def _append_csv(path: Path, row: dict) -> None:
    """Append ``row`` to a CSV file, writing the header first when the file is new."""
    new = not path.is_file()
    with open(path, "a") as f:
        if new:
            f.write(",".join(row) + "\n")
        f.write(",".join(f"{v:.6g}" if isinstance(v, float) else str(v) for v in row.values()) + "\n")
