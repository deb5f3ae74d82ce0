"""ImageStore: decoding rules, the on-disk cache (hits, misses, atomic builds) and bad input."""

from __future__ import annotations

import os
import shutil
import warnings
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from data_helpers import make_folder, rgb, write_image
from geodistill.core.errors import GeodistillError, GeodistillWarning
from geodistill.data import imageio, load_dataset, store
from geodistill.data.store import default_cache_dir


def _entries(cache: Path) -> list[str]:
    return sorted(p.name for p in cache.iterdir() if p.is_dir() and p.name != "fingerprints") if cache.exists() else []


def _forbid_decoding(monkeypatch):
    def boom(*a, **k):
        raise AssertionError("decoded although the cache should have been used")

    monkeypatch.setattr(imageio, "read_image", boom)


def _count_decodes(monkeypatch) -> list[int]:
    calls = [0]
    real = imageio.read_image

    def counting(*a, **k):
        calls[0] += 1
        return real(*a, **k)

    monkeypatch.setattr(imageio, "read_image", counting)
    return calls


# ----------------------------------------------------------------------------- basics
def test_load_folder_exact_pixels_and_order(tmp_path):
    root = tmp_path / "data"
    # created in reverse order: listing order on disk must not matter
    for cls, seeds in (("water", (3, 2)), ("forest", (1, 0))):
        for s in seeds:
            write_image(root / cls / f"img{s}.png", rgb(s))
    ds = load_dataset("folder", root, size=8, cache_dir=tmp_path / "cache")
    assert ds.classes == ["forest", "water"]
    assert ds.paths == ["forest/img0.png", "forest/img1.png", "water/img2.png", "water/img3.png"]
    np.testing.assert_array_equal(ds.labels, [0, 0, 1, 1])
    assert ds.images.dtype == np.uint8 and ds.images.shape == (4, 3, 8, 8)
    assert isinstance(ds.images, np.memmap) and not ds.images.flags.writeable
    for i in range(4):
        np.testing.assert_array_equal(ds.images[i].transpose(1, 2, 0), rgb(i))
    assert ds.cache_path is not None and ds.cache_path.parent == tmp_path / "cache"
    assert (ds.cache_path / "images.npy").exists() and (ds.cache_path / "meta.json").exists()
    assert len(ds.key) == 64 and ds.name == "folder"


def test_resize_off_size_and_jpeg_draft(tmp_path):
    root = tmp_path / "d"
    write_image(root / "a" / "wide.png", np.full((8, 10, 3), (10, 200, 30), np.uint8))  # off-size
    write_image(root / "b" / "big.jpg", np.full((64, 64, 3), (200, 100, 50), np.uint8), "JPEG")
    ds = load_dataset("folder", root, size=4, cache_dir=tmp_path / "c")
    assert ds.images.shape == (2, 3, 4, 4)
    np.testing.assert_array_equal(ds.images[0, :, 2, 2], [10, 200, 30])  # flat colour survives
    assert np.abs(ds.images[1].astype(int) - np.array([200, 100, 50])[:, None, None]).max() <= 3


def test_rgb_to_one_channel_uses_luma(tmp_path):
    root = tmp_path / "d"
    for cls in ("a", "b"):
        write_image(root / cls / "x.png", np.full((8, 8, 3), (100, 150, 200), np.uint8))
    ds = load_dataset("folder", root, size=8, channels=1, cache_dir=tmp_path / "c")
    # 0.299*100 + 0.587*150 + 0.114*200 = 140.75
    assert ds.images.shape == (2, 1, 8, 8) and int(ds.images[0, 0, 0, 0]) == 141


