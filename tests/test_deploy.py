"""Export (ONNX / TorchScript / int8) and predict: round trips against the PyTorch model."""

from __future__ import annotations

import csv
import json
import os
from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image

from geodistill.core.errors import GeodistillError
from geodistill.deploy import describe_export, export, load_runner, predict
from geodistill.deploy.runtime import TORCHSCRIPT_META
from geodistill.models import build_model
from geodistill.models.checkpoint import save_checkpoint

onnx = pytest.importorskip("onnx")
ort = pytest.importorskip("onnxruntime")
tifffile = pytest.importorskip("tifffile")

CLASSES = ["forest", "river", "urban", "farm"]
MEAN, STD = [0.40, 0.45, 0.50], [0.20, 0.25, 0.30]


def _make_ckpt(path: Path, arch: str, in_channels: int = 3, size: int = 32) -> tuple[torch.nn.Module, Path]:
    """A random model whose BatchNorm statistics were set on random data, so logits are O(1)."""
    torch.manual_seed(0)
    model = build_model(arch, len(CLASSES), in_channels=in_channels)
    model.train()
    with torch.no_grad():
        for m in model.modules():
            if isinstance(m, torch.nn.BatchNorm2d):
                m.momentum = None  # cumulative average over the calls below
        for _ in range(2):
            model(torch.randn(16, in_channels, size, size))
        model.head.weight.mul_(5)  # spread the logits so probabilities differ visibly
    model.eval()
    mean, std = (MEAN, STD) if in_channels == 3 else ([0.3] * in_channels, [0.2] * in_channels)
    save_checkpoint(
        path,
        model,
        arch=arch,
        num_classes=len(CLASSES),
        in_channels=in_channels,
        classes=CLASSES,
        size=size,
        normalizer={"mean": mean, "std": std},
    )
    return model, path


def _reference(model: torch.nn.Module, x_uint8: np.ndarray) -> np.ndarray:
    """model((x/255 - mean)/std), computed by hand outside geodistill's wrapper."""
    x = torch.from_numpy(x_uint8).float() / 255.0
    mean = torch.tensor(MEAN).view(1, 3, 1, 1)
    std = torch.tensor(STD).view(1, 3, 1, 1)
    with torch.no_grad():
        return model((x - mean) / std).numpy()


@pytest.mark.parametrize("arch", ["cnn3", "mobilenet_v2"])
@pytest.mark.parametrize("fmt", ["onnx", "torchscript"])
def test_export_round_trip_with_preprocessing_and_dynamic_batch(tmp_path, arch, fmt):
    model, ckpt = _make_ckpt(tmp_path / f"{arch}.ckpt", arch)
    result = export(ckpt, fmt)
    path = Path(result["path"])
    assert path.suffix == (".onnx" if fmt == "onnx" else ".pt") and path.is_file()
    assert result["rel_diff"] <= 1e-3 and result["classes"] == CLASSES

    rng = np.random.default_rng(1)
    if fmt == "onnx":
        session = ort.InferenceSession(str(path), providers=["CPUExecutionProvider"])
        assert session.get_inputs()[0].type == "tensor(uint8)"
        run = lambda x: session.run(None, {"image": x})[0]  # noqa: E731
        props = {p.key: p.value for p in onnx.load(str(path)).metadata_props}
        assert json.loads(props["classes"]) == CLASSES
        assert props["size"] == "32" and props["in_channels"] == "3"
        assert json.loads(props["geodistill"])["normalizer"] == {"mean": MEAN, "std": STD}
    else:
        extra = {TORCHSCRIPT_META: ""}
        with pytest.warns(FutureWarning):  # torch.jit is deprecated but loads
            module = torch.jit.load(str(path), _extra_files=extra)
        run = lambda x: module(torch.from_numpy(x)).detach().numpy()  # noqa: E731
        meta = json.loads(extra[TORCHSCRIPT_META])
        assert meta["classes"] == CLASSES and meta["size"] == 32 and meta["input_name"] == "image"
    for batch in (1, 5):
        x = rng.integers(0, 256, (batch, 3, 32, 32), dtype=np.uint8)
        got, want = run(x), _reference(model, x)
        assert got.shape == (batch, len(CLASSES))
        assert np.abs(want).max() > 0.5  # the comparison is not between two near-zero tensors
        # fused BN/conv kernels reorder float sums: compare relative to the logit scale
        assert np.abs(got - want).max() <= 1e-4 * max(1.0, np.abs(want).max())
        assert (got.argmax(1) == want.argmax(1)).all()


