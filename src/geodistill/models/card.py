"""`model_card`: what a model costs (parameters, FLOPs, bytes on disk).

FLOPs follow ``torch.utils.flop_counter.FlopCounterMode``: one forward pass at batch 1 on a
``in_channels x size x size`` input, counting matrix multiplies and convolutions as
2 x multiply-accumulates (so FLOPs = 2 x MACs); element-wise ops, normalisation and pooling are
not counted.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import torch
from torch import nn
from torch.utils.flop_counter import FlopCounterMode

from geodistill.core.errors import GeodistillError

from .classifier import _unwrap


def input_channels(model: nn.Module) -> int:
    """The input channel count of ``model``: its ``in_channels`` attribute, else its first convolution's."""
    c = getattr(model, "in_channels", None)
    if isinstance(c, int):
        return c
    for m in model.modules():
        if isinstance(m, nn.Conv2d):
            return m.in_channels
    raise GeodistillError(f"Cannot tell how many input channels model {type(model).__name__} takes; pass in_channels.")


def count_flops(model: nn.Module, size: int, in_channels: int | None = None) -> int:
    """FLOPs of one forward pass on a ``1 x C x size x size`` zero input (2 per MAC, see the module
    docstring); ``in_channels`` defaults to ``input_channels(model)``. The model's train/eval mode
    is restored afterwards."""
    param = next(model.parameters(), None)
    device = param.device if param is not None else torch.device("cpu")
    dtype = param.dtype if param is not None and param.is_floating_point() else torch.float32
    x = torch.zeros(1, in_channels or input_channels(model), size, size, device=device, dtype=dtype)
    was_training = model.training
    model.eval()
    try:
        with torch.no_grad(), FlopCounterMode(display=False) as counter:
            model(x)
    finally:
        model.train(was_training)
    return int(counter.get_total_flops())


def state_dict_bytes(model: nn.Module) -> int:
    """Bytes of the model's state-dict tensors stored as float32 (integer buffers at their own
    width): the size of a saved fp32 state dict minus its few-kB container overhead. Computed
    without serialising, so it is cheap even for VGG16 (~537 MB)."""
    total = 0
    for v in model.state_dict().values():
        total += v.numel() * (4 if v.is_floating_point() else v.element_size())
    return total


def model_card(model: nn.Module, size: int, path: str | Path | None = None) -> dict[str, Any]:
    """``{arch, num_classes, in_channels, input_size, params, trainable_params, flops,
    size_bytes}``; ``size_bytes`` is the size of the file at ``path`` if given, else
    `state_dict_bytes` (fp32 tensor payload). ``flops`` = 2 x MACs of one batch-1 forward."""
    model = _unwrap(model)
    if isinstance(size, bool) or not isinstance(size, int) or size < 1:
        raise GeodistillError(f"model card input size must be a positive integer, got {size!r}.")
    in_channels = int(getattr(model, "in_channels", 3))
    if path is not None:
        p = Path(path)
        if not p.is_file():
            raise GeodistillError(f"model file {p} does not exist; pass the saved weights' path.")
        size_bytes = p.stat().st_size
    else:
        size_bytes = state_dict_bytes(model)
    return {
        "arch": getattr(model, "arch", type(model).__name__),
        "num_classes": getattr(model, "num_classes", None),
        "in_channels": in_channels,
        "input_size": size,
        "params": sum(p.numel() for p in model.parameters()),
        "trainable_params": sum(p.numel() for p in model.parameters() if p.requires_grad),
        "flops": count_flops(model, size, in_channels),
        "size_bytes": int(size_bytes),
    }
