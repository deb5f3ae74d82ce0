"""Model zoo: builds, shapes, features hook, weights loading (safe), channel adaptation, cards."""

from __future__ import annotations

import os
import pickle
import urllib.error
import warnings

import pytest
import torch
from safetensors.torch import save_file
from torch import nn

from geodistill.core.errors import GeodistillError, GeodistillWarning
from geodistill.models import Classifier, adapt_input_conv, build_model, first_layer_weight, list_models, model_card

try:
    import timm  # noqa: F401

    HAS_TIMM = True
except ImportError:
    HAS_TIMM = False

FEATURE_DIMS = {"cnn4": 256, "cnn3": 64, "mobilenet_v2": 1280, "vgg16": 4096, "resnet18": 512, "timm:resnet10t": 512}
MODELS = [
    "cnn4",
    "cnn3",
    "mobilenet_v2",
    "vgg16",
    "resnet18",
    pytest.param("timm:resnet10t", marks=pytest.mark.skipif(not HAS_TIMM, reason="timm")),
]


@pytest.fixture(autouse=True)
def _seed():
    torch.manual_seed(0)


@pytest.mark.parametrize("channels", [3, 13])
@pytest.mark.parametrize("name", MODELS)
def test_builds_and_runs_at_any_size(name, channels):
    model = build_model(name, num_classes=5, in_channels=channels).eval()
    assert isinstance(model, Classifier)
    assert (model.arch, model.num_classes, model.in_channels) == (name, 5, channels)
    assert model.feature_dim == FEATURE_DIMS[name]
    assert first_layer_weight(model).shape[1] == channels
    sizes = [32, 64, 224] if (name != "vgg16" or channels == 3) else [32, 64]
    with torch.no_grad():
        for size in sizes:
            logits, feats = model.forward_features(torch.randn(1, channels, size, size))
            assert logits.shape == (1, 5) and feats.shape == (1, model.feature_dim)
            assert torch.isfinite(logits).all()
            torch.testing.assert_close(model.head(feats), logits)  # feats are what the head eats
            torch.testing.assert_close(
                model(torch.zeros(1, channels, size, size)),
                model.forward_features(torch.zeros(1, channels, size, size))[0],
            )


def test_state_dict_keys_are_under_net():
    model = build_model("cnn3", 4)
    assert all(k.startswith("net.") for k in model.state_dict())


def test_teacher_clearly_stronger_than_student():
    t, s = model_card(build_model("cnn4", 10), 32), model_card(build_model("cnn3", 10), 32)
    assert t["params"] > 40 * s["params"]
    assert t["flops"] > 10 * s["flops"]


def test_features_in_training_mode_carry_gradients():
    model = build_model("mobilenet_v2", 3).train()
    logits, feats = model.forward_features(torch.randn(2, 3, 32, 32))
    torch.testing.assert_close(model.head(feats), logits)
    feats.sum().backward()
    assert first_layer_weight(model).grad is not None
    model(torch.randn(2, 3, 32, 32))  # plain forward keeps nothing alive
    assert model._store == {}


def test_torch_compile_and_channels_last():
    model = build_model("cnn3", 4).eval()
    x = torch.randn(2, 3, 32, 32)
    ref_logits, ref_feats = model.forward_features(x)
    compiled = torch.compile(model.forward_features, backend="aot_eager")
    logits, feats = compiled(x)
    torch.testing.assert_close(feats, ref_feats)
    torch.testing.assert_close(logits, ref_logits)
    model = model.to(memory_format=torch.channels_last)
    with torch.no_grad():
        logits, feats = model.forward_features(x.to(memory_format=torch.channels_last))
    torch.testing.assert_close(feats, ref_feats, rtol=1e-4, atol=1e-5)


def test_ddp_single_process(tmp_path):
    import torch.distributed as dist

    dist.init_process_group("gloo", init_method=f"file://{tmp_path / 'pg'}", rank=0, world_size=1)
    try:
        model = build_model("cnn3", 4)
        ddp = nn.parallel.DistributedDataParallel(model)
        logits, feats = ddp(torch.randn(2, 3, 32, 32), return_features=True)
        assert feats.shape == (2, 64)
        (logits.sum() + feats.sum()).backward()
        assert first_layer_weight(ddp).grad is not None
        assert first_layer_weight(ddp) is first_layer_weight(model)
    finally:
        dist.destroy_process_group()