def test_mixed_modes_converted_with_one_warning_each(tmp_path):
    root = make_folder(tmp_path / "d", {"a": 2, "b": 2})
    Image.fromarray(np.full((8, 8), 77, np.uint8)).save(root / "a" / "gray.png")  # mode L
    rgba = np.zeros((8, 8, 4), np.uint8)
    rgba[...] = (10, 20, 30, 128)
    Image.fromarray(rgba).save(root / "b" / "alpha.png")  # mode RGBA
    Image.fromarray(np.full((8, 8), 257 * 100, np.uint16)).save(root / "b" / "deep.png")  # I;16
    with pytest.warns(GeodistillWarning) as rec:
        ds = load_dataset("folder", root, size=8, cache_dir=tmp_path / "c")
    msgs = [str(w.message) for w in rec]
    gray = [m for m in msgs if "grayscale" in m]
    assert len(gray) == 1 and "a/gray.png" in gray[0] and "b/deep.png" in gray[0]
    assert any("alpha" in m and "b/alpha.png" in m for m in msgs)
    assert any("8-bit" in m and "b/deep.png" in m for m in msgs)
    assert ds.images.shape == (7, 3, 8, 8)
    img = {p: ds.images[i] for i, p in enumerate(ds.paths)}
    assert (img["a/gray.png"] == 77).all()
    np.testing.assert_array_equal(img["b/alpha.png"][:, 0, 0], [10, 20, 30])
    assert (img["b/deep.png"] == 100).all()  # 25700 / 257


def test_multispectral_tiff(tmp_path):
    tifffile = pytest.importorskip("tifffile")
    base = tmp_path / "ds" / "images" / "remote_sensing" / "otherDatasets" / "sentinel_2" / "tif"
    from geodistill.data import get_spec

    for i, cls in enumerate(get_spec("eurosat-ms").classes):
        bands = np.full((8, 8, 13), 1000, np.uint16)
        bands[:, :, 3] = 4000 + i  # B04 saturates at 255
        bands[:, :, 0] = 0
        (base / cls).mkdir(parents=True)
        tifffile.imwrite(base / cls / f"{cls}_1.tif", bands, photometric="minisblack", planarconfig="contig")
    ds = load_dataset("eurosat-ms", tmp_path, size=8, cache_dir=tmp_path / "c")
    assert ds.images.shape == (10, 13, 8, 8) and ds.channels == 13
    # 1000 * 255 / 4000 = 63.75 -> 64; 0 -> 0; >= 4000 -> 255
    assert (ds.images[:, 1] == 64).all() and (ds.images[:, 0] == 0).all() and (ds.images[:, 3] == 255).all()
    rgb3 = load_dataset("eurosat-ms", tmp_path, size=8, channels=3, cache_dir=tmp_path / "c")
    np.testing.assert_array_equal(rgb3.images[0, :, 0, 0], [255, 64, 64])  # bands B04, B03, B02


def test_multiband_tiff_without_tifffile_is_a_clear_error(tmp_path, monkeypatch):
    tifffile = pytest.importorskip("tifffile")
    for cls in ("a", "b"):
        (tmp_path / "d" / cls).mkdir(parents=True)
        tifffile.imwrite(
            tmp_path / "d" / cls / "x.tif",
            np.ones((8, 8, 13), np.uint16),
            photometric="minisblack",
            planarconfig="contig",
        )
    monkeypatch.setattr(imageio, "_tifffile", lambda: None)
    with pytest.raises(
        GeodistillError, match=r"TIFF '.*x.tif' cannot be read by Pillow.*pip install 'geodistill\[geo\]'"
    ):
        load_dataset("folder", tmp_path / "d", size=8, channels=13, cache_dir=tmp_path / "c")


def test_default_cache_dir_from_env(monkeypatch, tmp_path):
    monkeypatch.setenv("GEODISTILL_CACHE", str(tmp_path / "gc"))
    assert default_cache_dir() == tmp_path / "gc"
    monkeypatch.delenv("GEODISTILL_CACHE")
    assert default_cache_dir() == Path.home() / ".cache" / "geodistill"


