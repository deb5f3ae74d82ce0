"""Checkpoints: atomic writes (temp file + rename) and safe loads (``weights_only=True``).

A checkpoint is a plain dict of tensors and primitives, so it loads without unpickling code:
``arch, num_classes, in_channels, classes, size, normalizer, state_dict, metrics, config,
geodistill_version`` and, for resumable training state, ``train_state``.
"""

from __future__ import annotations

import zipfile
from collections.abc import Callable
from pathlib import Path
from typing import Any

import torch

from geodistill import __version__
from geodistill.core.atomic import atomic_file
from geodistill.core.errors import GeodistillError
from geodistill.models import build_model

REQUIRED = ("arch", "num_classes", "in_channels", "classes", "size", "normalizer", "state_dict")


def atomic_save(obj: Any, path: str | Path) -> Path:
    """``torch.save`` through :func:`geodistill.atomic.atomic_file` (temp file, fsync, rename)."""
    with atomic_file(path, "wb") as f:
        torch.save(obj, f)
    return Path(path)


def save_checkpoint(
    path: str | Path,
    model: torch.nn.Module,
    *,
    arch: str,
    num_classes: int,
    in_channels: int,
    classes: list[str],
    size: int,
    normalizer: dict,
    metrics: dict | None = None,
    config: dict | None = None,
    train_state: dict | None = None,
) -> Path:
    """Write a model checkpoint atomically; ``model`` is the ``Classifier`` (unwrapped)."""
    state = {k: v.detach().cpu() for k, v in model.state_dict().items()}
    ckpt = {
        "arch": arch,
        "num_classes": int(num_classes),
        "in_channels": int(in_channels),
        "classes": list(classes),
        "size": int(size),
        "normalizer": normalizer,
        "state_dict": state,
        "metrics": metrics or {},
        "config": config or {},
        "geodistill_version": __version__,
    }
    if train_state is not None:
        ckpt["train_state"] = train_state
    return atomic_save(ckpt, path)


def _safe_load(path: Path, unreadable: Callable[[str], str]) -> Any:
    """``torch.load`` of tensors only (no code objects); when that fails, raises the sentence
    ``unreadable(name of the exception's type)``."""
    try:
        return torch.load(path, map_location="cpu", weights_only=True)
    except Exception as e:
        raise GeodistillError(unreadable(type(e).__name__)) from None


def read_resumable(path: Path) -> dict:
    """The dict in a run's ``last.ckpt`` (tensors only), or one sentence saying how to start over."""
    ckpt = _safe_load(
        path,
        lambda error: (
            f"{path} could not be read ({error}), so the run cannot resume from it; "
            "delete it to train this run from its first epoch."
        ),
    )
    if not isinstance(ckpt, dict):
        raise GeodistillError(
            f"{path} is not a geodistill resume checkpoint; delete it to train this run from its first epoch."
        )
    return ckpt


def _other_format(path: Path) -> str | None:
    """'an ONNX model' or 'a TorchScript model' for an exported file given where a checkpoint is needed."""
    if path.suffix.lower() == ".onnx":
        return "an ONNX model"
    if zipfile.is_zipfile(path):
        with zipfile.ZipFile(path) as z:
            if any("/code/" in n or n.endswith("constants.pkl") for n in z.namelist()):
                return "a TorchScript model"
    return None


def load_checkpoint(path: str | Path) -> dict:
    """Load a geodistill checkpoint dict safely (no arbitrary code), or explain what is wrong."""
    path = Path(path)
    if not path.is_file():
        raise GeodistillError(
            f"Checkpoint {path} does not exist; pass the path of a .ckpt written by 'geodistill train' or 'distill'."
        )
    other = _other_format(path)
    if other is not None:
        raise GeodistillError(
            f"{path} is {other}; this command needs a .ckpt written by 'geodistill train' or 'distill' "
            "(exported models go to 'geodistill predict')."
        )
    ckpt = _safe_load(
        path,
        lambda error: (
            f"Checkpoint {path} could not be read safely ({error}); it is truncated, "
            "not a geodistill checkpoint, or contains code objects."
        ),
    )
    missing = [k for k in REQUIRED if not isinstance(ckpt, dict) or k not in ckpt]
    if missing:
        raise GeodistillError(
            f"Checkpoint {path} lacks {', '.join(missing)}; it is not a geodistill model checkpoint "
            "(plain weights go to --weights instead)."
        )
    return ckpt


def load_classifier(path: str | Path):
    """Rebuild the ``Classifier`` stored in a checkpoint; returns ``(model.eval(), meta)``."""

    ckpt = load_checkpoint(path)
    model = build_model(ckpt["arch"], ckpt["num_classes"], in_channels=ckpt["in_channels"])
    try:
        model.load_state_dict(ckpt["state_dict"])
    except RuntimeError as e:
        raise GeodistillError(
            f"Checkpoint {path} does not match architecture {ckpt['arch']!r}: {str(e).splitlines()[0]}"
        ) from None
    meta = {k: v for k, v in ckpt.items() if k != "state_dict"}
    return model.eval(), meta
