"""The Trainer's parts: the reading of data.augment, the typed state, the stop rule, batch
assembly, and the public seams (per-step hooks, a custom stop rule)."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import torch

from geodistill.config.run import build_config
from geodistill.core.errors import GeodistillError
from geodistill.data.prepare import prepare_data
from geodistill.data.transforms import NUM_VIEWS
from geodistill.data.views import ViewPlan, ViewSet, view_plan
from geodistill.engine.batches import assemble_batch
from geodistill.engine.context import run_context
from geodistill.engine.trainer import Trainer, TrainState, patience_rule
from geodistill.losses import Objective
from geodistill.models import build_model


@pytest.fixture(scope="module")
def cfg_and_data(tmp_path_factory) -> tuple:
    tmp = tmp_path_factory.mktemp("trainer")
    cfg = build_config(
        {
            "data": {"dataset": "synthetic", "size": 16, "n_per_class": 12, "cache_dir": str(tmp / "cache")},
            "train": {"model": "cnn3", "epochs": 3, "batch_size": 16, "progress": False},
            "out": str(tmp / "runs"),
        }
    )
    return cfg, prepare_data(cfg), tmp


def test_view_plan_reads_data_augment_in_one_place():
    assert view_plan("none") == ViewPlan(ViewSet(dihedral=False)) and not view_plan("none").teacher_runs_live
    assert view_plan("dihedral").views == NUM_VIEWS and not view_plan("dihedral").teacher_runs_live
    assert view_plan("dihedral+crop").views == NUM_VIEWS and view_plan("dihedral+crop").teacher_runs_live
    grid = view_plan("dihedral+grid", crop_grid=3, crop_pad=2)
    assert grid.views == 72 and grid.viewset == ViewSet(True, 3, 2) and not grid.teacher_runs_live
    assert ViewSet().key() == {"views": 8}  # the plain dihedral caches keep their old keys
    assert grid.viewset.key() == {"views": 72, "crop_grid": 3, "crop_pad": 2}
    with pytest.raises(GeodistillError, match="data.augment"):
        view_plan("rotate")


def test_train_state_counts_steps_and_epochs_and_round_trips():
    st = TrainState()
    st.add_step(2.0, 3, 4)
    st.add_step(1.0, 1, 4)
    assert (st.step, st.global_step, st.train_loss, st.train_acc) == (2, 2, 1.5, 0.5)
    assert TrainState.from_dict(st.to_dict()) == st
    assert st.end_epoch({"epoch": 1}, 0.4) and (st.best_val, st.best_epoch, st.bad_epochs) == (0.4, 1, 0)
    assert (st.epoch, st.step, st.seen, st.global_step) == (1, 0, 0, 2)
    assert not st.end_epoch({"epoch": 2}, 0.4) and st.bad_epochs == 1 and len(st.history) == 2
    # a last.ckpt written before the typed state kept the running sums in a 'partial' slot
    old = {"epoch": 1, "step": 3, "global_step": 9, "history": [], "partial": [6.0, 5, 12]}
    assert (TrainState.from_dict(old).loss_sum, TrainState.from_dict(old).seen) == (6.0, 12)


def test_patience_rule_stops_after_patience_epochs_without_gain():
    rule = patience_rule(2)
    assert rule(TrainState(bad_epochs=1)) is None
    assert "best epoch 3" in rule(TrainState(bad_epochs=2, best_epoch=3))
    assert patience_rule(None)(TrainState(bad_epochs=99)) is None


def test_batches_are_a_pure_function_of_seed_epoch_step(cfg_and_data):
    _, data, _ = cfg_and_data
    idx = np.sort(data.train)[:8]

    def make(plan: ViewPlan, step: int):
        return assemble_batch(data, idx, plan, seed=0, epoch=1, step=step, rank=0, channels_last=False)

    a, b = make(view_plan("dihedral"), 2), make(view_plan("dihedral"), 2)
    assert torch.equal(a.x, b.x) and torch.equal(a.y, b.y) and a.t_logits is None and a.t_feat is None
    assert not torch.equal(a.x, make(view_plan("dihedral"), 3).x)
    plain = make(view_plan("none"), 2)
    assert torch.equal(plain.x, data.normalizer(torch.from_numpy(data.images[idx])))
    assert plain.x.shape == make(view_plan("dihedral+crop"), 2).x.shape


def test_trainer_calls_step_hooks_and_obeys_a_custom_stop_rule(cfg_and_data):
    cfg, data, tmp = cfg_and_data
    torch.manual_seed(0)
    student = build_model("cnn3", len(data.classes), in_channels=data.channels)
    seen: list[int] = []
    ctx = run_context(cfg, Path(tmp / "run"), data, student, resume=False)
    trainer = Trainer(
        ctx,
        student,
        Objective.preset("student"),
        None,
        meta={"arch": "cnn3"},
        hooks=[lambda st: seen.append(st.global_step)],
        stop_rule=lambda st: "one epoch is enough" if st.epoch == 1 else None,
    )
    state = trainer.fit()
    steps = len(trainer.epoch_batches(0))
    assert seen == list(range(1, steps + 1)) and state.epoch == 1 and len(state.history) == 1
    assert (tmp / "run" / "model.ckpt").is_file() and (tmp / "run" / "metrics.csv").is_file()