def test_one_cache_rule_for_configs_and_paths_expands_home(monkeypatch, tmp_path):
    from geodistill.config.run import build_config
    from geodistill.data import prepare
    from geodistill.data.store import image_cache_dir

    monkeypatch.setenv("HOME", str(tmp_path))
    monkeypatch.setenv("GEODISTILL_CACHE", "~/gc")
    assert default_cache_dir() == tmp_path / "gc" == default_cache_dir(build_config({}))
    cfg = build_config({"data": {"cache_dir": "~/c"}})
    assert default_cache_dir(cfg) == default_cache_dir(cfg.data) == default_cache_dir("~/c") == tmp_path / "c"
    assert image_cache_dir(cfg) == tmp_path / "c" / "images"
    assert prepare.default_cache_dir is default_cache_dir  # training's teacher caches use the same rule


# ----------------------------------------------------------------------------- cache
def test_second_load_hits_cache_without_decoding(tmp_path, monkeypatch):
    root = make_folder(tmp_path / "d", {"a": 3, "b": 3})
    first = load_dataset("folder", root, size=8, cache_dir=tmp_path / "c")
    _forbid_decoding(monkeypatch)
    second = load_dataset("folder", root, size=8, cache_dir=tmp_path / "c")
    assert second.key == first.key and second.cache_path == first.cache_path
    np.testing.assert_array_equal(np.asarray(second.images), np.asarray(first.images))
    assert second.paths == first.paths and second.classes == first.classes
    assert len(_entries(tmp_path / "c")) == 1


def test_changed_file_same_size_same_mtime_misses(tmp_path, monkeypatch):
    root = make_folder(tmp_path / "d", {"a": 2, "b": 2}, ext="bmp")  # BMP: fixed byte size
    first = load_dataset("folder", root, size=8, cache_dir=tmp_path / "c")
    target = root / "b" / "b_1.bmp"
    st = target.stat()
    write_image(target, np.zeros((8, 8, 3), np.uint8))
    os.utime(target, ns=(st.st_atime_ns, st.st_mtime_ns))  # same size and mtime, new bytes
    assert target.stat().st_size == st.st_size
    calls = _count_decodes(monkeypatch)
    second = load_dataset("folder", root, size=8, cache_dir=tmp_path / "c")
    assert calls[0] == 4 and second.key != first.key
    assert (second.images[3] == 0).all() and not (first.images[3] == 0).all()


def test_memoised_digest_is_used_for_old_files(tmp_path, monkeypatch):
    from geodistill.data import fingerprint

    root = make_folder(tmp_path / "d", {"a": 2, "b": 2})
    old = 1_600_000_000_000_000_000
    for p in root.rglob("*.png"):
        os.utime(p, ns=(old, old))
    first = load_dataset("folder", root, size=8, cache_dir=tmp_path / "c")
    monkeypatch.setattr(fingerprint, "file_digest", lambda p: (_ for _ in ()).throw(AssertionError(p)))
    _forbid_decoding(monkeypatch)
    again = load_dataset("folder", root, size=8, cache_dir=tmp_path / "c")  # no byte read, no decode
    assert again.key == first.key and np.array_equal(again.images, first.images)


def test_added_file_and_other_size_or_channels_miss(tmp_path, monkeypatch):
    root = make_folder(tmp_path / "d", {"a": 2, "b": 2})
    base = load_dataset("folder", root, size=8, cache_dir=tmp_path / "c")
    calls = _count_decodes(monkeypatch)
    write_image(root / "a" / "new.png", rgb(99))
    added = load_dataset("folder", root, size=8, cache_dir=tmp_path / "c")
    assert calls[0] == 5 and len(added) == 5 and added.key != base.key
    resized = load_dataset("folder", root, size=4, cache_dir=tmp_path / "c")
    assert resized.images.shape == (5, 3, 4, 4) and resized.key != added.key
    gray = load_dataset("folder", root, size=4, channels=1, cache_dir=tmp_path / "c")
    assert gray.images.shape == (5, 1, 4, 4) and gray.key != resized.key
    assert calls[0] == 15 and len(_entries(tmp_path / "c")) == 4


