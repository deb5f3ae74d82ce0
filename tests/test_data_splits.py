"""Stratified seeded splits and split files."""

from __future__ import annotations

import numpy as np
import pytest

from geodistill.config.protocols import PROTOCOLS
from geodistill.config.run import build_config
from geodistill.core.errors import GeodistillError
from geodistill.data import Split, make_split, split_from_files
from geodistill.data.prepare import prepare_data
from geodistill.data.splits import ratio_split


def _check_partition(split: Split, n: int) -> None:
    parts = [split.train, split.val, split.test]
    allidx = np.concatenate(parts)
    assert len(allidx) == n and len(np.unique(allidx)) == n  # disjoint and covering
    assert set(allidx.tolist()) == set(range(n))
    for p in parts:
        assert p.dtype == np.int64 and np.all(np.diff(p) > 0)


def test_pinned_split_is_stable():
    """Exact indices for seed 0 and 1: the same on every machine (PCG64 + SeedSequence)."""
    labels = np.repeat([0, 1, 2], [5, 4, 6])
    s = make_split(labels, seed=0)
    assert s.train.tolist() == [2, 3, 4, 5, 8, 9, 10, 11, 14]
    assert s.val.tolist() == [0, 7, 13] and s.test.tolist() == [1, 6, 12]
    s1 = make_split(labels, seed=1)
    assert s1.train.tolist() == [0, 1, 4, 5, 7, 9, 10, 13, 14]
    assert s1.val.tolist() == [2, 6, 12] and s1.test.tolist() == [3, 8, 11]


@pytest.mark.parametrize("fractions", [(0.6, 0.2, 0.2), (0.7, 0.1, 0.2), (0.5, 0.5, 0.0)])
def test_stratified_within_one_per_class(fractions):
    sizes = [10, 7, 13, 5, 3, 101]
    labels = np.random.default_rng(3).permutation(np.repeat(np.arange(len(sizes)), sizes))
    split = make_split(labels, fractions, seed=7)
    _check_partition(split, len(labels))
    smallest = min(f for f in fractions if f > 0)
    for c, n in enumerate(sizes):
        for f, part in zip(fractions, (split.train, split.val, split.test)):
            k = int((labels[part] == c).sum())
            assert k >= 1 or f == 0  # every split gets every class ...
            if n * smallest >= 0.5:  # ... which is the only thing that may push a count off by > 1
                assert abs(k - n * f) < 1 + 1e-9


def test_seeded_and_seed_sensitive():
    labels = np.repeat([0, 1], 50)
    a, b = make_split(labels, seed=5), make_split(labels, seed=5)
    assert all(np.array_equal(a[s], b[s]) for s in ("train", "val", "test"))
    c = make_split(labels, seed=6)
    assert not np.array_equal(a.train, c.train)
    assert a.sizes() == {"train": 60, "val": 20, "test": 20}


def test_class_too_small_names_the_class():
    labels = np.array([0, 0, 0, 1, 1, 2, 2, 2])
    with pytest.raises(GeodistillError, match=r"Class 'forest' has only 2 image\(s\), too few .* 3 splits"):
        make_split(labels, classes=["water", "forest", "farm"])
    ok = make_split(labels, (0.5, 0.5, 0.0))  # two splits need only 2 per class
    assert len(ok.test) == 0 and len(ok.train) + len(ok.val) == 8


@pytest.mark.parametrize("bad", [(0.6, 0.2), (0.6, 0.3, 0.3), (0.0, 0.5, 0.5), (1.2, -0.1, -0.1)])
def test_bad_fractions(bad):
    with pytest.raises(GeodistillError, match="Split fractions .* are invalid"):
        make_split(np.repeat([0, 1], 10), bad)


PATHS = ["Forest/Forest_1.tif", "Forest/Forest_2.tif", "River/River_1.tif", "River/River_2.tif", "Sea/a.tif"]


