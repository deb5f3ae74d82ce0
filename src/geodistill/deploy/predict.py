"""Predict the classes of image files with a checkpoint or an exported model.

Images are decoded exactly as the training data was (``geodistill.data.imageio.read_image``):
resized (bilinear, antialiased, stretched to square, never cropped) to the model's size, RGBA
-> alpha dropped, grayscale -> replicated, 16-bit -> ``round(v / 257)``, multispectral TIFFs
(13-band EuroSAT via tifffile) kept band by band. A file that cannot be decoded or whose band
count cannot be mapped to the model's channels (e.g. an RGB photo into a 13-band model) becomes
an error row with the reason; the other files are still predicted.
"""

from __future__ import annotations

import csv
import io
import json
from collections.abc import Iterable, Sequence
from pathlib import Path

import numpy as np

from geodistill.core.atomic import write_text
from geodistill.core.errors import GeodistillError
from geodistill.data.imageio import UnreadableImage, band_count, read_image
from geodistill.data.registry import IMAGE_EXTENSIONS
from geodistill.deploy.runtime import Runner, load_runner

OUT_SUFFIXES = (".csv", ".json")


def find_images(paths: str | Path | Iterable[str | Path]) -> list[Path]:
    """Image files named by ``paths``: files as given, folders searched recursively.

    Inside folders only image suffixes (JPEG, PNG, TIFF, BMP, WebP, GIF) are taken, hidden files
    and folders are skipped, and the order is sorted; a file named explicitly is always kept
    (if it is not an image, its row says so). Duplicates are listed once.
    """
    if isinstance(paths, (str, Path)):
        paths = [paths]
    exts = tuple(IMAGE_EXTENSIONS)
    found: list[Path] = []
    seen: set[Path] = set()
    for p in map(Path, paths):
        if p.is_dir():
            files = sorted(
                f
                for f in p.rglob("*")
                if f.is_file()
                and f.suffix.lower() in exts
                and not any(part.startswith(".") for part in f.relative_to(p).parts)
            )
        elif p.is_file():
            files = [p]
        else:
            raise GeodistillError(f"Input {p} does not exist; pass image files or folders of images.")
        for f in files:
            key = f.resolve()
            if key not in seen:
                seen.add(key)
                found.append(f)
    return found


def _decode(path: Path, runner: Runner) -> tuple[np.ndarray | None, str, str]:
    """``(image C x size x size uint8 or None, error reason, notes)`` for one file."""
    if path.suffix.lower() not in IMAGE_EXTENSIONS:
        return None, f"not an image file (suffix '{path.suffix}')", ""
    try:
        image, notes = read_image(path, runner.size, runner.in_channels)
    except UnreadableImage as e:
        return None, f"unreadable image ({e})", ""
    except GeodistillError as e:  # e.g. a band count that cannot be mapped to the model's channels
        bands = band_count(path)
        if bands != runner.in_channels:
            return (
                None,
                (f"wrong channel count: the image has {bands} bands but the model takes {runner.in_channels} channels"),
                "",
            )
        return None, str(e), ""
    except OSError as e:
        return None, f"cannot open file ({e})", ""
    return image, "", ", ".join(sorted(notes))


def predict(
    model_path: str | Path,
    paths: str | Path | Sequence[str | Path],
    top_k: int = 3,
    batch_size: int = 64,
    out: str | Path | None = None,
) -> list[dict]:
    """Top-k classes of every image in ``paths`` (files or folders, searched recursively).

    ``model_path``: a ``.ckpt`` checkpoint, an exported ``.onnx`` or a TorchScript ``.pt``.
    Every image is resized to the model's size (see the module docstring). Returns one row per
    file: ``{"path", "status": "ok" | "error", "reason", "notes", "predictions": [{"class",
    "probability"}, ...]}`` (probabilities are the softmax of the logits, highest first). With
    ``out`` (``.csv`` or ``.json``) the rows are also written there; CSV flattens the
    predictions into ``class_1, prob_1, ..., class_k, prob_k`` columns.
    """
    if out is not None and Path(out).suffix.lower() not in OUT_SUFFIXES:
        raise GeodistillError(f"Output {out} must end in .csv or .json.")
    if top_k < 1 or batch_size < 1:
        raise GeodistillError("top_k and batch_size must be at least 1.")
    runner = load_runner(model_path)
    files = find_images(paths)
    if not files:
        raise GeodistillError(
            f"No image files found in {', '.join(map(str, [paths] if isinstance(paths, (str, Path)) else paths))}; "
            "pass JPEG, PNG or TIFF files or folders holding them."
        )
    k = min(top_k, len(runner.classes))
    rows: list[dict] = []
    for start in range(0, len(files), batch_size):
        chunk = files[start : start + batch_size]
        decoded = [_decode(f, runner) for f in chunk]
        ok = [i for i, (img, _, _) in enumerate(decoded) if img is not None]
        probs = runner.probabilities(np.stack([decoded[i][0] for i in ok])) if ok else None
        prob_of = {i: probs[j] for j, i in enumerate(ok)}
        for i, (f, (_, reason, notes)) in enumerate(zip(chunk, decoded)):
            row = {
                "path": str(f),
                "status": "ok" if i in prob_of else "error",
                "reason": reason,
                "notes": notes,
                "predictions": [],
            }
            if i in prob_of:
                p = prob_of[i]
                order = np.argsort(-p, kind="stable")[:k]
                row["predictions"] = [{"class": runner.classes[c], "probability": float(p[c])} for c in order]
            rows.append(row)
    if out is not None:
        write_predictions(rows, out, k)
    return rows


def write_predictions(rows: list[dict], out: str | Path, top_k: int | None = None) -> Path:
    """Write prediction rows as CSV or JSON (by ``out``'s suffix), atomically."""
    out = Path(out)
    suffix = out.suffix.lower()
    if suffix == ".json":
        text = json.dumps(rows, indent=2) + "\n"
    elif suffix == ".csv":
        k = top_k if top_k is not None else max((len(r["predictions"]) for r in rows), default=0)
        buf = io.StringIO()
        writer = csv.writer(buf, lineterminator="\n")
        writer.writerow(
            ["path", "status", "reason", "notes"] + [c for j in range(1, k + 1) for c in (f"class_{j}", f"prob_{j}")]
        )
        for r in rows:
            cells = [r["path"], r["status"], r["reason"], r["notes"]]
            for j in range(k):
                pred = r["predictions"][j] if j < len(r["predictions"]) else None
                cells += [pred["class"], f"{pred['probability']:.6f}"] if pred else ["", ""]
            writer.writerow(cells)
        text = buf.getvalue()
    else:
        raise GeodistillError(f"Output {out} must end in .csv or .json.")
    return write_text(out, text)