def test_first_layer_weight_is_the_input_conv():
    model = build_model("mobilenet_v2", 3)
    assert first_layer_weight(model) is model.net.features[0][0].weight
    cnn = build_model("cnn3", 3, in_channels=13)
    assert first_layer_weight(cnn).shape == (16, 13, 3, 3)
    with pytest.raises(GeodistillError, match="no nn.Conv2d"):
        first_layer_weight(nn.Linear(2, 2))


def test_model_card_hand_counted():
    model = build_model("cnn3", 10, in_channels=13)
    card = model_card(model, 32)
    convs = 13 * 16 * 9 + 16 * 32 * 9 + 32 * 64 * 9
    params = convs + 2 * (16 + 32 + 64) + 64 * 10 + 10
    assert card["params"] == card["trainable_params"] == params
    # FLOPs = 2*MACs: conv_l at resolution 32/2^l, plus the head
    flops = 2 * (13 * 16 * 9 * 32 * 32 + 16 * 32 * 9 * 16 * 16 + 32 * 64 * 9 * 8 * 8 + 64 * 10)
    assert card["flops"] == flops
    assert model_card(model, 64)["flops"] == 4 * (flops - 2 * 640) + 2 * 640
    buffers = 2 * (16 + 32 + 64) * 4 + 3 * 8  # running mean/var fp32 + num_batches_tracked int64
    assert card["size_bytes"] == params * 4 + buffers
    for p in model.parameters():
        p.requires_grad_(False)
        break
    assert model_card(model, 32)["trainable_params"] == params - 13 * 16 * 9
    assert model.training  # card did not leave the model in eval mode


def test_model_card_file_size(tmp_path):
    model = build_model("cnn3", 10)
    path = tmp_path / "m.pt"
    torch.save(model.state_dict(), path)
    card = model_card(model, 32, path)
    assert card["size_bytes"] == path.stat().st_size
    assert abs(card["size_bytes"] - model_card(model, 32)["size_bytes"]) < 20_000


# ----- weights ------------------------------------------------------------------------------


def _same_weights(a: nn.Module, b: nn.Module, skip: str = "§") -> bool:
    sa, sb = a.state_dict(), b.state_dict()
    return all(torch.equal(sa[k], sb[k]) for k in sa if skip not in k)


@pytest.mark.parametrize("name", ["cnn3", "mobilenet_v2"])
@pytest.mark.parametrize("layout", ["classifier.pt", "nested.pth", "net.safetensors", "module.pt"])
def test_weights_path_round_trip(tmp_path, name, layout):
    src = build_model(name, 4)
    with torch.no_grad():  # make buffers non-default too
        for buf in src.buffers():
            if buf.is_floating_point():
                buf.uniform_(0.5, 1.5)
    path = tmp_path / layout
    if layout == "classifier.pt":
        torch.save(src.state_dict(), path)
    elif layout == "nested.pth":  # our own checkpoints
        torch.save({"arch": name, "state_dict": src.state_dict(), "metrics": {"acc": 0.5}}, path)
    elif layout == "net.safetensors":
        save_file({k: v.contiguous() for k, v in src.net.state_dict().items()}, str(path))
    else:
        torch.save({f"module.{k}": v for k, v in src.net.state_dict().items()}, path)
    dst = build_model(name, 4, weights=path)
    assert _same_weights(src, dst)
    x = torch.randn(1, 3, 32, 32)
    torch.testing.assert_close(src.eval()(x), dst.eval()(x))


def test_training_checkpoint_with_teacher_loads_the_student(tmp_path):
    student, teacher = build_model("cnn3", 4), build_model("cnn4", 4)
    state = {f"student.{k}": v for k, v in student.state_dict().items()}
    state |= {f"teacher.{k}": v for k, v in teacher.state_dict().items()}
    path = tmp_path / "run.ckpt"
    torch.save({"state_dict": state, "epoch": 3}, path)
    with pytest.warns(GeodistillWarning, match="under 'student.net.' and ignored"):
        dst = build_model("cnn3", 4, weights=path)
    assert _same_weights(student, dst)