def test_split_from_files_matches_path_name_and_stem(tmp_path):
    (tmp_path / "train.txt").write_text("# train\nForest/Forest_1.tif\nRiver_1.tif\n\n")
    (tmp_path / "val.txt").write_text("Forest_2.jpg\n")  # torchgeo lists .jpg for the .tif files
    (tmp_path / "test.txt").write_text("./River/River_2.tif\n")
    split = split_from_files(PATHS, {s: tmp_path / f"{s}.txt" for s in ("train", "val", "test")})
    assert split.train.tolist() == [0, 2] and split.val.tolist() == [1] and split.test.tolist() == [3]
    partial = split_from_files(PATHS, {"train": tmp_path / "train.txt"})
    assert partial.train.tolist() == [0, 2] and len(partial.val) == 0 and len(partial.test) == 0


def test_split_file_naming_missing_image(tmp_path):
    (tmp_path / "train.txt").write_text("Forest_1.tif\nForest_99.tif\n")
    with pytest.raises(GeodistillError, match=r"train.txt' line 2 names 'Forest_99.tif', which is not an image"):
        split_from_files(PATHS, {"train": tmp_path / "train.txt"})


def test_split_files_overlap_and_bad_keys(tmp_path):
    (tmp_path / "a.txt").write_text("Forest_1.tif\n")
    with pytest.raises(GeodistillError, match="already in the train split"):
        split_from_files(PATHS, {"train": tmp_path / "a.txt", "test": tmp_path / "a.txt"})
    with pytest.raises(GeodistillError, match=r"Split name\(s\) \['holdout'\] are unknown"):
        split_from_files(PATHS, {"holdout": tmp_path / "a.txt"})
    with pytest.raises(GeodistillError, match=r"Split file '.*nope.txt' cannot be read"):
        split_from_files(PATHS, {"val": tmp_path / "nope.txt"})


# ---------------------------------------------------------------- the field's protocols


def test_protocol_split_trains_on_the_ratio_of_every_class_and_tests_on_the_rest():
    labels = np.repeat(np.arange(3), [100, 50, 21])
    split = ratio_split(labels, 0.2, val_ratio=0.25, seed=3)
    parts = (split.train, split.val, split.test)
    assert len(np.concatenate(parts)) == len(labels) == len(np.unique(np.concatenate(parts)))  # disjoint, complete
    for c, n in enumerate((100, 50, 21)):
        k = round(0.2 * n)
        train, val = (int((labels[p] == c).sum()) for p in (split.train, split.val))
        assert train + val == k and val == max(1, round(0.25 * k))  # validation comes out of the training share
        assert int((labels[split.test] == c).sum()) == n - k
    again = ratio_split(labels, 0.2, val_ratio=0.25, seed=3)
    assert all(np.array_equal(a, b) for a, b in zip(parts, (again.train, again.val, again.test)))
    other = ratio_split(labels, 0.2, val_ratio=0.25, seed=4)
    assert not np.array_equal(other.test, split.test)  # another split seed, another split
    with pytest.raises(GeodistillError, match="too few for a training share"):
        ratio_split(np.repeat([0, 1], [10, 2]), 0.9)


def test_a_named_protocol_gives_its_dataset_and_ratio_and_the_split_seed_moves_the_split():
    d = build_config({"data": {"protocol": "aid-20"}}).data
    assert (d.dataset, d.train_ratio, d.val_ratio) == ("aid", 0.2, 0.2)
    local = build_config({"data": {"protocol": "ucm-80", "dataset": "folder", "root": "/x"}}).data
    assert (local.dataset, local.train_ratio) == ("folder", 0.8)  # a local copy keeps its name
    with pytest.raises(GeodistillError, match="protocol aid-20 trains on 0.2 of each class, not 0.5"):
        build_config({"data": {"protocol": "aid-20", "train_ratio": 0.5}})
    with pytest.raises(GeodistillError, match="'nwpu-30' is unknown; choose one of aid-20, aid-50"):
        build_config({"data": {"protocol": "nwpu-30"}})
    assert PROTOCOLS["nwpu-10"].train_ratio == 0.1 and PROTOCOLS["rsscn7-50"].dataset == "rsscn7"
    cfg = {"dataset": "synthetic", "size": 16, "n_per_class": 20, "train_ratio": 0.5}
    a, b = (prepare_data(build_config({"data": dict(cfg, split_seed=s)})).split for s in (0, 1))
    assert len(a.train) + len(a.val) == 100 and len(a.test) == 100
    assert not np.array_equal(a.test, b.test)
