"""What the CLI shows about a dataset: a summary dict, a readable table and a preview grid."""

from __future__ import annotations

import io
from collections.abc import Sequence
from pathlib import Path

import numpy as np
from PIL import Image, ImageDraw, ImageFont
from rich.console import Console
from rich.table import Table

from geodistill.config.run import build_config
from geodistill.core.atomic import atomic_file
from geodistill.core.errors import GeodistillError
from geodistill.data.imageset import ImageSet
from geodistill.data.prepare import prepare_data
from geodistill.data.registry import get_spec
from geodistill.data.splits import SPLIT_NAMES
from geodistill.data.store import image_cache_dir, load_dataset


def data_info(
    name: str,
    root: str | Path | None = None,
    size: int = 32,
    *,
    channels: int | None = None,
    cache_dir: Path | None = None,
    fractions: Sequence[float] = (0.6, 0.2, 0.2),
    seed: int = 0,
    strict: bool = False,
    n_per_class: int | None = None,
    protocol: str | None = None,
) -> dict:
    """Load ``name`` through ``prepare_data`` (the cache and split training uses) and summarise it.

    ``cache_dir`` is the cache root (as ``data.cache_dir``); ``seed`` is the split seed;
    ``protocol`` a named protocol (`config.protocols`), whose split replaces ``fractions``.

    Keys: name, title, root, classes, num_classes, num_images, counts (class -> n),
    split_counts (class -> {train, val, test}), split_totals, size, channels, native_size,
    native_sizes (a folder's file sizes: 'W x H' -> count; None where the registry knows the
    size), cache_path, key, skipped, fractions, protocol, train_ratio, val_ratio, seed, layout,
    source.
    """
    spec = get_spec(name)
    text = {"root": root, "cache_dir": cache_dir}
    given = {k: None if v is None else str(v) for k, v in text.items()} | {
        "dataset": spec.name, "size": size, "channels": channels, "fractions": list(fractions), "split_seed": seed,
        "strict": strict, "n_per_class": n_per_class, "protocol": protocol,
    }  # fmt: skip
    d = build_config({"data": given}, where="data info").data
    data = prepare_data(d)
    ds, split = data.dataset, data.split
    counts = ds.class_counts()
    per_split = {s: np.bincount(ds.labels[split[s]], minlength=ds.num_classes) for s in SPLIT_NAMES}
    return {
        "name": spec.name,
        "title": spec.title,
        "root": str(ds.root) if ds.root is not None else None,
        "classes": list(ds.classes),
        "num_classes": ds.num_classes,
        "num_images": len(ds),
        "counts": {c: int(k) for c, k in zip(ds.classes, counts)},
        "split_counts": {c: {s: int(per_split[s][i]) for s in SPLIT_NAMES} for i, c in enumerate(ds.classes)},
        "split_totals": {s: int(len(split[s])) for s in SPLIT_NAMES},
        "size": ds.size,
        "channels": ds.channels,
        "native_size": spec.native_size,
        "native_sizes": native_sizes(ds) if spec.native_size is None else None,
        "cache_path": str(ds.cache_path) if ds.cache_path is not None else None,
        "key": ds.key,
        "skipped": list(ds.skipped),
        "fractions": [float(f) for f in fractions],
        "protocol": protocol,
        "train_ratio": d.train_ratio,
        "val_ratio": d.val_ratio,
        "seed": seed,
        "layout": spec.layout,
        "source": spec.source,
    }


def native_sizes(ds: ImageSet) -> dict[str, int]:
    """'W x H' -> how many of a folder's files have that size (read from the file headers; files
    whose header PIL cannot read are left out)."""
    sizes: dict[str, int] = {}
    if ds.root is None:
        return sizes
    for rel in ds.paths:
        try:
            with Image.open(ds.root / rel) as im:
                key = f"{im.size[0]} x {im.size[1]}"
        except (OSError, ValueError):
            continue
        sizes[key] = sizes.get(key, 0) + 1
    return dict(sorted(sizes.items(), key=lambda kv: -kv[1]))


def _native(info: dict) -> str:
    if info.get("native_size"):
        return f"{info['native_size']} px"
    sizes = info.get("native_sizes") or {}
    if len(sizes) == 1:
        return f"{next(iter(sizes))} px"
    if sizes:
        return f"{len(sizes)} sizes, most often {next(iter(sizes))} px"
    return "unknown"


def _split_rule(info: dict) -> str:
    """How the split was drawn: the fractions, or a per-class training ratio (a protocol's)."""
    if info.get("train_ratio") is None:
        return "/".join(f"{f:g}" for f in info["fractions"])
    named = f"protocol {info['protocol']}: " if info.get("protocol") else ""
    return (
        f"{named}{info['train_ratio']:g} of each class trains ({info['val_ratio']:g} of it validates), the rest tests"
    )


def _skipped(names: list[str], shown: int = 3) -> str:
    more = f", and {len(names) - shown} more" if len(names) > shown else ""
    return f"{len(names)} unreadable image(s): {', '.join(names[:shown])}{more}"