def test_head_of_other_size_is_skipped_with_a_note(tmp_path):
    src = build_model("cnn3", 10)
    path = tmp_path / "w.pt"
    torch.save(src.state_dict(), path)
    with pytest.warns(GeodistillWarning, match="head"):
        dst = build_model("cnn3", 4, weights=path)
    assert _same_weights(src, dst, skip="fc.")
    assert dst.head.out_features == 4


def test_wrong_architecture_is_reported(tmp_path):
    path = tmp_path / "w.pt"
    torch.save(build_model("cnn3", 4).state_dict(), path)
    with warnings.catch_warnings():
        warnings.simplefilter("error")  # no "head skipped" note for a load that fails
        with pytest.raises(GeodistillError, match=r"does not fit model cnn4.*missing"):
            build_model("cnn4", 4, weights=path)
    with pytest.raises(GeodistillError, match="does not fit model resnet18"):
        build_model("resnet18", 4, weights=path)
    torch.save({"foo.weight": torch.zeros(2)}, path)
    with pytest.raises(GeodistillError, match="no tensor names"):
        build_model("cnn3", 4, weights=path)
    torch.save({"epoch": 3}, path)
    with pytest.raises(GeodistillError, match="holds no tensors"):
        build_model("cnn3", 4, weights=path)
    with pytest.raises(GeodistillError, match="does not exist"):
        build_model("cnn3", 4, weights=tmp_path / "missing.pt")
    bad = tmp_path / "bad.safetensors"
    bad.write_bytes(b"not a safetensors file")
    with pytest.raises(GeodistillError, match="safetensors"):
        build_model("cnn3", 4, weights=bad)


class _Payload:
    def __init__(self, marker: str) -> None:
        self.marker = marker

    def __reduce__(self):
        return (os.system, (f"touch {self.marker}",))


@pytest.mark.filterwarnings("ignore:Detected pickle protocol")
@pytest.mark.parametrize("kind", ["torch", "pickle"])
def test_pickle_with_code_payload_is_refused(tmp_path, kind):
    marker = tmp_path / "pwned"
    path = tmp_path / "evil.pt"
    state = dict(build_model("cnn3", 4).state_dict())
    if kind == "torch":
        torch.save({"state_dict": state, "extra": _Payload(str(marker))}, path)
    else:
        with open(path, "wb") as fh:
            pickle.dump(_Payload(str(marker)), fh)
    with pytest.raises(GeodistillError, match="refused"):
        build_model("cnn3", 4, weights=path)
    assert not marker.exists()


def test_in_channels_adaptation_rule(tmp_path):
    src = build_model("resnet18", 5)
    path = tmp_path / "rgb.pt"
    torch.save(src.net.state_dict(), path)
    with pytest.warns(GeodistillWarning, match="13 bands"):
        dst = build_model("resnet18", 5, in_channels=13, weights=path)
    w3, w13 = first_layer_weight(src), first_layer_weight(dst)
    assert w13.shape == (64, 13, 7, 7)
    want = (w3.mean(dim=1, keepdim=True) * 3 / 13).expand(-1, 13, -1, -1)
    torch.testing.assert_close(w13, want)
    # a constant image gives the RGB response: sum over bands is preserved
    torch.testing.assert_close(w13.sum(1), w3.sum(1))
    assert _same_weights(src, dst, skip="conv1.")
    torch.testing.assert_close(adapt_input_conv(w3, 1)[:, 0], w3.sum(1))  # grey = sum of RGB


def _fake_imagenet(monkeypatch, name: str) -> nn.Module:
    """Serve a random 1000-class state dict in place of the torchvision download."""
    import torchvision

    ref = torchvision.models.get_model(name, weights=None)
    monkeypatch.setattr("torchvision.models._api.load_state_dict_from_url", lambda *a, **k: ref.state_dict())
    return ref


