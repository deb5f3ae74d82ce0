"""The peer benchmark's bridge to timm (benchmarks/peers.py): timm's distillation tasks, fed a
geodistill model through ``TimmFace``, compute the loss geodistill's objective computes on the
same batch, so the benchmark compares one objective run two ways."""

from __future__ import annotations

import importlib.util
import sys
from pathlib import Path

import pytest
import torch

from geodistill.data.transforms import Normalizer
from geodistill.losses import LossInputs, Objective
from geodistill.models import build_model

pytest.importorskip("timm.task")
PEERS = Path(__file__).resolve().parents[1] / "benchmarks" / "peers.py"
_spec = importlib.util.spec_from_file_location("peers_under_test", PEERS)
peers = importlib.util.module_from_spec(_spec)
sys.modules[_spec.name] = peers  # dataclasses look their module up there
_spec.loader.exec_module(peers)

NORM = Normalizer.unit(3).to_dict()


def _batch() -> tuple[torch.Tensor, torch.Tensor]:
    g = torch.Generator().manual_seed(0)
    x = torch.randint(0, 256, (6, 3, 16, 16), generator=g, dtype=torch.uint8)
    return Normalizer.unit(3)(x), torch.tensor([0, 1, 2, 0, 1, 2])


def _models() -> tuple[torch.nn.Module, torch.nn.Module]:
    torch.manual_seed(0)
    return build_model("cnn3", 3).eval(), build_model("cnn4", 3).eval()


def test_timm_logit_task_equals_geodistill_kl():
    student, teacher = _models()
    x, y = _batch()
    with torch.no_grad():
        out = peers.timm_task("logit", student, teacher, NORM).eval()(x, y)
        want, raw = Objective.preset("kl", alpha=peers.ALPHA, T=peers.T)(
            LossInputs(s_logits=student(x), target=y, t_logits=teacher(x))
        )
    torch.testing.assert_close(out["loss"], want)
    torch.testing.assert_close(out["kd_loss"], raw["kl"])
    # by hand: a teacher that is the student leaves (1 − α)·CE
    with torch.no_grad():
        same = peers.timm_task("logit", student, student, NORM).eval()(x, y)
        ce = torch.nn.functional.cross_entropy(student(x), y)
    assert float(same["kd_loss"]) == pytest.approx(0.0, abs=1e-6)
    torch.testing.assert_close(same["loss"], (1 - peers.ALPHA) * ce)


def test_timm_feature_task_equals_geodistill_mse_feat_with_the_same_projector():
    student, teacher = _models()
    x, y = _batch()
    task = peers.timm_task("feature", student, teacher, NORM).eval()
    obj = Objective.parse(peers.OBJECTIVES["feature"], s_dim=student.feature_dim, t_dim=teacher.feature_dim)
    proj = task.trainable_module.projection
    assert proj.in_features == student.feature_dim and proj.out_features == teacher.feature_dim
    with torch.no_grad():
        proj.bias.zero_()  # geodistill's projector has no bias: give both the same map
        obj.projector.weight.copy_(proj.weight)
        out = task(x, y)
        s_logits, s_feat = student.forward_features(x)
        want, raw = obj(LossInputs(s_logits=s_logits, target=y, s_feat=s_feat, t_feat=teacher.forward_features(x)[1]))
    torch.testing.assert_close(out["loss"], want)
    torch.testing.assert_close(out["kd_loss"], raw["mse_feat"])
    assert float(raw["mse_feat"]) > 0  # a real difference of features, not a trivial zero