def format_info(info: dict) -> str:
    """A plain-text table of ``data_info``'s dict (rendered with rich, no colour codes)."""
    buf = io.StringIO()
    console = Console(file=buf, width=100, force_terminal=False, color_system=None)
    native = _native(info)
    head = Table.grid(padding=(0, 2))
    head.add_column(style="bold")
    head.add_column()
    head.add_row("dataset", f"{info['name']} - {info['title']}")
    if info.get("root"):
        head.add_row("root", info["root"])
    head.add_row("images", f"{info['num_images']} in {info['num_classes']} classes")
    head.add_row("image size", f"{info['size']} x {info['size']} px, {info['channels']} channels (native {native})")
    head.add_row("cache", info.get("cache_path") or "none (generated in memory)")
    head.add_row("split", f"{_split_rule(info)}, seed {info['seed']}")
    if info.get("skipped"):
        head.add_row("skipped", _skipped(info["skipped"]))
    console.print(head)
    table = Table(show_edge=False, pad_edge=False)
    table.add_column("class")
    for col in ("images", *SPLIT_NAMES):
        table.add_column(col, justify="right")
    for cls in info["classes"]:
        sc = info["split_counts"][cls]
        table.add_row(cls, str(info["counts"][cls]), *(str(sc[s]) for s in SPLIT_NAMES))
    totals = info["split_totals"]
    table.add_row("total", str(info["num_images"]), *(str(totals[s]) for s in SPLIT_NAMES), style="bold")
    console.print(table)
    return buf.getvalue().rstrip() + "\n"


def label_font(size: int = 11) -> ImageFont.FreeTypeFont | ImageFont.ImageFont:
    """A font with glyphs for accented class names ('água', 'Área urbana'): DejaVu Sans from the
    system, else matplotlib's copy, else Pillow's own (which draws such letters as boxes)."""
    try:
        return ImageFont.truetype("DejaVuSans.ttf", size)
    except OSError:
        pass
    try:
        import matplotlib

        return ImageFont.truetype(str(Path(matplotlib.get_data_path()) / "fonts" / "ttf" / "DejaVuSans.ttf"), size)
    except (ImportError, OSError):
        return ImageFont.load_default(size)


def _display_rgb(ds: ImageSet, idx: np.ndarray, rgb_bands: tuple[int, int, int]) -> np.ndarray:
    """uint8 K x H x W x 3 images for display (gray replicated, multispectral -> rgb_bands)."""
    imgs = np.asarray(ds.images[idx])
    if imgs.shape[1] == 1:
        imgs = np.repeat(imgs, 3, axis=1)
    elif imgs.shape[1] != 3:
        bands = list(rgb_bands) if max(rgb_bands) < imgs.shape[1] else [0, 1, 2]
        imgs = imgs[:, bands]
    return imgs.transpose(0, 2, 3, 1)


def preview(
    name: str,
    root: str | Path | None = None,
    out_png: str | Path = "preview.png",
    per_class: int = 8,
    size: int = 64,
    *,
    seed: int = 0,
    cache_dir: Path | None = None,
    channels: int | None = None,
    n_per_class: int | None = None,
) -> Path:
    """Write a PNG grid: one row per class (name on the left), ``per_class`` random samples each."""
    if per_class < 1:
        raise GeodistillError(f"per_class={per_class} is invalid: pass at least 1 sample per class.")
    spec = get_spec(name)
    ds = load_dataset(
        spec.name,
        root,
        size=size,
        channels=channels,
        cache_dir=image_cache_dir(cache_dir),
        n_per_class=n_per_class,
        seed=seed,
    )
    rng = np.random.Generator(np.random.PCG64(seed))
    font = label_font()
    draw_probe = ImageDraw.Draw(Image.new("RGB", (1, 1)))
    label_w = 8 + max(int(draw_probe.textlength(c, font=font)) for c in ds.classes)
    pad = 2
    cell = size + pad
    grid = Image.new("RGB", (label_w + per_class * cell + pad, ds.num_classes * cell + pad), (255, 255, 255))
    draw = ImageDraw.Draw(grid)
    for row, cls in enumerate(ds.classes):
        members = np.flatnonzero(ds.labels == row)
        pick = np.sort(rng.choice(members, size=min(per_class, len(members)), replace=False))
        y = pad + row * cell
        draw.text((4, y + size // 2 - 6), cls, fill=(0, 0, 0), font=font)
        for col, img in enumerate(_display_rgb(ds, pick, spec.rgb_bands)):
            grid.paste(Image.fromarray(np.ascontiguousarray(img)), (label_w + pad + col * cell, y))
    out = Path(out_png).expanduser()
    if out.parent and not out.parent.exists():
        raise GeodistillError(f"Folder '{out.parent}' for the preview does not exist: create it or pick another path.")
    with atomic_file(out, "wb") as f:
        grid.save(f, format="PNG")
    return out
