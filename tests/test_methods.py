"""Distillation methods fed by the exact cache, and the convergence rule, on hand-computable cases."""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch
import torch.nn.functional as F

from geodistill.config.run import build_config
from geodistill.core.errors import GeodistillError
from geodistill.data.folds import fold_split, make_folds
from geodistill.data.transforms import apply_view
from geodistill.data.views import ViewSet
from geodistill.engine.convergence import auto_epochs, evidence, late_slope, slope, smooth
from geodistill.losses import LossInputs, Objective
from geodistill.teachers.combine import EnsembleSource, OutOfFoldSource, ViewMeanSource, combine_logits

# ---------------------------------------------------------------- ensembles


def test_logit_average_of_two_teachers():
    a = torch.tensor([[1.0, 2.0, 3.0]])
    b = torch.tensor([[3.0, 0.0, -1.0]])
    assert torch.allclose(combine_logits([a, b], "logits"), torch.tensor([[2.0, 1.0, 1.0]]))


def test_probability_average_is_exact_at_its_temperature():
    a = torch.tensor([[0.0, math.log(3.0)]])  # softmax: 1/4, 3/4
    b = torch.tensor([[math.log(3.0), 0.0]])  # softmax: 3/4, 1/4
    z = combine_logits([a, b], "probs", T=1.0)
    assert torch.allclose(torch.softmax(z, 1), torch.tensor([[0.5, 0.5]]))
    # at T=2 the tempered mean: softmax(a/2) = (1, sqrt3)/(1+sqrt3)
    z2 = combine_logits([a, b], "probs", T=2.0)
    r = 1 / (1 + math.sqrt(3))
    expected = torch.tensor([[(r + (1 - r)) / 2, ((1 - r) + r) / 2]])
    assert torch.allclose(torch.softmax(z2 / 2.0, 1), expected, atol=1e-6)


class _Table:
    """A cached teacher stand-in: logits[i, v] = 10 i + v + offset over the first class."""

    def __init__(self, offset: float, dim: int = 2) -> None:
        self.offset, self.dim = offset, dim
        self.seen: list[int] = []

    def __call__(self, idx, views, x_u8=None, feats=True):
        self.seen += list(map(int, idx))
        z = torch.zeros(len(idx), 3)
        z[:, 0] = torch.as_tensor(idx, dtype=torch.float32) * 10 + views.float() + self.offset
        f = torch.full((len(idx), self.dim), self.offset) if feats else None
        return z, f


def test_ensemble_source_combines_cached_answers():
    src = EnsembleSource([_Table(0.0), _Table(4.0)])
    z, f = src(np.array([1, 2]), torch.tensor([0, 3]), feats=False)
    assert z[:, 0].tolist() == [12.0, 25.0] and f is None
    with pytest.raises(GeodistillError, match="single teacher"):  # features of two networks: no common space
        src(np.array([1]), torch.tensor([0]), feats=True)


# ---------------------------------------------------------------- out-of-fold


def test_folds_are_stratified_balanced_and_seeded():
    labels = np.repeat(np.arange(3), [10, 7, 13])
    train = np.arange(30)[::1]
    fold = make_folds(labels, train, 5, seed=1)
    assert np.bincount(fold).tolist() == [6, 6, 6, 6, 6]
    for c in range(3):
        per = np.bincount(fold[labels[train] == c], minlength=5)
        assert per.max() - per.min() <= 1
    assert np.array_equal(fold, make_folds(labels, train, 5, seed=1))
    assert not np.array_equal(fold, make_folds(labels, train, 5, seed=2))
    with pytest.raises(GeodistillError, match="fewer than data.folds"):
        make_folds(labels, train, 8)