def test_interrupted_build_leaves_nothing_trusted(tmp_path, monkeypatch):
    root = make_folder(tmp_path / "d", {"a": 2, "b": 2})
    cache = tmp_path / "c"

    def crash(tmp, final):
        raise KeyboardInterrupt("power cut before the final rename")

    monkeypatch.setattr(store, "_commit", crash)
    with pytest.raises(KeyboardInterrupt):
        load_dataset("folder", root, size=8, cache_dir=cache)
    assert _entries(cache) == [] and not any(p.name.startswith(".tmp") for p in cache.iterdir())
    monkeypatch.undo()
    calls = _count_decodes(monkeypatch)
    ds = load_dataset("folder", root, size=8, cache_dir=cache)
    assert calls[0] == 4 and len(ds) == 4 and len(_entries(cache)) == 1


def test_half_written_entry_is_rebuilt(tmp_path, monkeypatch):
    root = make_folder(tmp_path / "d", {"a": 2, "b": 2})
    cache = tmp_path / "c"
    ds = load_dataset("folder", root, size=8, cache_dir=cache)
    (ds.cache_path / "meta.json").unlink()  # e.g. a process killed mid-copy by hand
    calls = _count_decodes(monkeypatch)
    again = load_dataset("folder", root, size=8, cache_dir=cache)
    assert calls[0] == 4 and again.cache_path == ds.cache_path
    np.testing.assert_array_equal(np.asarray(again.images[0]).transpose(1, 2, 0), rgb(0))


# ----------------------------------------------------------------------------- bad input
def test_missing_root(tmp_path):
    with pytest.raises(GeodistillError, match=r"Folder '.*nope' does not exist: pass --root"):
        load_dataset("folder", tmp_path / "nope", cache_dir=tmp_path / "c")


def test_empty_class_folder(tmp_path):
    root = make_folder(tmp_path / "d", {"a": 2, "b": 2})
    (root / "empty").mkdir()
    (root / "empty" / "notes.txt").write_text("no images here")
    with pytest.raises(GeodistillError, match=r"Class folder '.*empty' has no images.*add images to it or remove"):
        load_dataset("folder", root, cache_dir=tmp_path / "c")
    assert not (tmp_path / "c").exists()


def test_fewer_than_two_classes(tmp_path):
    root = make_folder(tmp_path / "d", {"only": 3})
    with pytest.raises(GeodistillError, match=r"only 1 class sub-folder \(only\).*at least 2"):
        load_dataset("folder", root, cache_dir=tmp_path / "c")
    flat = tmp_path / "flat"
    write_image(flat / "x.png", rgb(0))
    with pytest.raises(GeodistillError, match="has no class sub-folders"):
        load_dataset("folder", flat, cache_dir=tmp_path / "c")


def test_non_image_files_are_ignored(tmp_path):
    root = make_folder(tmp_path / "d", {"a": 2, "b": 2})
    for junk in ("a/readme.txt", "a/.DS_Store", "b/Thumbs.db", "notes.txt", ".hidden/x.png"):
        (root / junk).parent.mkdir(parents=True, exist_ok=True)
        (root / junk).write_bytes(b"not an image")
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        ds = load_dataset("folder", root, size=8, cache_dir=tmp_path / "c")
    assert len(ds) == 4 and ds.classes == ["a", "b"]


