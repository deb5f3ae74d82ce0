"""A loss term and a preset registered inside the test reach every consumer: the objective, a
sweep plan, the point label, the results table and the paired statistics."""

from __future__ import annotations

import math
from pathlib import Path

import pytest
import torch

from geodistill.analysis.stats import paired_difference
from geodistill.analysis.table import aggregate, has_nuclear
from geodistill.analysis.verdict import setting_label, verdict
from geodistill.losses import (
    LossInputs,
    Objective,
    Preset,
    loss_coords,
    loss_fragment,
    make_term,
    register_preset,
    term,
    unregister_preset,
    unregister_term,
)
from geodistill.results.result import RunResult, hyper
from geodistill.study.grid import ablation, sweep_study
from geodistill.study.plan import plan
from results_helpers import result


@pytest.fixture
def toy():
    """Term ``toy_abs`` = ``s * mean |z_s - z_t|`` and preset ``toy`` = ``(1-α)·CE + α·L1(s=T)``."""

    @term("toy_abs", label="L1", params={"s": 1.0}, needs=("t_logits",), show=("s",))
    def _toy_abs(inp: LossInputs, s: float) -> torch.Tensor:
        return s * (inp.s_logits - inp.t_logits).abs().mean()

    preset = Preset(
        "toy",
        lambda a, b, T: [make_term("ce", 1 - a), make_term("toy_abs", a, s=T)],
        ("alpha",),
        "(1−α)·CE + α·L1: a toy.",
        "the toy objective",
    )
    register_preset(preset)
    yield preset
    unregister_preset("toy")
    unregister_term("toy_abs")


def test_toy_objective_formula_and_value(toy):
    assert toy.needs_teacher and not toy.needs_features and not toy.needs_first_weight
    obj = Objective.preset("toy", alpha=0.25, T=4.0)
    assert str(obj) == "L = 0.75·CE + 0.25·L1(s=4)"
    assert Objective.parse(obj.spec).terms == obj.terms
    inp = LossInputs(s_logits=torch.zeros(1, 2), target=torch.tensor([0]), t_logits=torch.tensor([[1.0, -1.0]]))
    total, raw = obj(inp)
    assert raw["toy_abs"].item() == pytest.approx(4.0)
    assert total.item() == pytest.approx(0.75 * math.log(2) + 0.25 * 4.0)


def test_toy_preset_through_sweep_table_and_statistics(toy):
    assert "toy" in [o.loss for o in ablation(None)]
    assert (
        loss_fragment("toy", loss_coords("toy", {"alpha": 0.25, "beta": 0.1, "T": 2.0})) == "toy-a0.25"
    )  # β, T unused
    study = sweep_study(
        {"teacher": {"train": {"model": "cnn4"}}, "grid": {"alpha": [0.25], "loss": ["toy"]}, "seeds": [0, 1]}
    )
    p = plan(study, Path("/out"))
    assert [j.name for j in p.runs] == ["student-s0", "student-s1", "toy-a0.25-s0", "toy-a0.25-s1"]
    assert [j.teachers for j in p.runs] == [(), (), ("teacher-s0",), ("teacher-s1",)]

    def run(loss: str, seed: int, acc: float) -> RunResult:
        role = "distilled" if loss == "toy" else "student"
        return result(loss, seed, acc, role=role, **hyper(loss, role, 0.25, None, 4.0), f1_macro=acc / 2)

    runs = [run("student", 0, 0.5), run("student", 1, 0.55), run("toy", 0, 0.6), run("toy", 1, 0.7)]
    agg = {g.setting.objective: g for g in aggregate(runs)}
    assert agg["toy"].n == 2 and agg["toy"].mean("accuracy") == pytest.approx(0.65)
    assert not has_nuclear("toy", None, 4.0)
    (diff,) = paired_difference(runs)
    assert diff.setting.objective == "toy" and diff.mean_diff == pytest.approx(0.125)
    assert diff.wins == 2
    assert verdict([diff]).startswith("The toy objective (α=0.25) ")  # only what the preset uses


def test_a_run_records_only_the_hyperparameters_its_loss_uses():
    """DIST ignores α and β (CE + DIST at the paper's weights): its rows and verdicts must not
    claim an α; a spec string records all three; a teacher none."""
    dist = hyper("dist", "distilled", 0.5, 0.01, 1.0)
    assert dist == {"alpha": None, "beta": None, "T": 1.0}
    assert setting_label(result("dist", **dist).setting) == "DIST (T=1)"
    assert hyper("kl", "distilled", 0.5, 0.01, 4.0) == {"alpha": 0.5, "beta": None, "T": 4.0}
    assert hyper("ce:0.5 + kl:0.5@T=4", "distilled", 0.5, 0.01, 4.0) == {"alpha": 0.5, "beta": 0.01, "T": 4.0}
    assert hyper("kl", "teacher", 0.5, 0.01, 4.0) == {"alpha": None, "beta": None, "T": None}
