"""The ``geodistill`` command: a thin layer over the Python API (every command is one call).

A :class:`GeodistillError` is printed as one sentence (no traceback) with exit status 2.
"""

from __future__ import annotations

import dataclasses
import json
import sys
from pathlib import Path
from typing import Annotated

import click
import typer

from geodistill.config.merge import deep_merge, load_yaml, parse_overrides
from geodistill.config.run import build_config
from geodistill.core import log as gdlog
from geodistill.core.atomic import write_json
from geodistill.core.errors import GeodistillError
from geodistill.data import data_info, download, format_info, preview
from geodistill.deploy import describe_export
from geodistill.deploy import export as export_api
from geodistill.deploy import predict as predict_api
from geodistill.deploy.profile import compression, format_compression, format_profile, profile_models
from geodistill.engine.api import distill as distill_api
from geodistill.engine.api import evaluate as evaluate_api
from geodistill.engine.api import train as train_api
from geodistill.losses import list_presets
from geodistill.report.build import write_report
from geodistill.study.execute import TEACHER_TIMEOUT_S
from geodistill.study.grid import load_sweep_file, parse_grid
from geodistill.study.recipe import run as run_api
from geodistill.study.sweep import run_sweep

app = typer.Typer(
    add_completion=False,
    no_args_is_help=True,
    pretty_exceptions_enable=False,
    help="Knowledge distillation for aerial scene classifiers: big teacher, small shippable student.",
)
data_app = typer.Typer(no_args_is_help=True, help="Inspect datasets.")
app.add_typer(data_app, name="data")

Root = Annotated[str | None, typer.Option("--root", help="Dataset folder (not needed for synthetic).")]
Size = Annotated[int | None, typer.Option("--size", help="Square image size in pixels (32, 64, 224, ...).")]
Sets = Annotated[list[str] | None, typer.Option("--set", help="Config override section.key=value (repeatable).")]
Epochs = Annotated[
    str | None, typer.Option("--epochs", help="A number, or 'auto' (a budget of train.auto_images images seen).")
]
ConfigFile = Annotated[Path | None, typer.Option("--config", help="YAML config file (sections data/train/distill).")]
Verbose = Annotated[bool, typer.Option("--verbose", "-v", help="Print every epoch's line and other detail.")]


@app.callback()
def _options(verbose: Verbose = False) -> None:
    """Knowledge distillation for aerial scene classifiers: big teacher, small shippable student."""
    _verbosity(verbose)


def _verbosity(verbose: bool) -> None:
    """``--verbose`` (before or after the command): DEBUG messages too, e.g. every epoch's line."""
    if verbose:
        gdlog.setup(verbose=True)


def _build(config: Path | None, sets: list[str] | None, **flags) -> RunConfig:  # noqa: F821
    """YAML file, then explicit flags, then --set overrides, validated into one RunConfig."""

    d = load_yaml(config) if config else {}
    sections = {
        "dataset": "data",
        "root": "data",
        "size": "data",
        "channels": "data",
        "augment": "data",
        "normalization": "data",
        "model": "train",
        "weights": "train",
        "epochs": "train",
        "batch_size": "train",
        "lr": "train",
        "seed": "train",
        "precision": "train",
        "devices": "train",
        "strategy": "train",
        "num_nodes": "train",
        "accelerator": "train",
        "optimizer": "train",
        "label_smoothing": "train",
        "patience": "train",
        "checkpoint_every": "train",
        "teacher": "distill",
        "loss": "distill",
        "alpha": "distill",
        "beta": "distill",
        "T": "distill",
        "out": None,
        "name": None,
    }
    for k, v in flags.items():
        if v is None:
            continue
        sec = sections[k]
        d = deep_merge(d, {sec: {k: v}} if sec else {k: v})
    d = deep_merge(d, parse_overrides(sets or []))
    return build_config(d, where=str(config) if config else "the command line")


@data_app.command("info")
def data_info_cmd(
    dataset: str,
    root: Root = None,
    size: Annotated[int, typer.Option()] = 32,
    json_out: Annotated[bool, typer.Option("--json")] = False,
) -> None:
    """Classes, counts per class and split, image size, channels and cache location."""
    info = data_info(dataset, root, size=size)
    typer.echo(json.dumps(info, indent=2, default=str) if json_out else format_info(info))


@data_app.command("download")
def data_download_cmd(dataset: str, root: Annotated[str, typer.Option("--root")]) -> None:
    """Download a dataset that has a stable public source (needs the torchgeo extra for most)."""

    typer.echo(f"downloaded {dataset} into {download(dataset, root)}")


