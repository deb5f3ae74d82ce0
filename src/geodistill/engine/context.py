"""One run's context: everything decided once before a run trains, in one place.

`run_context` resolves ``train.epochs: auto`` (`engine.convergence.resolve_epochs`, once the
training split is known) and ``train.precision`` (`engine.precision.decide`, from the study
folder's record, else the rule), and gets the run's Lightning Fabric. The `Trainer`, the
checkpoints and results.json all read the one resolved config it holds.

Fabrics: a launched Fabric owns its processes (DDP launches once per process), so this module
keeps the Fabrics it has launched, one per device setting and precision, and hands the same one
to every run of the process that asks for that setting. It decides no run's numbers.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import torch
from lightning.fabric import Fabric
from torch import nn

from geodistill.config.run import RunConfig, TrainConfig
from geodistill.core import log as gdlog
from geodistill.data.prepare import TrainData
from geodistill.engine.convergence import resolve_epochs
from geodistill.engine.precision import decide, with_precision
from geodistill.results.result import Precision

_LAUNCHED: dict[tuple, Fabric] = {}


def fabric_for(t: TrainConfig) -> Fabric:
    """The launched Fabric of ``t``'s devices, strategy, nodes and (concrete) precision."""
    if t.precision == "auto":
        raise ValueError("train.precision 'auto' must be decided (engine.precision.decide) before a Fabric exists")
    key = (t.accelerator, str(t.devices), t.strategy, t.num_nodes, t.precision)
    if key not in _LAUNCHED:
        gdlog.quiet_lightning()
        fabric = Fabric(
            accelerator=t.accelerator,
            devices=t.devices,
            strategy=t.strategy,
            num_nodes=t.num_nodes,
            precision=t.precision,
        )
        fabric.launch()
        _LAUNCHED[key] = fabric
    return _LAUNCHED[key]


def eval_fabric(t: TrainConfig) -> Fabric:
    """A Fabric for evaluation only (fp32, as validation runs): ``t``'s devices."""
    return fabric_for(t.model_copy(update={"precision": "32-true"}))


@dataclass(frozen=True)
class RunContext:
    """A run about to train: its config with epochs and precision concrete, its folder, data,
    precision decision, whether its epochs were ``auto``, its Fabric and whether it resumes."""

    cfg: RunConfig
    run_dir: Path
    data: TrainData
    precision: Precision
    epochs_auto: bool
    fabric: Fabric
    resume: bool = False

    @property
    def last(self) -> Path:
        """The resumable checkpoint."""
        return self.run_dir / "last.ckpt"

    @property
    def best(self) -> Path:
        """The best-validation checkpoint."""
        return self.run_dir / "model.ckpt"


def use_threads(t: TrainConfig) -> None:
    """Give torch ``t.threads`` CPU threads (the count changes a CPU run's numbers: config/run.py)."""
    if torch.get_num_threads() != t.threads:
        torch.set_num_threads(t.threads)


def run_context(cfg: RunConfig, run_dir: Path, data: TrainData, student: nn.Module, *, resume: bool) -> RunContext:
    """Decide a run's epochs and precision once (the study folder is ``run_dir``'s parent), set
    its CPU threads and get its Fabric."""
    run_dir = Path(run_dir)
    use_threads(cfg.train)
    cfg, epochs_auto = resolve_epochs(cfg, len(data.train))
    precision = decide(cfg.train, student, run_dir.parent, run_dir / "last.ckpt" if resume else None)
    cfg = cfg.model_copy(update={"train": with_precision(cfg.train, precision)})
    return RunContext(cfg, run_dir, data, precision, epochs_auto, fabric_for(cfg.train), resume)
