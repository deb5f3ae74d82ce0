"""``geodistill data info|download|preview`` and ``geodistill list``: datasets, models, objectives."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Annotated

import typer

from geodistill.cli.options import Protocol, Root

DatasetArg = Annotated[str, typer.Argument(help="Dataset name (`geodistill list`).", metavar="DATASET")]


def data_info(
    dataset: DatasetArg,
    root: Root = None,
    size: Annotated[int, typer.Option(help="Square size the images are decoded at.")] = 32,
    protocol: Protocol = None,
    seed: Annotated[int, typer.Option(help="Split seed (each seed its own random split).")] = 0,
    json_out: Annotated[bool, typer.Option("--json", help="Print the facts as JSON.")] = False,
) -> None:
    """Classes, counts per class and split, image size, channels and cache location."""
    from geodistill.data import data_info as info_api
    from geodistill.data import format_info

    info = info_api(dataset, root, size=size, protocol=protocol, seed=seed)
    typer.echo(json.dumps(info, indent=2, default=str, ensure_ascii=False) if json_out else format_info(info))


def data_download(
    dataset: DatasetArg,
    root: Annotated[str, typer.Option("--root", help="Folder to download into.", metavar="DIR")],
) -> None:
    """Download a dataset that has a stable public source (needs the torchgeo extra for most)."""
    from geodistill.data import download

    typer.echo(f"downloaded {dataset} into {download(dataset, root)}")


def data_preview(
    dataset: DatasetArg,
    root: Root = None,
    out: Annotated[Path, typer.Option(help="The PNG file.")] = Path("preview.png"),
    per_class: Annotated[int, typer.Option(min=1, help="Images per class.")] = 8,
    size: Annotated[int, typer.Option(help="Pixels per image in the grid.")] = 64,
) -> None:
    """Write a PNG grid of sample images per class."""
    from geodistill.data import preview

    typer.echo(f"wrote {preview(dataset, root, out, per_class=per_class, size=size)}")


def list_names() -> None:
    """The names the options take: datasets, models, objective presets, recipes and protocols."""
    from geodistill.config.protocols import PROTOCOLS
    from geodistill.config.study import recipe_names
    from geodistill.data.registry import get_spec, list_datasets
    from geodistill.losses import PRESETS
    from geodistill.models.build import list_models

    lines = ["datasets (--dataset):"]
    lines += [f"  {n:<15} {get_spec(n).title}" for n in list_datasets()]
    lines += [
        "models (--model, --student): " + ", ".join(list_models()),
        "  and any torchvision classifier or timm model by name",
    ]
    lines += ["objectives (--loss):"] + [f"  {n:<15} {p.about}" for n, p in PRESETS.items()]
    lines += ["  or a spec such as 'ce:0.5 + kl:0.5@T=4'", "recipes (run --recipe): " + ", ".join(recipe_names())]
    lines += ["protocols (--protocol NAME): " + ", ".join(PROTOCOLS)]
    typer.echo("\n".join(lines))
