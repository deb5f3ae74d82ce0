"""The 8 dihedral views on whole batches, and the Normalizer."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from geodistill.data import transforms as T


def _reference(x: torch.Tensor, v: int) -> torch.Tensor:
    """The documented definition: flip the width axis if v >= 4, then rot90 (v % 4) times."""
    if v >= 4:
        x = torch.flip(x, dims=[3])
    return torch.rot90(x, v % 4, dims=[2, 3])


def _asym(b: int = 3, c: int = 2, h: int = 5) -> torch.Tensor:
    return torch.arange(b * c * h * h, dtype=torch.float32).reshape(b, c, h, h)


def test_hand_computed_views_on_2x2():
    x = torch.tensor([[1, 2], [3, 4]]).view(1, 1, 2, 2)
    expect = {
        0: [[1, 2], [3, 4]],
        1: [[2, 4], [1, 3]],  # 90 deg counter-clockwise
        2: [[4, 3], [2, 1]],
        3: [[3, 1], [4, 2]],
        4: [[2, 1], [4, 3]],  # left-right flip
        5: [[1, 3], [2, 4]],  # flip, then 90 ccw
    }
    for v, e in expect.items():
        assert T.apply_view(x, v)[0, 0].tolist() == e


def test_views_match_torch_and_are_distinct():
    x = _asym()
    outs = []
    for v in range(T.NUM_VIEWS):
        y = T.apply_view(x, v)
        assert torch.equal(y, _reference(x, v))
        outs.append(y)
    assert T.NUM_VIEWS == 8 and torch.equal(outs[0], x)
    for a in range(8):
        for b in range(a + 1, 8):
            assert not torch.equal(outs[a], outs[b])


def test_per_sample_views_vectorised():
    x = _asym(b=16).to(torch.uint8)
    views = torch.tensor([0, 1, 2, 3, 4, 5, 6, 7, 7, 6, 5, 4, 3, 2, 1, 0])
    y = T.apply_view(x, views)
    assert y.dtype == torch.uint8
    for i in range(16):
        assert torch.equal(y[i : i + 1], _reference(x[i : i + 1], int(views[i])))
    assert torch.equal(T.apply_view(x, torch.tensor(3)), _reference(x, 3))


def test_invert_view_int_and_tensor():
    x = _asym(b=8)
    for v in range(8):
        assert torch.equal(T.invert_view(T.apply_view(x, v), v), x)
    views = torch.arange(8).flip(0)
    assert torch.equal(T.invert_view(T.apply_view(x, views), views), x)
    assert [T.inverse_view(v) for v in range(8)] == [0, 3, 2, 1, 4, 5, 6, 7]


def test_composition_closure():
    x = _asym(b=1)
    seen = set()
    for a in range(8):
        for b in range(8):
            c = T.compose_views(a, b)
            seen.add(c)
            assert 0 <= c < 8
            assert torch.equal(T.apply_view(T.apply_view(x, b), a), T.apply_view(x, c))
        assert T.compose_views(a, T.inverse_view(a)) == 0
    assert seen == set(range(8))
    a, b = torch.arange(8).repeat_interleave(8), torch.arange(8).repeat(8)
    assert T.compose_views(a, b).tolist() == [T.compose_views(int(i), int(j)) for i, j in zip(a, b)]


def test_random_views_and_errors():
    g1, g2 = torch.Generator().manual_seed(0), torch.Generator().manual_seed(0)
    v1, v2 = T.random_views(1000, g1), T.random_views(1000, g2)
    assert torch.equal(v1, v2) and v1.dtype == torch.long
    assert set(v1.tolist()) == set(range(8))
    rect = torch.zeros(2, 1, 3, 4)
    assert T.apply_view(rect, 1).shape == (2, 1, 4, 3)  # one view for all: any shape
    with pytest.raises(ValueError, match="square"):
        T.apply_view(rect, torch.tensor([0, 1]))
    with pytest.raises(ValueError, match="0..7"):
        T.apply_view(torch.zeros(1, 1, 2, 2), 8)
    with pytest.raises(ValueError, match="2 view ids for a batch of 3"):
        T.apply_view(torch.zeros(3, 1, 2, 2), torch.tensor([0, 1]))


def test_normalizer_unit_and_from_images():
    x = torch.tensor([[[[0, 255], [51, 102]]]], dtype=torch.uint8)
    y = T.Normalizer.unit(1)(x)
    assert y.dtype == torch.float32
    assert torch.allclose(y, torch.tensor([[[[0.0, 1.0], [0.2, 0.4]]]]))
    imgs = np.zeros((4, 2, 2, 2), np.uint8)
    imgs[:2, 0] = 255  # channel 0: half 1.0, half 0.0 -> mean 0.5, std 0.5
    imgs[:, 1] = 51  # channel 1: constant 0.2 -> std 0 guarded to 1
    norm = T.Normalizer.from_images(imgs, chunk=3)
    d = norm.to_dict()
    assert np.allclose(d["mean"], [0.5, 0.2]) and np.allclose(d["std"], [0.5, 1.0])
    out = norm(torch.from_numpy(imgs))
    assert torch.allclose(out[0, 0], torch.ones(2, 2)) and torch.allclose(out[3, 0], -torch.ones(2, 2))
    assert torch.allclose(out[:, 1], torch.zeros(4, 2, 2))
    again = T.Normalizer.from_dict(d)
    assert torch.equal(again(torch.from_numpy(imgs)), out)
    assert set(norm.state_dict()) == {"mean", "std"}
    with pytest.raises(ValueError):
        T.Normalizer([0.1, 0.2], [1.0])
