"""``geodistill train``, ``distill`` and ``evaluate``: one run, or one checkpoint scored.

The API each command calls is imported inside it, so the command line starts without torch.
"""

from __future__ import annotations

import dataclasses
import json
import logging
import os
from pathlib import Path
from typing import TYPE_CHECKING, Annotated, Literal

import typer

from geodistill.cli import errors
from geodistill.cli.options import (
    ConfigFile,
    Dataset,
    DryRun,
    Epochs,
    Model,
    Name,
    Out,
    PrecisionChoice,
    Protocol,
    Resume,
    Root,
    Sets,
    Size,
    Threads,
    Verbose,
    build,
    option,
    parse_devices,
    shown,
    verbosity,
)
from geodistill.config.run import RunConfig
from geodistill.core.errors import GeodistillError

if TYPE_CHECKING:
    from geodistill.study.estimate import Estimate

logger = logging.getLogger("geodistill.cli")

Precision = Annotated[
    PrecisionChoice | None,
    option(
        help="auto: bf16 on a bf16 GPU, or on a CPU with bf16 units for a model of plain convolutions.",
        default_text=shown("train.precision"),
    ),
]
Devices = Annotated[
    str | None,
    option(
        "--devices", help="A count (2), device ids (0,1) or auto; the global batch grows with it.", default_text="1"
    ),
]


def _start(cfg: RunConfig, resume: bool, dry_run: bool, data: dict) -> Estimate:
    """Before one run trains: refuse to overwrite a finished run, check --devices against this
    machine, say the expected time (or, with --dry-run, only that), and name the resume command.
    ``data``: a memo the estimate fills with the prepared data, which the run then reuses."""
    from geodistill.engine.api import run_dir_of
    from geodistill.results.files import RESULTS_FILE
    from geodistill.study.estimate import estimate_run

    run_dir = run_dir_of(cfg)
    if not resume and (run_dir / RESULTS_FILE).is_file():
        raise GeodistillError(
            f"{run_dir} holds a finished run; pass --resume to keep it, another --name, or delete the folder."
        )
    _check_devices(cfg)
    e = estimate_run(cfg, run_dir, resume=resume, data=data)
    logger.info(e.run_line(run_dir.name))
    if dry_run:
        logger.info(e.table())
        raise typer.Exit(0)
    errors.resume_with(add=("--resume",))
    return e


def _train(cfg: RunConfig, resume: bool, dry_run: bool) -> None:
    """Estimate, then train with the estimate counting down (`core.progress`)."""
    from geodistill.core import progress
    from geodistill.engine import api

    memo: dict = {}
    e = _start(cfg, resume, dry_run, memo)
    with progress.job(1) as j:
        j.expect(e.expected())
        api.train(cfg, resume=resume, data=api.data_for(cfg, memo))


def _check_devices(cfg: RunConfig) -> None:
    """More CPU processes than cores slow every one of them down; say so, since the count also
    changes the numbers (the global batch is devices x batch size)."""
    n, accel = cfg.train.devices, cfg.train.accelerator
    cores = len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else os.cpu_count() or 1
    on_cpu = accel == "cpu" or (accel == "auto" and not _has_gpu())
    if isinstance(n, int) and on_cpu and n > cores:
        logger.warning(
            f"--devices {n} starts {n} training processes on {cores} CPU cores: each waits for the others "
            f"(and the global batch is {n} x {cfg.train.batch_size}); use --devices {cores} or fewer."
        )


def _has_gpu() -> bool:
    import torch

    return torch.cuda.is_available()


def train(
    dataset: Dataset = None,
    protocol: Protocol = None,
    root: Root = None,
    model: Model = None,
    size: Size = None,
    epochs: Epochs = None,
    batch_size: Annotated[int | None, option(min=1, default_text=shown("train.batch_size"))] = None,
    lr: Annotated[float | None, option(default_text=shown("train.lr"))] = None,
    seed: Annotated[int | None, option(default_text=shown("train.seed"))] = None,
    weights: Annotated[str | None, typer.Option(help="'imagenet' or a local weights file.", metavar="W")] = None,
    precision: Precision = None,
    devices: Devices = None,
    strategy: Annotated[str | None, option(help="auto, ddp, ...", default_text="auto")] = None,
    num_nodes: Annotated[int | None, option(min=1, default_text="1")] = None,
    threads: Threads = None,
    out: Out = None,
    name: Name = None,
    resume: Resume = False,
    dry_run: DryRun = False,
    config: ConfigFile = None,
    set_: Sets = None,
    verbose: Verbose = False,
) -> None:
    """Train a teacher or a student alone; writes model.ckpt and results.json."""
    verbosity(verbose)
    flags = dict(dataset=dataset, protocol=protocol, root=root, model=model, size=size, epochs=epochs, lr=lr)
    flags.update(batch_size=batch_size, seed=seed, weights=weights, precision=precision, strategy=strategy)
    flags.update(devices=parse_devices(devices))
    _train(build(config, set_, **flags, num_nodes=num_nodes, threads=threads, out=out, name=name), resume, dry_run)


