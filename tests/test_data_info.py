"""data_info / format_info / preview (the functions behind `geodistill data info|preview`)."""

from __future__ import annotations

import re

import numpy as np
import pytest
from PIL import Image

import geodistill.data as gd
from data_helpers import make_folder
from geodistill.core.errors import GeodistillError


def test_public_api_is_exported():
    for name in (
        "load_dataset",
        "ImageSet",
        "make_split",
        "Split",
        "split_from_files",
        "get_spec",
        "list_datasets",
        "data_info",
        "format_info",
        "preview",
        "transforms",
    ):
        assert hasattr(gd, name), name
    assert gd.transforms.NUM_VIEWS == 8


def test_data_info_on_folder(tmp_path):
    root = make_folder(tmp_path / "d", {"farm": 5, "forest": 10})
    info = gd.data_info("folder", root, size=8, cache_dir=tmp_path / "c")
    assert info["classes"] == ["farm", "forest"] and info["num_images"] == 15
    assert info["counts"] == {"farm": 5, "forest": 10}
    assert info["split_counts"]["farm"] == {"train": 3, "val": 1, "test": 1}
    assert info["split_counts"]["forest"] == {"train": 6, "val": 2, "test": 2}
    assert info["split_totals"] == {"train": 9, "val": 3, "test": 3}
    assert info["size"] == 8 and info["channels"] == 3 and info["native_size"] is None
    assert info["cache_path"].startswith(str(tmp_path / "c"))
    text = gd.format_info(info)
    assert "farm" in text and "forest" in text and "15 in 2 classes" in text
    assert "8 x 8 px, 3 channels" in text and "\x1b[" not in text
    total = [line for line in text.splitlines() if line.startswith("total")][0]
    assert re.findall(r"\d+", total) == ["15", "9", "3", "3"]
    assert info["native_sizes"] == {"8 x 8": 15} and "(native 8 x 8 px)" in text  # one size, said as such


def test_data_info_shows_a_protocols_split_and_names_its_seed(tmp_path):
    root = make_folder(tmp_path / "d", {"farm": 20, "forest": 40})
    infos = [gd.data_info("folder", root, size=8, cache_dir=tmp_path / "c", protocol="aid-20", seed=k) for k in (0, 1)]
    assert infos[0]["split_counts"]["farm"] == {"train": 3, "val": 1, "test": 16}  # 20% trains, a fifth of it validates
    assert infos[0]["split_counts"]["forest"] == {"train": 6, "val": 2, "test": 32}
    assert "protocol aid-20: 0.2 of each class trains (0.2 of it validates), the rest tests, seed 1" in gd.format_info(
        infos[1]
    )


def test_data_info_names_the_unreadable_images(tmp_path):
    root = make_folder(tmp_path / "d", {"farm": 5, "forest": 5}, size=12)
    (root / "farm" / "broken.png").write_bytes(b"not a png")
    with pytest.warns(UserWarning):
        info = gd.data_info("folder", root, size=8, cache_dir=tmp_path / "c")
    text = gd.format_info(info)
    assert "1 unreadable image(s): farm/broken.png" in text and "(native 12 x 12 px)" in text


def test_data_info_synthetic_and_bad_root(tmp_path):
    info = gd.data_info("synthetic", size=16, n_per_class=5)
    assert info["num_classes"] == 10 and info["num_images"] == 50 and info["cache_path"] is None
    assert "none (generated in memory)" in gd.format_info(info)
    with pytest.raises(GeodistillError, match="does not exist"):
        gd.data_info("folder", tmp_path / "missing")


def test_preview_writes_a_grid(tmp_path):
    root = make_folder(tmp_path / "d", {"farm": 3, "forest_with_a_long_name": 5})
    out = gd.preview("folder", root, tmp_path / "grid.png", per_class=4, size=8, cache_dir=tmp_path / "c")
    assert out == tmp_path / "grid.png"
    with Image.open(out) as im:
        w, h = im.size
        arr = np.asarray(im.convert("RGB"))
    assert h == 2 + 2 * (8 + 2)  # two rows of 8 px cells with 2 px padding
    assert w > 4 * 10  # four samples plus a label column
    assert (arr[:, :20] < 128).any()  # some dark text in the label column
    assert not [p for p in tmp_path.iterdir() if p.name.endswith(".tmp")]


def test_preview_bad_input(tmp_path):
    with pytest.raises(GeodistillError, match="Folder '.*nowhere' for the preview does not exist"):
        gd.preview("synthetic", None, tmp_path / "nowhere" / "p.png", per_class=1, size=8, n_per_class=2)
    with pytest.raises(GeodistillError, match="per_class=0 is invalid"):
        gd.preview("synthetic", None, tmp_path / "p.png", per_class=0)