def test_imagenet_path_replaces_head_and_adapts(monkeypatch):
    ref = _fake_imagenet(monkeypatch, "resnet18")
    model = build_model("resnet18", 7, in_channels=4, weights="imagenet")
    assert model.head.out_features == 7
    torch.testing.assert_close(
        first_layer_weight(model), (ref.conv1.weight.mean(1, keepdim=True) * 3 / 4).expand(-1, 4, -1, -1)
    )
    torch.testing.assert_close(model.net.layer1[0].conv1.weight, ref.layer1[0].conv1.weight)


def test_imagenet_without_internet_is_a_clear_error(monkeypatch, tmp_path):
    def offline(*args, **kwargs):
        raise urllib.error.URLError("no network")

    monkeypatch.setattr(torch.hub, "download_url_to_file", offline)
    old = torch.hub.get_dir()
    torch.hub.set_dir(str(tmp_path / "hub"))
    try:
        with pytest.raises(GeodistillError) as info:
            build_model("mobilenet_v2", 10, weights="imagenet")
    finally:
        torch.hub.set_dir(old)
    msg = str(info.value)
    assert "could not be downloaded" in msg and str(tmp_path / "hub") in msg
    assert "weights=PATH" in msg


@pytest.mark.skipif(not HAS_TIMM, reason="timm not installed")
def test_timm_imagenet_without_internet(monkeypatch):
    def offline(*args, **kwargs):
        raise OSError("no network")

    monkeypatch.setattr("timm.models._builder.load_pretrained", offline)
    with pytest.raises(GeodistillError, match="could not be downloaded.*weights=PATH"):
        build_model("timm:resnet10t", 3, weights="imagenet")


def test_timm_missing_gives_install_hint(monkeypatch):
    import sys

    monkeypatch.setitem(sys.modules, "timm", None)
    with pytest.raises(GeodistillError, match=r"pip install 'geodistill\[timm\]'"):
        build_model("timm:resnet10t", 3)


def test_name_and_argument_errors():
    with pytest.raises(GeodistillError, match="did you mean resnet18"):
        build_model("resnet181", 3)
    with pytest.raises(GeodistillError, match="no ImageNet weights"):
        build_model("cnn4", 3, weights="imagenet")
    with pytest.raises(GeodistillError, match="num_classes"):
        build_model("cnn3", 0)
    with pytest.raises(GeodistillError, match="in_channels"):
        build_model("cnn3", 3, in_channels=0)
    if HAS_TIMM:
        with pytest.raises(GeodistillError, match="timm has no model"):
            build_model("timm:not_a_model_xyz", 3)


def test_list_models():
    names = list_models()
    assert names[:4] == ["cnn4", "cnn3", "vgg16", "mobilenet_v2"]
    full = list_models(include_torchvision=True)
    assert "resnet18" in full and "cnn4" in full and len(full) > 50
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        for name in ("CNN3", "timm:resnet10t" if HAS_TIMM else "cnn3"):
            build_model(name, 2)


def test_width_multipliers_scale_a_family_and_rebuild_from_their_name(tmp_path):
    base, wide, narrow = (build_model(n, 5) for n in ("cnn3", "cnn3x2", "cnn3x0.5"))
    count = lambda m: sum(p.numel() for p in m.parameters())  # noqa: E731
    assert count(narrow) < count(base) < count(wide) and wide.arch == "cnn3x2"
    assert first_layer_weight(wide).shape[0] == 32 and first_layer_weight(narrow).shape[0] == 8
    m035 = build_model("mobilenet_v2x0.35", 5)
    assert count(m035) < count(build_model("mobilenet_v2", 5)) and m035.arch == "mobilenet_v2x0.35"
    assert m035(torch.rand(2, 3, 32, 32)).shape == (2, 5)
    with pytest.raises(GeodistillError, match="width multiplier of cnn3 must be in 0.25..8, not 9"):
        build_model("cnn3x9", 5)
    with pytest.raises(GeodistillError, match="only width 1.0 has"):
        build_model("mobilenet_v2x0.5", 5, weights="imagenet")
