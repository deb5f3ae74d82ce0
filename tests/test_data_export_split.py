"""One data path: a run trained with split files is exported, evaluated and described on exactly
the split it trained with, from images decoded once into one cache folder."""

from __future__ import annotations

from pathlib import Path

import pytest

from data_helpers import make_folder
from geodistill.config.run import build_config
from geodistill.data import data_info, make_split, prepare_data
from geodistill.deploy import export
from geodistill.deploy.profile import profile_models
from geodistill.engine.api import evaluate, train

pytest.importorskip("onnxruntime")

CLASSES = {"farm": 12, "forest": 12, "river": 12}
TEST_PER_CLASS = 5  # 15 test images; make_split's 20 % would give 2-3 per class


@pytest.fixture(scope="module")
def trained(tmp_path_factory) -> tuple[Path, dict, Path]:
    """A cnn3 trained for one epoch on a folder dataset whose split comes from split files."""
    tmp = tmp_path_factory.mktemp("export_split")
    root = make_folder(tmp / "data", CLASSES, size=16)
    lines: dict[str, list[str]] = {"train": [], "val": [], "test": []}
    for cls, n in CLASSES.items():
        names = [f"{cls}/{cls}_{i}.png" for i in range(n)]
        lines["test"] += names[:TEST_PER_CLASS]
        lines["val"] += names[TEST_PER_CLASS : TEST_PER_CLASS + 2]
        lines["train"] += names[TEST_PER_CLASS + 2 :]
    files = {}
    for name, entries in lines.items():
        files[name] = str(tmp / f"{name}.txt")
        Path(files[name]).write_text("\n".join(entries) + "\n")
    d = {
        "data": {
            "dataset": "folder",
            "root": str(root),
            "size": 16,
            "split_files": files,
            "cache_dir": str(tmp / "cache"),
            "normalization": "mean_std",
        },
        "train": {"model": "cnn3", "epochs": 1, "batch_size": 8, "progress": False},
        "out": str(tmp / "runs"),
    }
    cfg = build_config(d)
    train(cfg, tmp / "runs" / "m")
    return tmp / "runs" / "m" / "model.ckpt", d, tmp


def test_export_reports_accuracy_on_the_trained_test_split(trained):
    ckpt, d, tmp = trained
    cfg = build_config(d)
    n_test = len(CLASSES) * TEST_PER_CLASS
    data = prepare_data(cfg)
    assert len(data.test) == n_test
    # the split files define another split than the seeded default, so a re-derived split shows
    assert len(make_split(data.labels, cfg.data.fractions, cfg.data.split_seed).test) != n_test

    expected = evaluate(ckpt, cfg, "test")
    assert expected.n == n_test
    assert evaluate(ckpt, split="test").accuracy == expected.accuracy  # the checkpoint's own config

    fp32 = export(ckpt, "onnx", out=tmp / "m.onnx")
    assert fp32["check_images"] == "test split"
    assert fp32["test_images"] == n_test
    assert fp32["acc_fp32"] == expected.accuracy

    int8 = export(ckpt, "onnx", int8=True, out=tmp / "m.int8.onnx")
    n_train = len(CLASSES) * (12 - TEST_PER_CLASS - 2)
    assert int8["calibration"] == f"{n_train} training-split images"
    assert int8["test_images"] == n_test and int8["acc_fp32"] == expected.accuracy


def test_training_and_data_info_share_one_decoded_copy(trained):
    _, d, tmp = trained
    data = prepare_data(build_config(d))
    info = data_info("folder", d["data"]["root"], size=16, cache_dir=tmp / "cache")
    assert info["cache_path"] == str(data.dataset.cache_path)
    assert data.dataset.cache_path.parent == tmp / "cache" / "images"
    entries = [p for p in (tmp / "cache" / "images").iterdir() if p.name.startswith("folder-")]
    assert len(entries) == 1


def test_profile_calibrates_int8_on_the_checkpoints_training_split(trained):
    ckpt, _, _ = trained
    (row,) = profile_models([ckpt], size=16, batches=(1,), runtimes=("onnx-int8",), warmup=0, repeats=1)
    assert row["calibration"] == "training split"
