"""The built-in procedural land-use dataset."""

from __future__ import annotations

import numpy as np
import pytest

from geodistill.core.errors import GeodistillError
from geodistill.data import load_dataset, make_split
from geodistill.data.synthetic import CLASSES, generate


def test_same_seed_same_bytes_other_seed_differs():
    a, la, ca = generate(n_per_class=4, seed=3, size=32)
    b, lb, cb = generate(n_per_class=4, seed=3, size=32)
    assert a.tobytes() == b.tobytes() and np.array_equal(la, lb) and ca == cb
    c, _, _ = generate(n_per_class=4, seed=4, size=32)
    assert a.shape == c.shape and a.tobytes() != c.tobytes()
    # each class differs under another seed, not just one of them
    for k in range(len(CLASSES)):
        assert not np.array_equal(a[la == k], c[la == k])


def test_shapes_labels_and_classes():
    x, y, classes = generate(n_per_class=3, seed=0, size=16)
    assert len(classes) >= 8 and classes == list(CLASSES)
    assert x.dtype == np.uint8 and x.shape == (3 * len(classes), 3, 16, 16)
    np.testing.assert_array_equal(y, np.repeat(np.arange(len(classes)), 3))
    assert {"dense_residential", "sparse_residential", "farmland", "bare_land"} <= set(classes)


def test_intra_class_variation_and_range():
    x, y, _ = generate(n_per_class=6, seed=1, size=32)
    x = x.astype(np.float32)
    for k in range(int(y.max()) + 1):
        members = x[y == k]
        # no two images of a class are alike: mean absolute difference of at least 4 grey levels
        diffs = [np.abs(members[i] - members[j]).mean() for i in range(6) for j in range(i + 1, 6)]
        assert min(diffs) > 4.0
    assert x.min() < 40 and x.max() > 200  # uses the dynamic range


def test_load_dataset_synthetic_needs_no_root():
    ds = load_dataset("synthetic", size=16, n_per_class=5, seed=2)
    assert ds.name == "synthetic" and ds.cache_path is None and len(ds) == 50
    assert ds.paths[0] == "water/00000" and ds.paths[-1] == "industrial/00004"
    same = load_dataset("synthetic", size=16, n_per_class=5, seed=2)
    other = load_dataset("synthetic", size=16, n_per_class=5, seed=3)
    assert same.key == ds.key and other.key != ds.key
    assert load_dataset("synthetic", size=16, n_per_class=5, seed=2, channels=1).images.shape == (50, 1, 16, 16)
    split = make_split(ds.labels, seed=0)
    assert split.sizes() == {"train": 30, "val": 10, "test": 10}


def test_synthetic_bad_arguments():
    with pytest.raises(GeodistillError, match="n_per_class=0 is invalid"):
        load_dataset("synthetic", n_per_class=0)
    with pytest.raises(GeodistillError, match="channels=4 is invalid for 'synthetic'"):
        load_dataset("synthetic", n_per_class=1, channels=4)
