"""``geodistill report``, ``export``, ``predict`` and ``profile``: what comes after training."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated, Literal

import typer

from geodistill.cli.options import Root, option

Ckpt = Annotated[Path, typer.Argument(help="A model.ckpt.", metavar="CKPT")]


def report(
    run_dir: Annotated[Path, typer.Argument(help="A run or sweep folder.", metavar="FOLDER")],
    out: Annotated[Path | None, option(help="Folder of the report.", default_text="FOLDER")] = None,
) -> None:
    """Write a self-contained HTML report and its Markdown twin for a run or sweep folder."""
    from geodistill.report.build import write_report

    html, md = write_report(run_dir, out)
    typer.echo(f"wrote {html}\nwrote {md}")


def export(
    ckpt: Ckpt,
    format: Annotated[Literal["onnx", "torchscript"], typer.Option("--format")] = "onnx",
    int8: Annotated[bool, typer.Option(help="Static int8 quantisation (ONNX), calibrated on the train split.")] = False,
    size: Annotated[int | None, option(help="Input size in pixels.", default_text="the checkpoint's")] = None,
    out: Annotated[Path | None, option(help="The exported file.", default_text="beside CKPT")] = None,
    dataset: Annotated[
        str | None, option(help="Calibration/accuracy data.", default_text="the checkpoint's", metavar="NAME")
    ] = None,
    root: Root = None,
) -> None:
    """Export a checkpoint with its preprocessing inside (uint8 input), verified against PyTorch."""
    from geodistill.deploy import describe_export
    from geodistill.deploy import export as export_api

    typer.echo(describe_export(export_api(ckpt, format, int8=int8, size=size, out=out, data=dataset, root=root)))


def predict(
    model: Annotated[Path, typer.Argument(help="A model.ckpt, .onnx or TorchScript .pt.", metavar="MODEL")],
    paths: Annotated[list[Path], typer.Argument(help="Images or folders of images.", metavar="PATHS...")],
    top_k: Annotated[int, typer.Option(min=1)] = 3,
    batch_size: Annotated[int, typer.Option(min=1)] = 64,
    out: Annotated[Path | None, option(help="predictions.csv or .json", default_text="the screen")] = None,
) -> None:
    """Top-k classes for images or folders, from a checkpoint, .onnx or TorchScript .pt."""
    from geodistill.deploy import predict as predict_api

    rows = predict_api(model, paths, top_k=top_k, batch_size=batch_size, out=out)
    bad = [r for r in rows if r["status"] != "ok"]
    if out is not None:
        typer.echo(f"wrote {out}: {len(rows) - len(bad)} predicted, {len(bad)} unreadable")
        return
    for r in rows:
        best = ", ".join(f"{p['class']} {p['probability']:.3f}" for p in r["predictions"])
        typer.echo(f"{r['path']}\t" + (best if r["predictions"] else f"error: {r['reason']}"))


def profile(
    models: Annotated[list[Path], typer.Argument(help="Checkpoints (model.ckpt); two: teacher then student.")],
    size: Annotated[
        int | None, option(help="Input size in pixels for every model.", default_text="each checkpoint's")
    ] = None,
    batch: Annotated[str, typer.Option(help="Batch sizes, e.g. 1,32.")] = "1,32",
    runtimes: Annotated[
        str, typer.Option(help="torch, onnx and/or onnx-int8, comma-separated.")
    ] = "torch,onnx,onnx-int8",
    json_out: Annotated[Path | None, typer.Option("--json", help="Also write the rows to this JSON file.")] = None,
) -> None:
    """Parameters, FLOPs, size, latency and throughput; compression ratios for a teacher/student pair."""
    from geodistill.core.atomic import write_json
    from geodistill.core.errors import GeodistillError
    from geodistill.deploy.profile import compression, format_compression, format_profile, profile_models

    try:
        batches = tuple(int(b) for b in batch.split(","))
    except ValueError:
        raise GeodistillError(f"--batch {batch!r} is not a comma-separated list of batch sizes, e.g. 1,32.") from None
    rows = profile_models([str(m) for m in models], size=size, batches=batches, runtimes=tuple(runtimes.split(",")))
    typer.echo(format_profile(rows))
    ratios = []
    if len(models) == 2:
        for rt in dict.fromkeys(r["runtime"] for r in rows):
            t, s = [r for r in rows if r["runtime"] == rt]
            ratios.append(dict(compression(t, s), runtime=rt))
        typer.echo("\n" + format_compression(ratios))
    if json_out:
        write_json(json_out, {"rows": rows, "compression": ratios})
