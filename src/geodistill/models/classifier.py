"""`Classifier`: one uniform wrapper that gives ``(logits, penultimate features)`` for any model.

The wrapped network is never rewritten. We locate its final classification ``nn.Linear`` (timm:
``get_classifier()``; otherwise the last ``nn.Linear`` registered in the model, e.g. torchvision
``vgg16.classifier[6]`` (features: its 4096-d input), ``mobilenet_v2.classifier[1]`` (1280-d),
``resnet.fc``) and register one forward pre-hook on it. ``forward_features`` switches the hook on
for one call and returns what the head consumed, so ``head(feats) == logits`` exactly. In training
mode those features are taken *after* any dropout that precedes the head (that is what the head
sees). The hook stays registered for the module's lifetime, works under ``no_grad``/eval,
``channels_last``, ``torch.compile`` (dynamo inlines module hooks) and DDP: call
``ddp_model(x, return_features=True)`` so the call goes through the wrapper's ``forward``.
"""

from __future__ import annotations

from typing import Any

from torch import Tensor, nn

from geodistill.core.errors import GeodistillError


def _unwrap(model: nn.Module) -> nn.Module:
    """Strip DDP (``.module``) and ``torch.compile`` (``._orig_mod``) wrappers."""
    while True:
        if hasattr(model, "_orig_mod") and isinstance(model._orig_mod, nn.Module):
            model = model._orig_mod
        elif isinstance(getattr(model, "module", None), nn.Module) and type(model).__name__ in {
            "DistributedDataParallel",
            "DataParallel",
        }:
            model = model.module
        else:
            return model


def find_head(net: nn.Module) -> str:
    """Dotted name of the final classification ``nn.Linear`` of ``net``.

    timm models: ``get_classifier()``; anything else: the last ``nn.Linear`` in registration order.
    """
    named = dict(net.named_modules())
    get_classifier = getattr(net, "get_classifier", None)
    if callable(get_classifier):
        try:
            head = get_classifier()
        except Exception:
            head = None
        if isinstance(head, nn.Linear):
            for name, mod in named.items():
                if mod is head:
                    return name
    linears = [name for name, mod in named.items() if isinstance(mod, nn.Linear)]
    if not linears:
        raise GeodistillError(
            f"model {type(net).__name__} has no nn.Linear classification head, so geodistill "
            "cannot read its penultimate features; pick a model with a linear classifier."
        )
    return linears[-1]


def first_conv_name(net: nn.Module) -> str:
    """Dotted name of the first ``nn.Conv2d`` registered in ``net`` (the input convolution)."""
    for name, mod in _unwrap(net).named_modules():
        if isinstance(mod, nn.Conv2d):
            return name
    raise GeodistillError(
        f"model {type(net).__name__} has no nn.Conv2d layer, so it has no first-layer weight "
        "for the nuclear-norm term; drop the 'nuc' term from the objective."
    )


def first_layer_weight(model: nn.Module) -> Tensor:
    """The weight (out, in, k, k) of the first ``nn.Conv2d`` of ``model`` (a live Parameter)."""
    model = _unwrap(model)
    return model.get_submodule(first_conv_name(model)).weight


def set_submodule(root: nn.Module, name: str, module: nn.Module) -> None:
    """Replace the submodule at dotted path ``name`` (works inside ``nn.Sequential``)."""
    parent_name, _, child = name.rpartition(".")
    parent = root.get_submodule(parent_name) if parent_name else root
    setattr(parent, child, module)


class Classifier(nn.Module):
    """A classification network plus a hook that exposes its pooled penultimate features.

    Attributes: ``arch`` (name to rebuild it with ``build_model``), ``num_classes``,
    ``in_channels``, ``feature_dim`` (width of the features the head consumes), ``net`` (the
    wrapped model; state-dict keys are the model's own under ``net.``).
    """

    def __init__(self, net: nn.Module, arch: str, num_classes: int, in_channels: int) -> None:
        super().__init__()
        self.net = net
        self.arch = arch
        self.num_classes = int(num_classes)
        self.in_channels = int(in_channels)
        self.head_name = find_head(net)
        head = net.get_submodule(self.head_name)
        if head.out_features != self.num_classes:
            raise GeodistillError(
                f"model {arch}: its head '{self.head_name}' has {head.out_features} outputs but "
                f"num_classes is {self.num_classes}; rebuild it with build_model."
            )
        self.feature_dim = int(head.in_features)
        self._capturing = False
        self._store: dict[str, Tensor] = {}
        head.register_forward_pre_hook(self._grab)

    def _grab(self, module: nn.Module, args: tuple[Any, ...]) -> None:
        if self._capturing:
            self._store["feats"] = args[0]

    @property
    def head(self) -> nn.Linear:
        """The final classification layer (inside ``net``)."""
        return self.net.get_submodule(self.head_name)

    def _logits(self, x: Tensor) -> Tensor:
        out = self.net(x)
        if isinstance(out, Tensor):
            return out
        logits = getattr(out, "logits", None)  # torchvision googlenet / inception in train mode
        if isinstance(logits, Tensor):
            return logits
        if isinstance(out, (tuple, list)) and out and isinstance(out[0], Tensor):
            return out[0]
        raise GeodistillError(f"model {self.arch} returned {type(out).__name__}, not logits.")

    def forward(self, x: Tensor, return_features: bool = False) -> Tensor | tuple[Tensor, Tensor]:
        """Logits (B x num_classes); with ``return_features=True`` the pair of
        ``forward_features`` (use this form through a DDP wrapper so gradients are synced)."""
        if not return_features:
            return self._logits(x)
        self._capturing = True
        try:
            logits = self._logits(x)
            feats = self._store.pop("feats", None)
        finally:
            self._capturing = False
            self._store.clear()
        if feats is None:
            raise GeodistillError(
                f"model {self.arch}: its head '{self.head_name}' was not called in forward, so "
                "its features cannot be read; use a model whose last layer is the classifier."
            )
        return logits, feats.flatten(1)

    def forward_features(self, x: Tensor) -> tuple[Tensor, Tensor]:
        """``(logits, feats)``: feats (B x feature_dim) is exactly the input of the head."""
        return self(x, return_features=True)  # type: ignore[return-value]

    def extra_repr(self) -> str:
        return (
            f"arch={self.arch!r}, num_classes={self.num_classes}, "
            f"in_channels={self.in_channels}, feature_dim={self.feature_dim}"
        )