def test_out_of_fold_never_labels_an_image_with_a_teacher_that_trained_on_it():
    labels = np.repeat(np.arange(4), 9)
    train = np.arange(0, 36, 1)[np.arange(36) % 6 != 0]  # some images are val/test
    k = 3
    fold = make_folds(labels, train, k, seed=0)
    fits = [fold_split(train, fold, j)[0] for j in range(k)]
    fold_of = np.full(36, -1)
    fold_of[train] = fold
    teachers = [_Table(100.0 * j) for j in range(k)]
    src = OutOfFoldSource(fold_of, teachers)
    z, _ = src(train, torch.zeros(len(train), dtype=torch.long), feats=False)
    for j, t in enumerate(teachers):
        assert set(t.seen).isdisjoint(fits[j])  # teacher j answered only images it never trained on
    answered_by = ((z[:, 0] - torch.as_tensor(train) * 10) // 100).long().numpy()
    assert np.array_equal(answered_by, fold)
    with pytest.raises(KeyError):
        src(np.array([0]), torch.tensor([0]), feats=False)


# ---------------------------------------------------------------- exact view sets


def test_a_crop_view_id_maps_to_exactly_one_crop():
    vs = ViewSet(dihedral=True, crop_grid=3, crop_pad=2)
    assert vs.n_views == 72
    assert vs.decode(8 * 5 + 3) == (5, 3)
    assert [vs.crop_offset(c) for c in (0, 4, 8)] == [(0, 0), (2, 2), (4, 4)]
    x = torch.arange(36, dtype=torch.uint8).reshape(1, 1, 6, 6)
    assert torch.equal(vs.apply(x, 8 * 4), x)  # the centre crop, no flip, is the image
    # crop 8 = offset (4, 4) of the reflect-padded image: rows/cols 2..7 of it, i.e. shifted by 2
    pad = torch.nn.functional.pad(x.float(), (2, 2, 2, 2), mode="reflect").to(torch.uint8)
    assert torch.equal(vs.apply(x, 8 * 8), pad[..., 4:10, 4:10])
    assert torch.equal(vs.apply(x, 8 * 8 + 5), apply_view(pad[..., 4:10, 4:10], 5))
    ids = {tuple(vs.apply(x, v).flatten().tolist()) for v in range(vs.n_views)}
    assert len(ids) == 72  # every view id gives a different image here
    with pytest.raises(GeodistillError, match="outside this view set"):
        vs.decode(72)


def test_a_crop_grid_wider_than_its_offsets_and_a_pad_beyond_the_image_are_refused():
    assert ViewSet(crop_grid=5, crop_pad=2).crop_offset(4) == (0, 4)  # 5 offsets 0..4: each once
    with pytest.raises(GeodistillError, match="crop_pad >= 4"):
        ViewSet(crop_grid=9, crop_pad=1)  # offsets 0..2 only: 9 view ids, 3 crops
    with pytest.raises(GeodistillError, match="below data.size"):
        build_config({"data": {"size": 16, "augment": "dihedral+grid", "crop_pad": 16}}, where="test")


def test_plain_dihedral_view_set_is_the_old_view_set():
    x = torch.randint(0, 255, (4, 3, 8, 8), dtype=torch.uint8)
    v = torch.tensor([0, 3, 5, 7])
    assert torch.equal(ViewSet().apply(x, v), apply_view(x, v))
    assert ViewSet(dihedral=False).n_views == 1


# ---------------------------------------------------------------- convergence


def test_smoothing_and_slope_by_hand():
    assert smooth([1, 2, 3, 4], 2) == [1.0, 1.5, 2.5, 3.5]
    assert slope([1.0, 3.0, 5.0]) == pytest.approx(2.0)
    assert slope([0.5]) == 0.0


def test_a_still_rising_run_is_not_converged_and_a_flat_one_is():
    rising = [0.5 + 0.005 * e for e in range(100)]  # +0.5 pts per epoch: +5 pts per 10% of 100 epochs
    assert late_slope(rising) == pytest.approx(5.0)
    ev = evidence(rising, best_epoch=100, lr_end_ratio=0.0)
    assert ev["converged"] is False and ev["best_at"] == 1.0
    flat = [min(0.8, 0.5 + 0.01 * e) for e in range(100)]
    assert evidence(flat, best_epoch=31)["converged"] is True
    assert evidence(flat, best_epoch=31, lr_end_ratio=0.5)["converged"] is False  # lr still high
    assert evidence(flat[:5], best_epoch=5)["converged"] is False  # too short to tell


def test_auto_epochs_scales_with_the_training_set():
    assert auto_epochs(6000, 3_600_000) == 600
    assert auto_epochs(7000, 3_600_000) == 515  # rounded up
    assert auto_epochs(200_000, 3_600_000) == 30  # floor
    assert auto_epochs(1000, 3_600_000) == 1000  # ceiling


# ---------------------------------------------------------------- KL + feature cosine


def test_kl_feat_preset_is_the_stated_sum_with_a_projector():
    """(1−α)·CE + α·KL(T) + β·(1 − cos(P f_s, f_t)) on a 2-image case, β tied to α when not given."""
    torch.manual_seed(0)
    obj = Objective.preset("kl+feat", alpha=0.3, beta=None, T=2.0, s_dim=4, t_dim=6)
    assert str(obj) == "L = 0.7·CE + 0.3·KL(T=2) + 0.3·cos(feat)" and obj.needs_features
    s, t = torch.tensor([[1.0, 0.0, -1.0], [0.5, 0.5, 0.0]]), torch.tensor([[2.0, 0.0, 0.0], [0.0, 1.0, 0.0]])
    y = torch.tensor([0, 1])
    fs, ft = torch.arange(8.0).view(2, 4) / 8, torch.ones(2, 6)
    total, _ = obj(LossInputs(s_logits=s, target=y, t_logits=t, s_feat=fs, t_feat=ft))
    ce = F.cross_entropy(s, y)
    p_t = F.softmax(t / 2, dim=1)
    kl = (p_t * (p_t.log() - F.log_softmax(s / 2, dim=1))).sum(1).mean() * 4  # T² · KL(p_t ‖ p_s)
    cos = (1 - F.cosine_similarity(obj.projector(fs), ft, dim=1)).mean()
    assert torch.allclose(total, 0.7 * ce + 0.3 * kl + 0.3 * cos, atol=1e-6)


def test_view_mean_source_answers_the_mean_over_every_view_whatever_the_view_asked():
    src = ViewMeanSource(_Table(1.0), n_views=8)
    z, f = src(np.array([2, 5]), torch.tensor([0, 6]), feats=False)
    assert z[:, 0].tolist() == [20 + 3.5 + 1, 50 + 3.5 + 1] and f is None  # mean of v = 0..7 is 3.5
    with pytest.raises(GeodistillError, match="single teacher"):
        src(np.array([2]), torch.tensor([0]), feats=True)