def _add_corrupt(root: Path) -> None:
    (root / "a" / "garbage.jpg").write_bytes(b"\xff\xd8\xff this is not a jpeg at all")
    good = (root / "b" / "b_0.png").read_bytes()
    (root / "b" / "truncated.png").write_bytes(good[: len(good) // 2])


def test_corrupt_images_skipped_with_warning(tmp_path, monkeypatch):
    root = make_folder(tmp_path / "d", {"a": 2, "b": 2})
    _add_corrupt(root)
    with pytest.warns(
        GeodistillWarning, match=r"Skipped 2 unreadable.*a/garbage.jpg, b/truncated.png.*data.strict=true"
    ):
        ds = load_dataset("folder", root, size=8, cache_dir=tmp_path / "c")
    assert len(ds) == 4 and ds.skipped == ["a/garbage.jpg", "b/truncated.png"]
    assert "a/garbage.jpg" not in ds.paths
    np.testing.assert_array_equal(ds.labels, [0, 0, 1, 1])
    np.testing.assert_array_equal(np.asarray(ds.images[2]).transpose(1, 2, 0), rgb(2))
    _forbid_decoding(monkeypatch)
    with pytest.warns(GeodistillWarning, match="Skipped 2 unreadable"):  # a cache hit warns again
        load_dataset("folder", root, size=8, cache_dir=tmp_path / "c")


def test_corrupt_image_strict_raises_and_writes_nothing(tmp_path):
    root = make_folder(tmp_path / "d", {"a": 2, "b": 2})
    _add_corrupt(root)
    with pytest.raises(GeodistillError, match=r"Image '.*garbage.jpg' cannot be read.*replace or delete it"):
        load_dataset("folder", root, size=8, cache_dir=tmp_path / "c", strict=True)
    assert _entries(tmp_path / "c") == []
    assert not any(p.name.startswith(".tmp") for p in (tmp_path / "c").iterdir())


def test_class_with_only_unreadable_images(tmp_path):
    root = make_folder(tmp_path / "d", {"a": 2})
    (root / "b").mkdir()
    (root / "b" / "bad.png").write_bytes(b"junk")
    with pytest.raises(GeodistillError, match="Every image of class 'b' under .* is unreadable"):
        load_dataset("folder", root, size=8, cache_dir=tmp_path / "c")


def test_bad_size_and_band_mismatch(tmp_path):
    root = make_folder(tmp_path / "d", {"a": 2, "b": 2})
    with pytest.raises(GeodistillError, match="Image size 0 is invalid"):
        load_dataset("folder", root, size=0, cache_dir=tmp_path / "c")
    with pytest.raises(GeodistillError, match=r"has 3 bands but the dataset is read with 5 channels"):
        load_dataset("folder", root, size=8, channels=5, cache_dir=tmp_path / "c")
    assert _entries(tmp_path / "c") == []


@pytest.mark.slow
@pytest.mark.skipif(
    os.environ.get("GEODISTILL_SLOW") != "1"
    or not Path(__file__).resolve().parents[2].joinpath("shared/data/aid150").is_dir(),
    reason="needs GEODISTILL_SLOW=1 and ../shared/data/aid150",
)
def test_aid150_info_and_cache(tmp_path, monkeypatch):
    from geodistill.data import data_info

    aid = Path(__file__).resolve().parents[2] / "shared" / "data" / "aid150"
    info = data_info("folder", aid, size=32, cache_dir=tmp_path)
    assert info["num_classes"] == 30 and info["num_images"] == 10_000
    assert info["counts"]["Airport"] == 360 and sum(info["split_totals"].values()) == 10_000
    _forbid_decoding(monkeypatch)
    again = load_dataset("folder", aid, size=32, cache_dir=tmp_path)
    assert again.key == info["key"] and again.images.shape == (10_000, 3, 32, 32)


def test_stale_temp_folders_are_cleaned(tmp_path):
    root = make_folder(tmp_path / "d", {"a": 2, "b": 2})
    cache = tmp_path / "c"
    first = load_dataset("folder", root, size=8, cache_dir=cache)
    name = first.cache_path.name
    shutil.rmtree(first.cache_path)
    stale = cache / f".tmp-{name}-deadbeef"
    fresh = cache / f".tmp-{name}-0badf00d"
    for d in (stale, fresh):
        d.mkdir()
        (d / "images.npy").write_bytes(b"partial")
    os.utime(stale, (1_000_000_000, 1_000_000_000))
    again = load_dataset("folder", root, size=8, cache_dir=cache)
    assert again.cache_path == first.cache_path and len(again) == 4
    assert not stale.exists() and fresh.exists()  # a recent one may be another live build