@data_app.command("preview")
def data_preview_cmd(
    dataset: str,
    root: Root = None,
    out: Annotated[Path, typer.Option()] = Path("preview.png"),
    per_class: Annotated[int, typer.Option()] = 8,
    size: Annotated[int, typer.Option()] = 64,
) -> None:
    """Write a PNG grid of sample images per class."""
    typer.echo(f"wrote {preview(dataset, root, out, per_class=per_class, size=size)}")


@app.command()
def train(
    dataset: Annotated[str | None, typer.Option()] = None,
    root: Root = None,
    model: Annotated[str | None, typer.Option()] = None,
    size: Size = None,
    epochs: Epochs = None,
    batch_size: Annotated[int | None, typer.Option()] = None,
    lr: Annotated[float | None, typer.Option()] = None,
    seed: Annotated[int | None, typer.Option()] = None,
    weights: Annotated[str | None, typer.Option(help="'imagenet' or a local weights file.")] = None,
    precision: Annotated[
        str | None,
        typer.Option(
            help="32-true, bf16-mixed, 16-mixed, or auto: bf16 on a bf16 GPU, or on a CPU where it times faster."
        ),
    ] = None,
    devices: Annotated[str | None, typer.Option()] = None,
    strategy: Annotated[str | None, typer.Option()] = None,
    num_nodes: Annotated[int | None, typer.Option()] = None,
    out: Annotated[str | None, typer.Option()] = None,
    name: Annotated[str | None, typer.Option()] = None,
    resume: Annotated[bool, typer.Option(help="Continue from last.ckpt; skip if finished.")] = False,
    config: ConfigFile = None,
    set_: Sets = None,
    verbose: Verbose = False,
) -> None:
    """Train a teacher or a student alone; writes model.ckpt and results.json."""
    _verbosity(verbose)

    cfg = _build(
        config,
        set_,
        dataset=dataset,
        root=root,
        model=model,
        size=size,
        epochs=epochs,
        batch_size=batch_size,
        lr=lr,
        seed=seed,
        weights=weights,
        precision=precision,
        devices=_devices(devices),
        strategy=strategy,
        num_nodes=num_nodes,
        out=out,
        name=name,
    )
    train_api(cfg, resume=resume)


@app.command()
def distill(
    teacher: Annotated[str, typer.Option(help="Teacher checkpoint (model.ckpt).")],
    student: Annotated[str | None, typer.Option()] = None,
    loss: Annotated[
        str | None,
        typer.Option(help=f"Preset ({', '.join(list_presets())}) or spec 'ce:0.5 + kl:0.5@T=4'."),
    ] = None,
    alpha: Annotated[float | None, typer.Option()] = None,
    beta: Annotated[float | None, typer.Option()] = None,
    T: Annotated[float | None, typer.Option("--T")] = None,
    dataset: Annotated[str | None, typer.Option()] = None,
    root: Root = None,
    size: Size = None,
    epochs: Epochs = None,
    seed: Annotated[int | None, typer.Option()] = None,
    devices: Annotated[str | None, typer.Option()] = None,
    strategy: Annotated[str | None, typer.Option()] = None,
    out: Annotated[str | None, typer.Option()] = None,
    name: Annotated[str | None, typer.Option()] = None,
    resume: Annotated[bool, typer.Option()] = False,
    config: ConfigFile = None,
    set_: Sets = None,
    verbose: Verbose = False,
) -> None:
    """Train a student under a distillation objective from a trained teacher."""
    _verbosity(verbose)

    cfg = _build(
        config,
        set_,
        teacher=teacher,
        model=student,
        loss=loss or "kl+cos",
        alpha=alpha,
        beta=beta,
        T=T,
        dataset=dataset,
        root=root,
        size=size,
        epochs=epochs,
        seed=seed,
        devices=_devices(devices),
        strategy=strategy,
        out=out,
        name=name,
    )
    distill_api(cfg, resume=resume)


@app.command()
def evaluate(
    ckpt: Path,
    dataset: Annotated[str | None, typer.Option()] = None,
    root: Root = None,
    split: Annotated[str, typer.Option()] = "test",
    config: ConfigFile = None,
    set_: Sets = None,
) -> None:
    """Accuracy, macro precision/recall/F1 and per-class F1 of a checkpoint on one split.

    Without --dataset, --root, --config or --set: on the data (and split) the checkpoint trained with.
    """
    given = dataset is not None or root is not None or config is not None or bool(set_)
    m = evaluate_api(ckpt, _build(config, set_, dataset=dataset, root=root) if given else None, split=split)
    shown = {k: v for k, v in dataclasses.asdict(m).items() if k not in ("confusion_matrix", "correct", "correct_of")}
    typer.echo(json.dumps(shown, indent=2))


