"""Convergence wired into training and reporting: `train.epochs: auto` resolves once to
`auto_epochs(n_train, auto_images)`, every results.json carries the evidence of its own history,
and tables and the verdict say when compared runs had not converged."""

from __future__ import annotations

import dataclasses
import json
import math
from pathlib import Path

import pytest
import torch
from typer.testing import CliRunner

from geodistill.analysis.stats import paired_difference
from geodistill.analysis.summary import summarise
from geodistill.analysis.table import aggregate
from geodistill.analysis.verdict import verdict
from geodistill.cli import app
from geodistill.config import Study
from geodistill.config.run import build_config
from geodistill.core.errors import GeodistillError, GeodistillWarning
from geodistill.data.prepare import prepare_data
from geodistill.engine import convergence
from geodistill.engine.api import train
from geodistill.engine.convergence import LR_DECAYED, RULE, auto_epochs, budget_check, evidence, resolve_epochs
from geodistill.report.build import write_report
from geodistill.results import Cost, RunResult, read_result
from geodistill.study.recipe import format_summary, run
from results_helpers import result

AUTO_EPOCHS = 31  # inside the 30..400 clamp, so the images budget decides


def tiny(tmp: Path, **train) -> dict:
    return {
        "data": {"dataset": "synthetic", "size": 16, "n_per_class": 3, "cache_dir": str(tmp / "cache")},
        "train": {"model": "cnn3", "batch_size": 16, "progress": False, **train},
        "out": str(tmp / "runs"),
    }


@pytest.fixture(scope="module")
def runs(tmp_path_factory) -> tuple[Path, int, int, dict, dict]:
    """One run with epochs=auto (a budget worth 31 epochs) and one stopped early by patience."""
    tmp = tmp_path_factory.mktemp("conv")
    n_train = len(prepare_data(build_config(tiny(tmp, epochs=1))).train)
    images = n_train * AUTO_EPOCHS - 1  # ceil(images / n_train) = 31
    auto = train(build_config(tiny(tmp, epochs="auto", auto_images=images)), tmp / "runs" / "auto")
    early = train(build_config(tiny(tmp, epochs=40, patience=1, seed=1)), tmp / "runs" / "early")
    return tmp, n_train, images, auto, early


def test_auto_epochs_resolve_to_the_images_budget_and_are_recorded(runs):
    tmp, n_train, images, auto, _ = runs
    assert auto_epochs(n_train, images) == AUTO_EPOCHS
    assert auto.config["train"]["epochs"] == AUTO_EPOCHS and auto.epochs_auto is True
    assert auto.epochs == len(auto.history) == AUTO_EPOCHS  # no patience: the whole budget ran
    ckpt = torch.load(tmp / "runs" / "auto" / "model.ckpt", map_location="cpu", weights_only=True)
    assert ckpt["config"]["train"]["epochs"] == AUTO_EPOCHS  # the checkpoint's config agrees
    assert json.loads((tmp / "runs" / "auto" / "results.json").read_text())["epochs_auto"] is True
    assert auto.history[-1].lr < 1e-9  # the cosine schedule reached 0 at the resolved end


def test_results_json_carries_evidence_recomputed_from_its_history(runs):
    _, _, _, auto, early = runs
    for res in (auto, early):
        h = res.history
        again = evidence([row.val_acc for row in h], res.best_epoch, h[-1].lr / res.config["train"]["lr"])
        conv = res.convergence
        assert {f.name for f in dataclasses.fields(conv)} - {"extra"} == {
            "best_epoch",
            "epochs",
            "best_at",
            "late_slope_pts",
            "lr_end_ratio",
            "smoothed_final",
            "converged",
            "rule",
        }
        assert conv.converged is again["converged"] and conv.rule == RULE
        assert conv.epochs == len(h) and conv.best_epoch == res.best_epoch
        assert conv.lr_end_ratio == pytest.approx(again["lr_end_ratio"])
        assert conv.late_slope_pts == pytest.approx(again["late_slope_pts"], nan_ok=True)
    assert auto.convergence.lr_end_ratio <= LR_DECAYED
    # patience stopped it long before the schedule decayed: not converged, whatever the curve
    assert early.epochs < 40 and early.epochs_auto is False
    assert early.convergence.lr_end_ratio > LR_DECAYED and early.convergence.converged is False


