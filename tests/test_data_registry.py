"""Dataset registry: names, class counts, layouts found on disk, where-to-get messages."""

from __future__ import annotations

import sys

import numpy as np
import pytest

from data_helpers import rgb, write_image
from geodistill.core.errors import GeodistillError
from geodistill.data import get_spec, list_datasets, load_dataset
from geodistill.data.registry import download

EXPECTED_CLASSES = {
    "ucmerced": 21, "eurosat": 10, "eurosat-ms": 10, "aid": 30, "nwpu-resisc45": 45,
    "rsscn7": 7, "patternnet": 38,
}  # fmt: skip


def test_every_name_resolves():
    names = list_datasets()
    assert set(names) == set(EXPECTED_CLASSES) | {"folder", "synthetic"}
    for name in names:
        spec = get_spec(name)
        assert spec.name == name
        assert spec.layout and spec.source


@pytest.mark.parametrize("name,n", sorted(EXPECTED_CLASSES.items()))
def test_class_counts(name, n):
    spec = get_spec(name)
    assert spec.num_classes == n
    assert len(set(spec.classes)) == n  # no duplicate class names
    assert spec.channels == (13 if name == "eurosat-ms" else 3)


def test_name_aliases_and_unknown():
    assert get_spec("NWPU_RESISC45").name == "nwpu-resisc45"
    assert get_spec("resisc45").name == "nwpu-resisc45"
    with pytest.raises(GeodistillError, match="Unknown dataset 'imagenet'.*ucmerced"):
        get_spec("imagenet")


def test_missing_dataset_says_where_to_get_it(tmp_path):
    missing = tmp_path / "nowhere"
    with pytest.raises(GeodistillError) as err:
        load_dataset("aid", missing, cache_dir=tmp_path / "c")
    msg = str(err.value)
    assert str(missing) in msg and "captain-whu" in msg and "<Class>" in msg
    assert msg.count(".") >= 1 and "\n" not in msg
    with pytest.raises(GeodistillError, match=r"geodistill data download ucmerced --root DIR.*torchgeo.*UCMerced"):
        load_dataset("ucmerced", missing, cache_dir=tmp_path / "c")
    with pytest.raises(GeodistillError, match="'patternnet' needs --root DIR, the folder that holds it") as err:
        load_dataset("patternnet", None)
    assert "load_dataset" not in str(err.value) and "not found" not in str(err.value)


def test_download_without_source_or_without_torchgeo(tmp_path, monkeypatch):
    with pytest.raises(GeodistillError, match="no stable download source.*captain-whu"):
        download("aid", tmp_path)
    monkeypatch.setitem(sys.modules, "torchgeo", None)
    monkeypatch.setitem(sys.modules, "torchgeo.datasets", None)
    with pytest.raises(GeodistillError, match=r"pip install 'geodistill\[torchgeo\]'"):
        download("ucmerced", tmp_path / "uc")


def test_named_layout_found_below_root(tmp_path):
    spec = get_spec("ucmerced")
    base = tmp_path / "UCMerced_LandUse" / "Images"
    for i, cls in enumerate(spec.classes):
        write_image(base / cls / f"{cls}00.tif", rgb(i))
    (tmp_path / "uc_merced-train.txt").write_text("agricultural00.tif\n")
    ds = load_dataset("ucmerced", tmp_path, size=8, cache_dir=tmp_path / "cache")
    assert ds.classes == list(spec.classes)
    assert len(ds) == 21
    assert ds.paths[0] == "agricultural/agricultural00.tif"
    np.testing.assert_array_equal(ds.labels, np.arange(21))
    np.testing.assert_array_equal(ds.images[5].transpose(1, 2, 0), rgb(5))  # TIFF read exactly


def test_rsscn7_folder_aliases(tmp_path):
    spec = get_spec("rsscn7")
    for i, folder in enumerate(spec.aliases):
        write_image(tmp_path / "RSSCN7" / folder / f"{folder}_{i}.jpg", rgb(i), "JPEG")
    ds = load_dataset("rsscn7", tmp_path, size=8, cache_dir=tmp_path / "cache")
    assert ds.classes == ["Field", "Forest", "Grass", "Industry", "Parking", "Resident", "RiverLake"]
    assert ds.paths[0] == "aGrass/aGrass_0.jpg"
    assert ds.classes[ds.labels[0]] == "Grass"


def test_partial_layout_names_missing_classes(tmp_path):
    for cls in ("Forest", "River"):
        write_image(tmp_path / cls / "a.png", rgb(0))
    with pytest.raises(GeodistillError, match=r"lacks 8 of the 10 class folders of 'eurosat' \(AnnualCrop"):
        load_dataset("eurosat", tmp_path, cache_dir=tmp_path / "c")


def test_load_with_download_calls_the_downloader_once(tmp_path, monkeypatch):
    import dataclasses

    from geodistill.data import registry

    calls = []

    def fake_torchvision_eurosat(root):
        calls.append(root)
        for i, cls in enumerate(get_spec("eurosat").classes):
            write_image(root / "eurosat" / "2750" / cls / f"{cls}_1.jpg", rgb(i), "JPEG")

    spec = dataclasses.replace(get_spec("eurosat"), downloader=fake_torchvision_eurosat)
    monkeypatch.setitem(registry._SPECS, "eurosat", spec)
    root = tmp_path / "data"
    ds = load_dataset("eurosat", root, size=8, cache_dir=tmp_path / "c", download=True)
    assert calls == [root] and len(ds) == 10 and ds.paths[0] == "AnnualCrop/AnnualCrop_1.jpg"
    load_dataset("eurosat", root, size=8, cache_dir=tmp_path / "c", download=True)
    assert calls == [root]  # present now: no second download
