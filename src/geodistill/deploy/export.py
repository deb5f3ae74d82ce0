"""Export a trained classifier to ONNX or TorchScript, with its preprocessing inside.

The exported model follows the contract of ``geodistill.deploy.runtime``: input ``image``,
uint8 N x C x size x size (values 0..255, batch N dynamic), output ``logits``; the
normalisation ``(x/255 - mean)/std`` is part of the graph, and class names, size, channels and
normaliser are stored in the file. Every export is verified: the exported file is reloaded and
run on a batch (test-split images when a dataset is known, random pixels otherwise) at batch
1 and batch n, and its logits must match PyTorch's within ``tolerance`` relative to the logit
scale: ``max|exported - torch| / max(1, max|torch|) <= tolerance``.

ONNX uses the TorchScript-based exporter (``dynamo=False``, opset 17): on torch 2.14 it exports
these CNNs in a fraction of a second with a dynamic batch axis; the ``torch.export``-based
exporter (opset 18) is the fallback when it fails. ``int8=True`` adds ONNX Runtime static
quantisation (``geodistill.deploy.quantize``) calibrated on training-split images.
"""

from __future__ import annotations

import contextlib
import io
import json
import os
import sys
import warnings
from pathlib import Path
from typing import Any

import torch
from torch import nn

from geodistill import __version__
from geodistill.core.atomic import write_bytes
from geodistill.core.errors import GeodistillError
from geodistill.deploy.runtime import (
    INPUT_CONVENTION,
    INPUT_NAME,
    OUTPUT_NAME,
    TORCHSCRIPT_META,
    import_optional,
    set_metadata,
)
from geodistill.models.preprocess import Preprocessed, with_preprocessing

FORMATS = {"onnx": (".onnx",), "torchscript": (".pt", ".pth")}
ONNX_OPSET = 17


def build_metadata(
    *, arch: str, classes: list[str], size: int, in_channels: int, normalizer: dict | None, **extra: Any
) -> dict:
    """The metadata dict stored in exported files (JSON-able)."""
    meta = {
        "arch": arch,
        "classes": list(classes),
        "num_classes": len(classes),
        "size": int(size),
        "in_channels": int(in_channels),
        "normalizer": normalizer,
        "input": INPUT_CONVENTION,
        "input_name": INPUT_NAME,
        "output_name": OUTPUT_NAME,
        "quantization": None,
        "geodistill_version": __version__,
    }
    meta.update(extra)
    return meta


@contextlib.contextmanager
def _quiet_output():
    """Silence stdout/stderr at the file-descriptor level (the legacy exporter prints the whole
    TorchScript graph when it gives up, before geodistill falls back to the other exporter)."""
    sys.stdout.flush()
    sys.stderr.flush()
    saved = [os.dup(1), os.dup(2)]
    with open(os.devnull, "wb") as null:
        os.dup2(null.fileno(), 1)
        os.dup2(null.fileno(), 2)
        try:
            yield
        finally:
            sys.stdout.flush()
            sys.stderr.flush()
            os.dup2(saved[0], 1)
            os.dup2(saved[1], 2)
            os.close(saved[0])
            os.close(saved[1])


def _onnx_proto(wrapped: nn.Module, example: torch.Tensor):
    """Trace ``wrapped`` to an ``onnx.ModelProto`` with a dynamic batch axis."""
    onnx = import_optional("onnx")
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # the legacy exporter announces its deprecation
        try:
            buf = io.BytesIO()
            with _quiet_output():
                torch.onnx.export(
                    wrapped,
                    (example,),
                    buf,
                    input_names=[INPUT_NAME],
                    output_names=[OUTPUT_NAME],
                    opset_version=ONNX_OPSET,
                    dynamic_axes={INPUT_NAME: {0: "batch"}, OUTPUT_NAME: {0: "batch"}},
                    do_constant_folding=True,
                    dynamo=False,
                )
            return onnx.load_from_string(buf.getvalue())
        except Exception as legacy_error:
            try:
                batch = torch.export.Dim("batch", min=1)
                program = torch.onnx.export(
                    wrapped,
                    (example,),
                    input_names=[INPUT_NAME],
                    output_names=[OUTPUT_NAME],
                    opset_version=18,
                    dynamic_shapes={"x": {0: batch}},
                    dynamo=True,
                    verbose=False,
                )
                return program.model_proto
            except Exception as e:
                raise GeodistillError(
                    f"torch.onnx.export cannot export this model ({type(legacy_error).__name__}: "
                    f"{str(legacy_error).splitlines()[0][:150]}; dynamo exporter: {type(e).__name__}); "
                    "export it with --format torchscript instead."
                ) from None


def _example(in_channels: int, size: int, batch: int = 2) -> torch.Tensor:
    return torch.randint(
        0, 256, (batch, in_channels, size, size), dtype=torch.uint8, generator=torch.Generator().manual_seed(0)
    )


def export_onnx(
    model: nn.Module,
    path: str | Path,
    *,
    size: int,
    in_channels: int,
    normalizer: dict | None = None,
    classes: list[str] | None = None,
    meta: dict | None = None,
) -> Path:
    """Write ``model`` with its preprocessing as an ONNX file (atomically); returns the path.

    ``classes`` default to ``class_0..class_{K-1}``; ``meta`` adds/overrides metadata keys.
    """
    onnx = import_optional("onnx")
    path = Path(path)
    wrapped = model if isinstance(model, Preprocessed) else with_preprocessing(model, normalizer, in_channels)
    wrapped.eval()
    proto = _onnx_proto(wrapped, _example(in_channels, size))
    num_classes = int(wrapped(_example(in_channels, size, 1)).shape[1]) if classes is None else len(classes)
    classes = classes or [f"class_{i}" for i in range(num_classes)]
    info = build_metadata(
        arch=getattr(model, "arch", type(model).__name__),
        classes=classes,
        size=size,
        in_channels=in_channels,
        normalizer=normalizer,
    )
    info.update(meta or {})
    set_metadata(proto, info)
    proto.doc_string = f"geodistill {info['arch']}: {INPUT_CONVENTION}"
    write_bytes(path, proto.SerializeToString())
    onnx.checker.check_model(str(path))
    return path


def export_torchscript(
    model: nn.Module,
    path: str | Path,
    *,
    size: int,
    in_channels: int,
    normalizer: dict | None = None,
    classes: list[str] | None = None,
    meta: dict | None = None,
) -> Path:
    """Write ``model`` with its preprocessing as a traced TorchScript file (atomically)."""
    path = Path(path)
    wrapped = model if isinstance(model, Preprocessed) else with_preprocessing(model, normalizer, in_channels)
    wrapped.eval()
    example = _example(in_channels, size)
    with warnings.catch_warnings(), torch.no_grad():
        warnings.simplefilter("ignore")  # torch.jit is deprecated in favour of torch.export
        traced = torch.jit.trace(wrapped, (example,))
        num_classes = int(wrapped(example).shape[1]) if classes is None else len(classes)
        classes = classes or [f"class_{i}" for i in range(num_classes)]
        info = build_metadata(
            arch=getattr(model, "arch", type(model).__name__),
            classes=classes,
            size=size,
            in_channels=in_channels,
            normalizer=normalizer,
        )
        info.update(meta or {})
        buf = io.BytesIO()
        torch.jit.save(traced, buf, _extra_files={TORCHSCRIPT_META: json.dumps(info)})
    write_bytes(path, buf.getvalue())
    return path
