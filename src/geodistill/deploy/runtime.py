"""The deployed-model contract and one loader for every model file geodistill writes.

Input contract of every exported model (ONNX and TorchScript) and of ``Runner``:
a **uint8 tensor N x C x size x size, pixel values 0..255**, bands in the order the model was
trained on (RGB for RGB models), batch N free. Resizing is the caller's job (``predict`` does
it); scaling and normalisation are inside the model: ``logits = model((x / 255 - mean) / std)``.
The output is the logits ``N x num_classes`` (softmax them for probabilities).

The metadata (class names, size, channels, normaliser, input convention, geodistill version)
travels inside the file: ONNX ``metadata_props`` (key ``geodistill`` holds the whole JSON; the
keys ``classes``, ``size``, ``in_channels``, ``input`` repeat the main facts for other tools),
TorchScript ``extra_files['geodistill.json']``.
"""

from __future__ import annotations

import importlib
import json
import warnings
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import torch

from geodistill.core.errors import GeodistillError
from geodistill.models.checkpoint import load_classifier
from geodistill.models.preprocess import torch_runner, with_preprocessing

INPUT_NAME = "image"
OUTPUT_NAME = "logits"
INPUT_CONVENTION = (
    "uint8 N x C x H x W, values 0..255, H = W = size, bands in training order; "
    "normalisation (x/255 - mean)/std is inside the model; output: logits"
)
META_KEY = "geodistill"
TORCHSCRIPT_META = "geodistill.json"
MODEL_SUFFIXES = {".ckpt": "checkpoint", ".onnx": "onnx", ".pt": "torchscript", ".pth": "torchscript"}


def _softmax(logits: np.ndarray) -> np.ndarray:
    z = logits - logits.max(axis=1, keepdims=True)
    e = np.exp(z)
    return e / e.sum(axis=1, keepdims=True)


@dataclass
class Runner:
    """A loaded model: ``runner(uint8 N x C x size x size numpy) -> logits (float32 numpy)``."""

    path: Path
    kind: str  # "checkpoint", "onnx" or "torchscript"
    classes: list[str]
    size: int
    in_channels: int
    fn: Callable[[np.ndarray], np.ndarray]
    meta: dict = field(default_factory=dict)

    def __call__(self, images: np.ndarray) -> np.ndarray:
        return self.fn(np.ascontiguousarray(images, dtype=np.uint8))

    def probabilities(self, images: np.ndarray) -> np.ndarray:
        """Softmax of the logits, N x num_classes."""
        return _softmax(self(images).astype(np.float64))


def onnx_session(path: str | Path, threads: int | None = None):
    """An ONNX Runtime CPU session for ``path`` (``threads`` None = ORT's default)."""
    ort = import_optional("onnxruntime")
    opts = ort.SessionOptions()
    opts.log_severity_level = 3
    if threads:
        opts.intra_op_num_threads = threads
    try:
        return ort.InferenceSession(str(path), sess_options=opts, providers=["CPUExecutionProvider"])
    except Exception as e:
        raise GeodistillError(
            f"ONNX Runtime cannot load {path} ({str(e).splitlines()[0][:200]}); re-export it with 'geodistill export'."
        ) from None


def onnx_runner(session) -> Callable[[np.ndarray], np.ndarray]:
    """Numpy-in, numpy-out call of an ONNX Runtime session with one input."""
    name = session.get_inputs()[0].name
    return lambda x: session.run(None, {name: x})[0]


def import_optional(module: str):
    """Import an optional dependency or explain which extra installs it."""
    try:
        return importlib.import_module(module)
    except ImportError:
        raise GeodistillError(
            f"This needs the optional package '{module}': run pip install 'geodistill[deploy]'."
        ) from None


def get_metadata(model) -> dict:
    """The geodistill metadata of an ``onnx.ModelProto`` (``{}`` if there is none)."""
    for p in model.metadata_props:
        if p.key == META_KEY:
            return json.loads(p.value)
    return {}


def set_metadata(model, meta: dict) -> None:
    """Store ``meta`` in an ``onnx.ModelProto``'s ``metadata_props``: the whole dict as JSON under
    ``geodistill`` plus ``classes``, ``size``, ``in_channels``, ``input``, ``geodistill_version``."""
    keep = {p.key: p.value for p in model.metadata_props}
    keep[META_KEY] = json.dumps(meta)
    for k in ("classes", "size", "in_channels", "input", "geodistill_version", "quantization"):
        if k in meta and meta[k] is not None:
            keep[k] = meta[k] if isinstance(meta[k], str) else json.dumps(meta[k])
    del model.metadata_props[:]
    for k, v in keep.items():
        entry = model.metadata_props.add()
        entry.key, entry.value = k, v


def onnx_metadata(session_or_path: Any) -> dict:
    """The geodistill metadata stored in an ONNX model (``{}`` if there is none)."""
    session = session_or_path if hasattr(session_or_path, "get_modelmeta") else onnx_session(session_or_path)
    props = session.get_modelmeta().custom_metadata_map
    if META_KEY not in props:
        return {}
    return json.loads(props[META_KEY])


def torchscript_load(path: str | Path) -> tuple[torch.jit.ScriptModule, dict]:
    """Load a TorchScript file and its geodistill metadata (``{}`` if there is none)."""
    extra = {TORCHSCRIPT_META: ""}
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", FutureWarning)  # torch.jit is deprecated but still works
        try:
            module = torch.jit.load(str(path), map_location="cpu", _extra_files=extra)
        except Exception as e:
            raise GeodistillError(
                f"{path} is not a readable TorchScript file ({type(e).__name__}); "
                "re-export it with 'geodistill export --format torchscript'."
            ) from None
    raw = extra[TORCHSCRIPT_META]
    return module.eval(), (json.loads(raw) if raw else {})


def _require(meta: dict, path: Path) -> None:
    missing = [k for k in ("classes", "size", "in_channels") if k not in meta]
    if missing:
        raise GeodistillError(
            f"{path} carries no geodistill metadata ({', '.join(missing)} missing); "
            "export it with 'geodistill export' so class names and size travel with it."
        )


def load_runner(path: str | Path) -> Runner:
    """Load a checkpoint (.ckpt), an ONNX file (.onnx) or a TorchScript file (.pt/.pth)."""
    path = Path(path)
    kind = MODEL_SUFFIXES.get(path.suffix.lower())
    if kind is None:
        raise GeodistillError(
            f"Model file {path} has an unknown suffix; pass a .ckpt checkpoint, an exported .onnx or a TorchScript .pt."
        )
    if not path.is_file():
        raise GeodistillError(f"Model file {path} does not exist; check the path.")
    if kind == "checkpoint":
        model, meta = load_classifier(path)
        wrapped = with_preprocessing(model, meta.get("normalizer"), int(meta["in_channels"])).eval()
        fn = torch_runner(wrapped)
    elif kind == "onnx":
        session = onnx_session(path)
        meta = onnx_metadata(session)
        fn = onnx_runner(session)
    else:
        module, meta = torchscript_load(path)
        fn = torch_runner(module)
    _require(meta, path)
    return Runner(
        path=path,
        kind=kind,
        classes=list(meta["classes"]),
        size=int(meta["size"]),
        in_channels=int(meta["in_channels"]),
        fn=fn,
        meta=meta,
    )