def distill(
    teacher: Annotated[
        str, typer.Option(help="Teacher checkpoint (model.ckpt of 'geodistill train').", metavar="CKPT")
    ],
    student: Model = None,
    loss: Annotated[
        str | None,
        option(help="A preset (`geodistill list`) or a spec 'ce:0.5 + kl:0.5@T=4'.", default_text="kl+cos"),
    ] = None,
    alpha: Annotated[float | None, option(min=0, max=1, default_text=shown("distill.alpha"))] = None,
    beta: Annotated[float | None, option(min=0, default_text="alpha where the loss uses β")] = None,
    T: Annotated[float | None, option("--T", default_text=shown("distill.T"))] = None,
    dataset: Dataset = None,
    protocol: Protocol = None,
    root: Root = None,
    size: Size = None,
    epochs: Epochs = None,
    seed: Annotated[int | None, option(default_text=shown("train.seed"))] = None,
    devices: Devices = None,
    strategy: Annotated[str | None, option(help="auto, ddp, ...", default_text="auto")] = None,
    threads: Threads = None,
    out: Out = None,
    name: Name = None,
    resume: Resume = False,
    dry_run: DryRun = False,
    config: ConfigFile = None,
    set_: Sets = None,
    verbose: Verbose = False,
) -> None:
    """Train a student under a distillation objective from a trained teacher."""
    verbosity(verbose)
    flags = dict(teacher=teacher, model=student, loss=loss or "kl+cos", alpha=alpha, beta=beta, T=T, dataset=dataset)
    flags.update(
        protocol=protocol,
        root=root,
        size=size,
        epochs=epochs,
        seed=seed,
        devices=parse_devices(devices),
        strategy=strategy,
    )
    cfg = build(config, set_, **flags, threads=threads, out=out, name=name)
    from geodistill.models.checkpoint import load_checkpoint

    load_checkpoint(teacher)  # a teacher that is not a readable .ckpt is said before anything else
    _train(cfg, resume, dry_run)


def evaluate(
    ckpt: Annotated[Path, typer.Argument(help="A model.ckpt.", metavar="CKPT")],
    dataset: Dataset = None,
    root: Root = None,
    split: Annotated[Literal["train", "val", "test"], typer.Option()] = "test",
    json_out: Annotated[bool, typer.Option("--json", help="Print the metrics as JSON.")] = False,
    config: ConfigFile = None,
    set_: Sets = None,
) -> None:
    """Accuracy, macro precision/recall/F1 and per-class F1 of a checkpoint on one split.

    Without --dataset, --root, --config or --set: on the data (and split) the checkpoint trained with.
    """
    given = dataset is not None or root is not None or config is not None or bool(set_)
    cfg = build(config, set_, dataset=dataset, root=root) if given else None
    from geodistill.engine.api import evaluate as evaluate_api

    m = evaluate_api(ckpt, cfg, split=split)
    if json_out:
        shown_ = {
            k: v for k, v in dataclasses.asdict(m).items() if k not in ("confusion_matrix", "correct", "correct_of")
        }
        typer.echo(json.dumps({"checkpoint": str(ckpt), "split": split, **shown_}, indent=2, ensure_ascii=False))
        return
    typer.echo(format_metrics(m, ckpt, split))


def format_metrics(m, ckpt: Path, split: str) -> str:
    """The metrics of one split in words: accuracy and macro scores, then F1 per class."""
    lines = [
        f"{ckpt} on the {split} split ({m.n} images): accuracy {100 * m.accuracy:.2f}%, macro precision "
        f"{100 * m.precision_macro:.2f}%, recall {100 * m.recall_macro:.2f}%, F1 {100 * m.f1_macro:.2f}%",
        "F1 per class:",
    ]
    width = max((len(c) for c in m.per_class_f1), default=0)
    lines += [f"  {c:<{width}}  {100 * f:6.2f}%" for c, f in m.per_class_f1.items()]
    return "\n".join(lines)