def test_export_refuses_bad_requests_and_leaves_nothing(tmp_path):
    _, ckpt = _make_ckpt(tmp_path / "m.ckpt", "cnn3")
    with pytest.raises(GeodistillError, match="int8"):
        export(ckpt, "torchscript", int8=True)
    with pytest.raises(GeodistillError, match=".onnx"):
        export(ckpt, "onnx", out=tmp_path / "m.pt")
    with pytest.raises(GeodistillError, match="format"):
        export(ckpt, "tflite")
    # a tolerance no export can meet: the check fails and no file (not even a temp) is left
    with pytest.raises(GeodistillError, match="differs from PyTorch"):
        export(ckpt, "onnx", tolerance=-1.0)
    assert sorted(p.name for p in tmp_path.iterdir()) == ["m.ckpt"]


def _stripes(n_per_class: int, size: int, seed: int) -> tuple[np.ndarray, np.ndarray]:
    """An easy 3-class texture set: horizontal stripes, vertical stripes, noise (random colours)."""
    rng = np.random.default_rng(seed)
    images, labels = [], []
    yy, xx = np.mgrid[0:size, 0:size]
    for label in range(3):
        for _ in range(n_per_class):
            period = rng.integers(3, 6)
            phase = rng.integers(0, period)
            if label == 0:
                pattern = ((yy + phase) // 2 % period == 0).astype(np.float32)
            elif label == 1:
                pattern = ((xx + phase) // 2 % period == 0).astype(np.float32)
            else:
                pattern = rng.random((size, size)).astype(np.float32)
            colour = rng.uniform(0.3, 1.0, 3)[:, None, None]
            img = 255 * colour * (0.25 + 0.75 * pattern) + rng.normal(0, 12, (3, size, size))
            images.append(np.clip(img, 0, 255).astype(np.uint8))
            labels.append(label)
    return np.stack(images), np.array(labels, dtype=np.int64)


class _ImageSet:
    """The two fields of an ImageSet that export reads."""

    def __init__(self, images: np.ndarray, labels: np.ndarray) -> None:
        self.images, self.labels = images, labels


def test_int8_runs_and_keeps_accuracy(tmp_path):
    from geodistill.data import make_split

    size = 16
    images, labels = _stripes(60, size, seed=0)
    split = make_split(labels, seed=0)
    torch.manual_seed(0)
    model = build_model("cnn3", 3)
    opt = torch.optim.Adam(model.parameters(), lr=1e-2)
    x_all = torch.from_numpy(images).float() / 255.0
    y_all = torch.from_numpy(labels)
    for _ in range(8):
        model.train()
        for i in range(0, len(split.train), 32):
            idx = torch.from_numpy(split.train[i : i + 32])
            loss = torch.nn.functional.cross_entropy(model(x_all[idx]), y_all[idx])
            opt.zero_grad()
            loss.backward()
            opt.step()
    model.eval()
    ckpt = save_checkpoint(
        tmp_path / "cnn3.ckpt",
        model,
        arch="cnn3",
        num_classes=3,
        in_channels=3,
        classes=["h", "v", "noise"],
        size=size,
        normalizer={"mean": [0.0] * 3, "std": [1.0] * 3},
    )
    result = export(ckpt, "onnx", int8=True, data=_ImageSet(images, labels))
    out = Path(result["path"])
    assert out.name == "cnn3.int8.onnx" and out.is_file()
    assert result["calibration"] == f"{len(split.train)} training-split images"
    assert result["test_images"] == len(split.test)
    assert result["acc_fp32"] >= 0.8  # the model learned something, so the comparison means something
    assert abs(result["acc_int8"] - result["acc_fp32"]) <= 0.05
    assert result["int8_top1_agreement"] >= 0.75  # on the 8 check images, int8 vs PyTorch
    runner = load_runner(out)
    # agreement and accuracy on the same test images, and the output names them and their count
    test = np.sort(split.test)
    q_pred = runner(images[test]).argmax(1)
    with torch.inference_mode():
        t_pred = model(torch.from_numpy(images[test]).float() / 255.0).argmax(1).numpy()
    assert result["test_split"] == "test" and result["acc_int8"] == float((q_pred == labels[test]).mean())
    assert result["int8_test_agreement"] == float((q_pred == t_pred).mean())
    text = describe_export(result).splitlines()
    assert text[1].startswith("fp32 check on 8 test-split images: ")
    assert "on the same 8 test-split images: max |int8 - torch|" in text[2]
    assert text[3].startswith(
        f"on the test split ({len(split.test)} images): int8 top-1 agreement with fp32 "
        f"{100 * result['int8_test_agreement']:.2f}%, accuracy fp32 {100 * result['acc_fp32']:.2f}% -> int8 "
    )
    assert runner.meta["quantization"].startswith("int8") and runner.classes == ["h", "v", "noise"]
    ops = {n.op_type for n in onnx.load(str(out)).graph.node}
    assert "QuantizeLinear" in ops and "DequantizeLinear" in ops
    logits = runner(images[split.test[:2]])
    assert logits.shape == (2, 3) and np.isfinite(logits).all()


def test_int8_uses_the_checkpoints_training_data_or_warns(tmp_path):
    from geodistill.core.errors import GeodistillWarning

    model = build_model("cnn3", 10)
    common = dict(
        arch="cnn3",
        num_classes=10,
        in_channels=3,
        classes=[str(i) for i in range(10)],
        size=16,
        normalizer={"mean": [0.0] * 3, "std": [1.0] * 3},
    )
    cfg = {"data": {"dataset": "synthetic", "size": 16, "fractions": [0.6, 0.2, 0.2], "split_seed": 0}}
    ckpt = save_checkpoint(tmp_path / "syn.ckpt", model, config=cfg, **common)
    result = export(ckpt, "onnx", int8=True, calib_count=64)
    assert result["calibration"] == "64 training-split images" and result["check_images"] == "test split"
    assert result["test_images"] == 400  # 20 % of synthetic's 10 x 200 images
    assert 0.0 <= result["acc_int8"] <= 1.0 and 0.0 <= result["acc_fp32"] <= 1.0

    cfg = {"data": {"dataset": "folder", "root": str(tmp_path / "gone")}}
    ckpt = save_checkpoint(tmp_path / "gone.ckpt", model, config=cfg, **common)
    with pytest.warns(GeodistillWarning) as record:
        result = export(ckpt, "onnx", int8=True)
    messages = [str(w.message) for w in record]
    assert any("could not be loaded" in m and "gone" in m for m in messages)
    assert any("calibrated on random pixels" in m for m in messages)
    assert result["calibration"] == "random pixels" and result["acc_int8"] is None


def _write_images(folder: Path, rgb: np.ndarray) -> None:
    """good.png, alpha.png (same pixels + alpha), sub/gray.png, sub/deep.tif (16-bit copy of
    good), broken.jpg (not a JPEG), notes.txt (not an image)."""
    (folder / "sub").mkdir(parents=True)
    Image.fromarray(rgb).save(folder / "good.png")
    alpha = np.dstack([rgb, np.full(rgb.shape[:2], 77, np.uint8)])
    Image.fromarray(alpha, mode="RGBA").save(folder / "alpha.png")
    Image.fromarray(rgb[:, :, 1]).save(folder / "sub" / "gray.png")
    tifffile.imwrite(folder / "sub" / "deep.tif", rgb.astype(np.uint16) * 257, photometric="rgb")
    (folder / "broken.jpg").write_bytes(b"\xff\xd8\xff\xe0 this is not really a jpeg")
    (folder / "notes.txt").write_text("not an image")


def test_predict_folder_with_odd_files_csv_and_json(tmp_path):
    model, ckpt = _make_ckpt(tmp_path / "m.ckpt", "cnn3")
    rgb = np.random.default_rng(3).integers(0, 256, (32, 32, 3), dtype=np.uint8)
    folder = tmp_path / "imgs"
    _write_images(folder, rgb)

    rows = predict(ckpt, [folder], top_k=3, batch_size=2, out=tmp_path / "pred.csv")
    by_name = {Path(r["path"]).name: r for r in rows}
    assert sorted(by_name) == ["alpha.png", "broken.jpg", "deep.tif", "good.png", "gray.png"]
    assert by_name["broken.jpg"]["status"] == "error" and "unreadable" in by_name["broken.jpg"]["reason"]
    assert by_name["broken.jpg"]["predictions"] == []
    for name in ("good.png", "alpha.png", "gray.png", "deep.tif"):
        assert by_name[name]["status"] == "ok", by_name[name]
        probs = [p["probability"] for p in by_name[name]["predictions"]]
        assert len(probs) == 3 and probs == sorted(probs, reverse=True) and sum(probs) <= 1 + 1e-6
    # the probabilities are the softmax of model(normalised image) at the model's size
    want = torch.softmax(torch.from_numpy(_reference(model, rgb.transpose(2, 0, 1)[None])), 1)[0]
    good = by_name["good.png"]["predictions"]
    assert good[0]["class"] == CLASSES[int(want.argmax())]
    assert good[0]["probability"] == pytest.approx(float(want.max()), abs=1e-5)
    # alpha dropped and 16-bit scaled back to 8 bits: same prediction as the plain PNG
    for name in ("alpha.png", "deep.tif"):
        for a, b in zip(by_name[name]["predictions"], good):
            assert a["class"] == b["class"] and a["probability"] == pytest.approx(b["probability"], abs=1e-6)
    assert "alpha" in by_name["alpha.png"]["notes"] and "16-bit" in by_name["deep.tif"]["notes"]
    assert "grayscale" in by_name["gray.png"]["notes"]

    with open(tmp_path / "pred.csv", newline="") as f:
        table = list(csv.DictReader(f))
    assert [r["path"] for r in table] == [r["path"] for r in rows]
    assert list(table[0]) == [
        "path",
        "status",
        "reason",
        "notes",
        "class_1",
        "prob_1",
        "class_2",
        "prob_2",
        "class_3",
        "prob_3",
    ]
    row = next(r for r in table if r["path"].endswith("good.png"))
    assert row["class_1"] == good[0]["class"] and float(row["prob_1"]) == pytest.approx(
        good[0]["probability"], abs=1e-6
    )
    assert next(r for r in table if r["path"].endswith("broken.jpg"))["class_1"] == ""

    rows_json = predict(ckpt, folder, top_k=10, out=tmp_path / "pred.json")
    assert json.loads((tmp_path / "pred.json").read_text()) == rows_json
    assert all(len(r["predictions"]) in (0, len(CLASSES)) for r in rows_json)  # top_k clamped to 4


def test_predict_with_exported_models_matches_checkpoint(tmp_path):
    _, ckpt = _make_ckpt(tmp_path / "m.ckpt", "cnn3")
    folder = tmp_path / "imgs"
    folder.mkdir()
    rng = np.random.default_rng(5)
    for i in range(3):  # other sizes: resized to the model's 32 px
        Image.fromarray(rng.integers(0, 256, (40 + 8 * i, 48, 3), dtype=np.uint8)).save(folder / f"{i}.jpg")
    base = predict(ckpt, folder)
    for fmt in ("onnx", "torchscript"):
        path = export(ckpt, fmt)["path"]
        rows = predict(path, folder)
        for a, b in zip(rows, base):
            assert a["path"] == b["path"] and a["status"] == "ok"
            assert [p["class"] for p in a["predictions"]] == [p["class"] for p in b["predictions"]]
            np.testing.assert_allclose(
                [p["probability"] for p in a["predictions"]], [p["probability"] for p in b["predictions"]], atol=1e-5
            )


def test_predict_channel_mismatch_is_a_row_and_13_band_tiff_works(tmp_path):
    _, ckpt = _make_ckpt(tmp_path / "ms.ckpt", "cnn3", in_channels=13, size=16)
    folder = tmp_path / "imgs"
    folder.mkdir()
    Image.fromarray(np.zeros((16, 16, 3), np.uint8)).save(folder / "rgb.png")
    bands = np.random.default_rng(0).integers(0, 4000, (16, 16, 13), dtype=np.uint16)
    tifffile.imwrite(folder / "s2.tif", bands, planarconfig="contig")
    rows = {Path(r["path"]).name: r for r in predict(ckpt, folder)}
    assert rows["s2.tif"]["status"] == "ok"
    assert rows["rgb.png"]["status"] == "error"
    assert rows["rgb.png"]["reason"] == "wrong channel count: the image has 3 bands but the model takes 13 channels"


def test_predict_bad_arguments(tmp_path):
    _, ckpt = _make_ckpt(tmp_path / "m.ckpt", "cnn3")
    (tmp_path / "a.png").write_bytes(b"")
    with pytest.raises(GeodistillError, match="csv or .json"):
        predict(ckpt, tmp_path / "a.png", out=tmp_path / "p.xlsx")
    with pytest.raises(GeodistillError, match="does not exist"):
        predict(ckpt, tmp_path / "missing")
    with pytest.raises(GeodistillError, match="unknown suffix"):
        predict(tmp_path / "model.h5", tmp_path / "a.png")
    empty = tmp_path / "empty"
    empty.mkdir()
    (empty / "readme.txt").write_text("x")
    with pytest.raises(GeodistillError, match="No image files"):
        predict(ckpt, empty)
    # an explicitly named non-image file is reported, not silently dropped
    rows = predict(ckpt, [empty / "readme.txt", tmp_path / "a.png"])
    assert [r["status"] for r in rows] == ["error", "error"]
    assert "not an image" in rows[0]["reason"] and "unreadable" in rows[1]["reason"]
    assert not any(p.name.endswith(".tmp") for p in tmp_path.iterdir())
    assert os.listdir(empty) == ["readme.txt"]


def test_baked_preprocessing_equals_the_training_normalizer():
    from geodistill.data.transforms import Normalizer
    from geodistill.deploy import with_preprocessing

    model = build_model("cnn3", 4).eval()
    d = {"mean": MEAN, "std": STD}
    x = torch.randint(0, 256, (3, 3, 16, 16), dtype=torch.uint8)
    with torch.no_grad():
        want = model(Normalizer.from_dict(d)(x))
        got = with_preprocessing(model, d, 3)(x)
    torch.testing.assert_close(got, want, rtol=1e-5, atol=1e-5)