def test_report_shows_converged_per_group_and_the_rule(runs):
    tmp, *_ = runs
    _, md = write_report(tmp / "runs", tmp / "report")
    text = md.read_text(encoding="utf-8")
    assert "| converged |" in text.splitlines()[text.splitlines().index("## Mean ± sd over seeds") + 4]
    assert "convergence rule" in text and "learning rate decayed to at most 5%" in text


def test_resolve_epochs_clamps_and_keeps_explicit_numbers():
    cfg = build_config({"train": {"epochs": "auto"}})
    assert cfg.train.auto_images == 3_600_000
    assert resolve_epochs(cfg, 6000)[0].train.epochs == 600
    assert resolve_epochs(cfg, 200_000)[0].train.epochs == 30  # floor
    assert resolve_epochs(cfg, 1000) == (
        cfg.model_copy(update={"train": cfg.train.model_copy(update={"epochs": 1000})}),
        True,
    )
    assert cfg.train.epochs == "auto"  # the caller's config is left as it was
    fixed = build_config({"train": {"epochs": "12"}})
    assert fixed.train.epochs == 12 and resolve_epochs(fixed, 10) == (fixed, False)


def test_cli_epochs_auto_below_the_floor_runs_30_epochs(tmp_path, monkeypatch):
    monkeypatch.setenv("GEODISTILL_CACHE", str(tmp_path / "cache"))
    sets = ["data.n_per_class=3", "train.auto_images=10", "train.progress=false", "train.batch_size=16"]
    args = ["train", "--size", "16", "--epochs", "auto", "--out", str(tmp_path), "--name", "cli"]
    result = CliRunner().invoke(app, args + [a for s in sets for a in ("--set", s)])
    assert result.exit_code == 0, result.output
    res = read_result(tmp_path / "cli")
    assert res.config["train"]["epochs"] == 30 == len(res.history) and res.epochs_auto is True


def test_epochs_other_than_a_whole_number_or_auto_are_refused():
    for bad in ("sometimes", 0, 2.5):
        with pytest.raises(GeodistillError, match="train.epochs.*whole number >= 1 or 'auto'"):
            build_config({"train": {"epochs": bad}})


# ---------------------------------------------------------------- tables and the verdict


def _row(obj: str, seed: int, acc: float, converged: bool | None, role: str | None = None) -> RunResult:
    hyper = {} if obj in ("student", "teacher") else {"alpha": 0.5, "T": 4.0}
    cost = Cost(params=10, flops=1e6, size_bytes=2048)
    return result(obj, seed, acc, role=role, dataset="aid", converged=converged, cost=cost, **hyper)


def _rows(flags: dict[str, list[bool | None]]) -> list[RunResult]:
    acc = {"student": 0.80, "kl": 0.82, "cos": 0.81}
    rows = [_row(o, s, acc[o] + 0.001 * s, f) for o, fs in flags.items() for s, f in enumerate(fs)]
    rows.append(_row("teacher", 0, 0.9, False, role="teacher"))  # not compared: not counted
    rows.append(_row("kl", 7, 0.85, False))  # no baseline at seed 7: not compared, not counted
    return rows


NOT_CONVERGED_2_OF_9 = (
    "Not evidence of a converged comparison: 2 of 9 compared runs had not converged (late slope ≥ 1.0 "
    "points per 10% of the run, learning rate above 5% of its peak at the end, or fewer than 10 epochs); "
    "train longer (train.epochs=auto)."
)


def test_verdict_says_how_many_compared_runs_had_not_converged():
    rows = _rows({"student": [True, True, False], "kl": [True, False, True], "cos": [True, True, True]})
    text = verdict(paired_difference(rows))
    assert text.endswith(" " + NOT_CONVERGED_2_OF_9)  # the baseline's seed 2 counted once, for kl and cos
    assert text.count("Not evidence of a converged comparison") == 1