@app.command()
def run(
    recipe: Annotated[str, typer.Option(help="demo | thesis | paper")] = "demo",
    dataset: Annotated[str | None, typer.Option()] = None,
    root: Root = None,
    size: Size = None,
    teacher: Annotated[str | None, typer.Option(help="Use this teacher checkpoint instead of training one.")] = None,
    seeds: Annotated[str | None, typer.Option(help="Comma-separated, e.g. 0,1,2.")] = None,
    out: Annotated[str | None, typer.Option()] = None,
    fresh: Annotated[bool, typer.Option(help="Retrain runs that already finished.")] = False,
    budget_check: Annotated[
        bool | None,
        typer.Option(
            "--budget-check/--no-budget-check",
            help="Also train the student alone at twice the epochs, to see whether the budget converged "
            "(default: the recipe's choice; paper does).",
        ),
    ] = None,
    set_: Sets = None,
    verbose: Verbose = False,
) -> None:
    """The main job: teacher, its cache, student alone and distilled, compared on the test split."""
    _verbosity(verbose)

    over: dict = {}
    for k, v in {"dataset": dataset, "root": root, "size": size}.items():
        if v is not None:
            over = deep_merge(over, {"data": {k: v}})
    over = deep_merge(over, parse_overrides(set_ or []))
    run_api(
        recipe,
        overrides=over,
        teacher=teacher,
        out=out,
        resume=not fresh,
        seeds=[int(s) for s in seeds.split(",")] if seeds else None,
        budget_check=budget_check,
    )


@app.command()
def sweep(
    recipe: Annotated[str | None, typer.Option(help="Base recipe (demo | thesis | paper).")] = None,
    dataset: Annotated[str | None, typer.Option()] = None,
    root: Root = None,
    size: Size = None,
    grid: Annotated[
        list[str] | None,
        typer.Option(help="alpha=thesis11 | alpha=thesis5 | alpha=[0.1,0.3] | beta=[0,0.001] (repeatable)."),
    ] = None,
    ablation: Annotated[bool, typer.Option(help="student, KL, cosine, KL+cosine, thesis, DKD, DIST.")] = False,
    seeds: Annotated[
        str | None, typer.Option(help="Comma-separated; default: the sweep file's, else the recipe's.")
    ] = None,
    file: Annotated[
        Path | None,
        typer.Option("--file", help="YAML sweep description (base/teacher/student/grid/ablation/seeds)."),
    ] = None,
    teacher: Annotated[str | None, typer.Option(help="Use this teacher for every seed.")] = None,
    workers: Annotated[int, typer.Option(help="Points run in parallel processes.")] = 1,
    devices: Annotated[str | None, typer.Option(help="GPU ids for the workers, e.g. 0,1 (one per worker).")] = None,
    keep_failed: Annotated[bool, typer.Option(help="Do not retry points that failed before.")] = False,
    shard: Annotated[
        str | None,
        typer.Option(
            help="Run one share of the points: I/N, 1-based (1/4 ... 4/4), or 'slurm' to read it from "
            "SLURM_ARRAY_TASK_ID/_MIN/_COUNT (e.g. sbatch --array=1-4 or 0-3). Give every shard the same "
            "arguments and --out; teachers are built once and shared through the folder."
        ),
    ] = None,
    teacher_timeout: Annotated[
        float, typer.Option(help="Seconds a shard waits for a teacher another shard is building.")
    ] = TEACHER_TIMEOUT_S,
    out: Annotated[Path, typer.Option()] = Path("runs/sweep"),
    set_: Sets = None,
    verbose: Verbose = False,
) -> None:
    """Run (or resume) an α/β grid and/or a loss ablation over seeds, or one shard of it; then
    `geodistill report OUT`."""
    _verbosity(verbose)

    spec = load_sweep_file(file) if file else {}
    if recipe:
        spec["recipe"] = recipe
    spec.setdefault("recipe", "thesis")  # a CNN4 teacher and CNN3 student unless told otherwise
    data = {k: v for k, v in {"dataset": dataset, "root": root, "size": size}.items() if v is not None}
    spec["base"] = deep_merge(
        spec.get("base", {}), deep_merge({"data": data} if data else {}, parse_overrides(set_ or []))
    )
    if grid:
        spec["grid"] = deep_merge(spec.get("grid", {}), parse_grid(grid))
    spec["ablation"] = ablation or spec.get("ablation", False)
    if seeds:
        spec["seeds"] = [int(s) for s in seeds.split(",")]
    run_sweep(
        spec,
        out,
        workers=workers,
        teacher_ckpt=teacher,
        retry_failed=not keep_failed,
        devices=devices.split(",") if devices else None,
        shard=shard,
        teacher_timeout=teacher_timeout,
    )