def test_verdict_is_silent_when_every_compared_run_converged_or_none_records_it():
    converged = _rows({"student": [True] * 3, "kl": [True] * 3, "cos": [True] * 3})
    unknown = _rows({"student": [None] * 3, "kl": [None] * 3, "cos": [None] * 3})
    for rows in (converged, unknown):
        text = verdict(paired_difference(rows))
        assert "converged" not in text and text.startswith("The best setting, KL")


def test_aggregate_counts_converged_runs_per_group():
    rows = _rows({"student": [True, True, False], "kl": [True, None, True], "cos": [None] * 3})
    cells = {g.setting.objective: g.converged for g in aggregate(rows)}
    assert cells == {"student": "2/3", "kl": "2/3 (1 unknown)", "cos": None, "teacher": "0/1"}
    kl = next(g for g in aggregate(rows) if g.setting.objective == "kl")
    assert kl.n == 4  # seed 7's run is in the group, and its False flag in the count


def test_run_summary_shows_converged_column_rule_and_verdict():
    flags = {"student": [True, False, True], "kl": [False, True, True]}
    results = [_row(o, s, 0.8 + 0.01 * (o == "kl") + 0.001 * s, f) for o, fs in flags.items() for s, f in enumerate(fs)]
    text = format_summary(summarise([(r.objective_name, r) for r in results]))
    assert "| student (cnn3) | 3 | 2/3 |" in text and "| kl (cnn3) | 3 | 2/3 |" in text
    assert f"Converged: {RULE}." in text
    assert "Not evidence of a converged comparison: 2 of 6 compared runs had not converged" in text
    old = [dataclasses.replace(r, convergence=None) for r in results]  # results.json before this
    text = format_summary(summarise([(r.objective_name, r) for r in old]))
    assert "| student (cnn3) | 3 | – |" in text and "Converged:" not in text and "Not evidence" not in text


def test_nan_late_slope_of_a_short_run_is_not_converged():
    ev = evidence([0.1, 0.2], best_epoch=2, lr_end_ratio=0.0)
    assert math.isnan(ev["late_slope_pts"]) and ev["converged"] is False


def test_budget_check_by_hand():
    ok = budget_check(0.7855, 0.7865, 150)
    assert (ok.epochs_2x, round(ok.gain_pts, 6), ok.converged) == (300, 0.1, True)
    short = budget_check(0.7285, 0.7865, 100)
    assert round(short.gain_pts, 6) == 5.8 and short.converged is False


def test_a_recipe_with_a_budget_check_trains_the_student_alone_twice_as_long(tmp_path, monkeypatch):
    d = tiny(tmp_path, epochs=3)
    recipe = Study(base={"data": d["data"], "train": d["train"]}, seeds=[0], budget_check=True)
    monkeypatch.setattr(convergence, "BUDGET_GAIN", -100.0)  # any gain fails: the verdict must say so
    summary = run(recipe, out=tmp_path / "job")
    b = summary.budget_check
    twice, once = read_result(tmp_path / "job" / "student-2x-s0"), read_result(tmp_path / "job" / "student-s0")
    assert (b.epochs, b.epochs_2x, twice.epochs) == (3, 6, 6)
    assert b.val == once.val_accuracy and b.val_2x == twice.val_accuracy
    assert "Budget check: the student alone trained 6 instead of 3 epochs" in format_summary(summary)
    # a failed check is part of the verdict (the one paragraph users read), a passed one is not
    assert b.converged is False and "the budget check failed: twice the epochs gained" in summary.verdict
    # `run --no-budget-check` skips a recipe's check; asked of a recipe without the student alone, one sentence
    skipped = run(recipe, out=tmp_path / "job2", budget_check=False)
    assert skipped.budget_check is None and not (tmp_path / "job2" / "student-2x-s0").exists()
    kl_only = Study(base=recipe.base, seeds=[0], objectives=[{"loss": "kl", "alpha": 0.5}])
    teacher = str(tmp_path / "job" / "student-s0" / "model.ckpt")
    with pytest.warns(GeodistillWarning, match="The recipe has no student-alone objective .* add one"):
        run(kl_only, out=tmp_path / "job3", teacher=teacher, budget_check=True)