@app.command()
def report(run_dir: Path, out: Annotated[Path | None, typer.Option()] = None) -> None:
    """Write a self-contained HTML report and its Markdown twin for a run or sweep folder."""

    html, md = write_report(run_dir, out)
    typer.echo(f"wrote {html}\nwrote {md}")


@app.command()
def export(
    ckpt: Path,
    format: Annotated[str, typer.Option("--format", help="onnx | torchscript")] = "onnx",
    int8: Annotated[bool, typer.Option(help="Static int8 quantisation (ONNX), calibrated on the train split.")] = False,
    size: Size = None,
    out: Annotated[Path | None, typer.Option()] = None,
    dataset: Annotated[str | None, typer.Option(help="Calibration/accuracy data (default: the checkpoint's).")] = None,
    root: Root = None,
) -> None:
    """Export a checkpoint with its preprocessing inside (uint8 input), verified against PyTorch."""
    typer.echo(describe_export(export_api(ckpt, format, int8=int8, size=size, out=out, data=dataset, root=root)))


@app.command()
def predict(
    model: Path,
    paths: list[Path],
    top_k: Annotated[int, typer.Option()] = 3,
    batch_size: Annotated[int, typer.Option()] = 64,
    out: Annotated[Path | None, typer.Option(help="predictions.csv or .json")] = None,
) -> None:
    """Top-k classes for images or folders, from a checkpoint, .onnx or TorchScript .pt."""
    rows = predict_api(model, paths, top_k=top_k, batch_size=batch_size, out=out)
    bad = [r for r in rows if r["status"] != "ok"]
    if out is None:
        for r in rows:
            best = r["predictions"][0] if r["predictions"] else None
            typer.echo(
                f"{r['path']}\t" + (f"{best['class']}\t{best['probability']:.3f}" if best else f"error: {r['reason']}")
            )
    else:
        typer.echo(f"wrote {out}: {len(rows) - len(bad)} predicted, {len(bad)} unreadable")


@app.command()
def profile(
    models: list[Path],
    size: Annotated[int, typer.Option()] = 64,
    batch: Annotated[str, typer.Option(help="Batch sizes, e.g. 1,32.")] = "1,32",
    runtimes: Annotated[str, typer.Option()] = "torch,onnx,onnx-int8",
    json_out: Annotated[Path | None, typer.Option("--json")] = None,
) -> None:
    """Parameters, FLOPs, size, latency and throughput; compression ratios for a teacher/student pair."""
    rows = profile_models(
        [str(m) for m in models],
        size=size,
        batches=tuple(int(b) for b in batch.split(",")),
        runtimes=tuple(runtimes.split(",")),
    )
    typer.echo(format_profile(rows))
    ratios = []
    if len(models) == 2:
        for rt in dict.fromkeys(r["runtime"] for r in rows):
            t, s = [r for r in rows if r["runtime"] == rt]
            ratios.append(dict(compression(t, s), runtime=rt))
        typer.echo("\n" + format_compression(ratios))
    if json_out:
        write_json(json_out, {"rows": rows, "compression": ratios})


def _devices(v: str | None):
    if v is None:
        return None
    return int(v) if v.isdigit() else v


def main() -> None:
    """Entry point: run the app, turning user errors into one clear line."""
    gdlog.setup()
    try:
        app(standalone_mode=False)
    except GeodistillError as e:
        typer.echo(f"error: {e}", err=True)
        sys.exit(2)
    except typer.Exit as e:
        sys.exit(e.exit_code)
    except Exception as e:  # click usage errors
        if isinstance(e, click.exceptions.ClickException):
            e.show()
            sys.exit(e.exit_code)
        if isinstance(e, click.exceptions.Abort):
            sys.exit(130)
        raise


if __name__ == "__main__":
    main()
