"""Several teachers behind one student: fold teachers train on the right images, out-of-fold caches
hold only the images their teacher never saw, an ensemble equals the stated mean of its members,
and the run records every teacher. Tiny synthetic runs (16 px, 2 epochs)."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
import torch

from geodistill.analysis.stats import paired_difference
from geodistill.analysis.verdict import setting_label
from geodistill.config import Study, build_study
from geodistill.config.run import build_config
from geodistill.core.errors import GeodistillError
from geodistill.data.folds import make_folds
from geodistill.data.prepare import prepare_data
from geodistill.data.transforms import Normalizer, apply_view
from geodistill.engine.api import distill, train
from geodistill.results import read_result
from geodistill.study.plan import plan
from geodistill.study.recipe import run
from geodistill.teachers.combine import EnsembleSource, OutOfFoldSource
from geodistill.teachers.sets import load_teachers, teacher_source
from log_capture import captured_log
from results_helpers import result


def spec(tmp: Path, **over) -> dict:
    d = {
        "data": {"dataset": "synthetic", "size": 16, "n_per_class": 12, "cache_dir": str(tmp / "cache")},
        "train": {"model": "cnn3", "epochs": 2, "batch_size": 16, "progress": False},
        "out": str(tmp / "runs"),
    }
    for k, v in over.items():
        d.setdefault(k, {}).update(v)
    return d


@pytest.fixture(scope="module")
def work(tmp_path_factory) -> Path:
    tmp = tmp_path_factory.mktemp("sources")
    for k in (0, 1):  # two fold teachers (folds=2) and two full-data teachers (seeds 0, 1)
        train(build_config(spec(tmp, data={"folds": 2, "hold_out": k})), tmp / f"fold{k}", role="teacher")
        train(build_config(spec(tmp, train={"seed": k})), tmp / f"seed{k}", role="teacher")
    return tmp


def test_a_fold_teacher_trains_on_the_training_split_minus_its_fold(work):
    full = prepare_data(build_config(spec(work)))
    fold = make_folds(full.labels, full.train, 2, seed=0)
    for k in (0, 1):
        mine = prepare_data(build_config(spec(work, data={"folds": 2, "hold_out": k})))
        assert np.array_equal(mine.train, np.sort(full.train[fold != k]))
        assert np.array_equal(mine.val, full.val) and np.array_equal(mine.test, full.test)
    with pytest.raises(GeodistillError, match="go together"):
        build_config(spec(work, data={"folds": 2}))


def test_out_of_fold_caches_hold_only_images_their_teacher_never_saw(work):
    cfg = build_config(
        spec(
            work,
            distill={"teacher": [str(work / f"fold{k}" / "model.ckpt") for k in (1, 0)], "ensemble": "out_of_fold"},
        )
    )
    data = prepare_data(cfg)
    src, seconds = teacher_source(cfg, data, load_teachers(cfg, data), feats=False)
    assert isinstance(src, OutOfFoldSource) and seconds is not None and seconds > 0
    for k, cache in enumerate(src.sources):
        seen_by_k = prepare_data(build_config(spec(work, data={"folds": 2, "hold_out": k}))).train
        assert (cache.rows[seen_by_k] == -1).all()  # no answer for an image teacher k trained on
        assert set(np.flatnonzero(cache.rows >= 0)) == set(data.train[src.fold_of[data.train] == k])
    z, _ = src(data.train, torch.zeros(len(data.train), dtype=torch.long), feats=False)
    assert z.shape == (len(data.train), len(data.classes)) and torch.isfinite(z).all()


def test_ensemble_answer_is_the_mean_of_its_teachers_logits(work):
    paths = [str(work / f"seed{k}" / "model.ckpt") for k in (0, 1)]
    cfg = build_config(spec(work, distill={"teacher": paths}))
    data = prepare_data(cfg)
    src, _ = teacher_source(cfg, data, load_teachers(cfg, data), feats=False)
    assert isinstance(src, EnsembleSource) and src.how == "logits"
    idx, views = np.sort(data.train)[:10], torch.arange(10) % 8
    singles = []
    for p in paths:
        one = build_config(spec(work, distill={"teacher": p}))
        singles.append(teacher_source(one, data, load_teachers(one, data), feats=False)[0](idx, views)[0])
    assert torch.allclose(src(idx, views, feats=False)[0], (singles[0] + singles[1]) / 2)
    with pytest.raises(GeodistillError, match="single teacher"):
        teacher_source(cfg, data, load_teachers(cfg, data), feats=True)


def test_view_mean_reads_every_view_of_the_image_from_one_cache(work):
    path = str(work / "seed0" / "model.ckpt")
    one = build_config(spec(work, distill={"teacher": path}))
    cfg = build_config(spec(work, distill={"teacher": path, "view_mean": True}))
    data = prepare_data(cfg)
    cache, _ = teacher_source(one, data, load_teachers(one, data), feats=False)
    src, seconds = teacher_source(cfg, data, load_teachers(cfg, data), feats=False)
    assert seconds is None  # the same cache, reused
    idx = np.sort(data.train)[:4]
    per_view = torch.stack([cache(idx, torch.full((4,), v))[0] for v in range(8)])
    assert torch.allclose(src(idx, torch.tensor([0, 3, 5, 7]), feats=False)[0], per_view.mean(0), atol=1e-6)


def test_out_of_fold_needs_fold_teachers_covering_every_fold(work):
    seeds = [str(work / f"seed{k}" / "model.ckpt") for k in (0, 1)]
    cfg = build_config(spec(work, distill={"teacher": seeds, "ensemble": "out_of_fold"}))
    data = prepare_data(cfg)
    with pytest.raises(GeodistillError, match="data.folds=K"):
        teacher_source(cfg, data, load_teachers(cfg, data), feats=False)
    one = build_config(spec(work, distill={"teacher": seeds[0], "ensemble": "out_of_fold"}))
    with pytest.raises(GeodistillError, match="K >= 2 fold teachers"):
        teacher_source(one, data, load_teachers(one, data), feats=False)
    twice = [str(work / "fold0" / "model.ckpt")] * 2
    cfg = build_config(spec(work, distill={"teacher": twice, "ensemble": "out_of_fold"}))
    with pytest.raises(GeodistillError, match="once each"):
        teacher_source(cfg, data, load_teachers(cfg, data), feats=False)
    folds = [str(work / f"fold{k}" / "model.ckpt") for k in (0, 1)]
    cfg = build_config(spec(work, data={"split_seed": 3}, distill={"teacher": folds, "ensemble": "out_of_fold"}))
    with pytest.raises(GeodistillError, match="split_seed"):
        teacher_source(cfg, prepare_data(cfg), load_teachers(cfg, prepare_data(cfg)), feats=False)
    # a fold-reduced student would be folded differently: teacher k could label images it trained on
    cfg = build_config(
        spec(work, data={"folds": 2, "hold_out": 0}, distill={"teacher": folds, "ensemble": "out_of_fold"})
    )
    with pytest.raises(GeodistillError, match="unset data.folds"):
        teacher_source(cfg, prepare_data(cfg), load_teachers(cfg, prepare_data(cfg)), feats=False)


def test_a_student_distils_from_out_of_fold_teachers_and_records_them(work):
    folds = [str(work / f"fold{k}" / "model.ckpt") for k in (0, 1)]
    cfg = build_config(spec(work, distill={"teacher": folds, "ensemble": "out_of_fold", "loss": "kl", "alpha": 0.5}))
    res = distill(cfg, work / "oof-student")
    assert res.teacher == folds and res.ok and str(res.method) == "2 out-of-fold teachers"
    assert json.loads((work / "oof-student" / "results.json").read_text())["teacher"] == folds


def test_methods_are_separate_settings_in_tables_and_verdicts():
    """One loss at one α/T with one teacher and with an ensemble: two settings, each paired with
    the student alone, each named with its method."""
    rows = []
    for seed, (alone, one, ens) in enumerate([(0.70, 0.71, 0.74), (0.72, 0.72, 0.75), (0.71, 0.73, 0.76)]):
        rows.append(result("student", seed, alone))
        rows.append(result("kl", seed, one, alpha=0.5, T=4.0))
        rows.append(result("kl", seed, ens, alpha=0.5, T=4.0, teachers="ensemble"))
    ens_method = "an ensemble of 3 teachers (mean logits)"
    diffs = {d.setting.method: d for d in paired_difference(rows)}
    assert set(diffs) == {"", ens_method}
    assert diffs[""].mean_diff == pytest.approx(0.01) and diffs[ens_method].mean_diff == pytest.approx(0.04)
    assert setting_label(diffs[ens_method].setting) == "KL (α=0.5, T=4) with an ensemble of 3 teachers (mean logits)"
    assert setting_label(diffs[""].setting) == "KL (α=0.5, T=4)"


def test_a_recipe_trains_the_teacher_sets_its_objectives_ask_for(tmp_path):
    tiny = spec(tmp_path)
    recipe = Study(
        base={"data": tiny["data"], "train": tiny["train"]},
        objectives=[
            {"loss": "student"},
            {"loss": "kl", "alpha": 0.5, "teachers": "ensemble"},
            {"loss": "kl", "alpha": 0.5, "teachers": "out_of_fold"},
        ],
        seeds=[0, 1],
        teacher_seeds=[0, 1],
        folds=2,
    )
    with captured_log() as lines:
        summary = run(recipe, out=tmp_path / "job")
    assert sum("] test accuracy" in line and "[teacher" in line for line in lines) == 4  # each teacher once
    job = tmp_path / "job"
    assert sorted(p.name for p in job.glob("teacher*")) == [
        "teacher-fold0-s0",
        "teacher-fold1-s0",
        "teacher-s0",
        "teacher-s1",
    ]
    labels = [t.label for t in summary.lines]
    assert labels == [
        "teacher",
        "student",
        "kl alpha=0.5 + an ensemble of 2 teachers (mean logits)",
        "kl alpha=0.5 + 2 out-of-fold teachers",
    ]
    oof = json.loads(next(job.glob("kl-a0.5-oof-s0")).joinpath("results.json").read_text())
    assert oof["teacher"] == [str((job / f"teacher-fold{k}-s0" / "model.ckpt").resolve()) for k in (0, 1)]


def test_recipe_objectives_get_their_own_folders_or_a_clear_error(tmp_path):
    tiny = spec(tmp_path)
    recipe = {"base": {"data": tiny["data"], "train": tiny["train"]}, "seeds": [0]}
    same = [{"loss": "kl", "alpha": 0.5, "T": 2.0}, {"loss": "kl", "alpha": 0.5, "T": 4.0}]
    clash = [{"loss": "kl", "alpha": 0.5, "teachers": "one"}, {"loss": "kl", "alpha": 0.5, "teachers": "per_seed"}]
    with pytest.raises(GeodistillError, match="share the run folder 'kl-a0.5-s0'"):
        run(Study(**recipe, objectives=clash), out=tmp_path / "clash")
    assert not (tmp_path / "clash").exists()  # refused before anything trained
    run_names = sorted(j.name for j in plan(Study(**recipe, objectives=same), tmp_path).runs)
    assert run_names == ["kl-a0.5-T2-s0", "kl-a0.5-T4-s0"]  # the T each gives is in its name
    both = [{"loss": "kl", "alpha": 0.5}, {"loss": "kl", "alpha": 0.5, "view_mean": True}]
    teacher = str(tmp_path / "t" / "model.ckpt")
    train(build_config(spec(tmp_path)), tmp_path / "t", role="teacher")
    summary = run(Study(**recipe, objectives=both), out=tmp_path / "tta", teacher=teacher)
    assert sorted(p.name for p in (tmp_path / "tta").glob("kl-*")) == ["kl-a0.5-s0", "kl-a0.5-view_mean-s0"]
    assert [t.label for t in summary.lines][-1] == "kl alpha=0.5 + teacher averaged over 8 views"


def test_an_unknown_teacher_set_in_a_recipe_is_one_sentence():
    with pytest.raises(GeodistillError, match=r"field 'objectives.0.teachers' is invalid: Input should be 'one'"):
        build_study({"objectives": [{"loss": "kl", "teachers": "many"}]})


def test_a_teacher_at_twice_the_students_size_answers_from_its_own_size_exactly(work):
    big = spec(work, data={"size": 32})
    train(build_config(big), work / "t32", role="teacher")
    path = str(work / "t32" / "model.ckpt")
    cfg = build_config(spec(work, distill={"teacher": path, "loss": "kl", "alpha": 0.5}))  # a 16 px student
    data = prepare_data(cfg)
    teachers = load_teachers(cfg, data)
    src, _ = teacher_source(cfg, data, teachers, feats=True)
    idx, views = np.sort(data.train)[:6], torch.tensor([0, 1, 2, 5, 6, 7])
    z, f = src(idx, views)
    model, meta = teachers[0]
    at32 = prepare_data(build_config(big))
    live_in = Normalizer.from_dict(meta["normalizer"])(apply_view(torch.from_numpy(at32.images[idx]), views))
    with torch.no_grad():
        live_z, live_f = model.eval().forward_features(live_in)
    assert data.size == 16 and at32.size == 32
    half = lambda t: t.half().float()  # noqa: E731 - the cache stores fp16
    assert torch.allclose(z, half(live_z), atol=2e-3, rtol=2e-3) and torch.allclose(
        f, half(live_f), atol=2e-3, rtol=2e-3
    )
    res = distill(cfg, work / "s16-from-t32")
    assert res.size == 16 and res.ok
    grid = build_config(spec(work, data={"augment": "dihedral+grid"}, distill={"teacher": path, "loss": "kl"}))
    with pytest.raises(GeodistillError, match="needs data.augment=dihedral"):
        teacher_source(grid, prepare_data(grid), load_teachers(grid, prepare_data(grid)), feats=False)


def _choosing(tmp_path: Path) -> Study:
    """A tiny recipe that chooses between KL and DIST on seed 0, over seeds 0 and 1."""
    tiny = spec(tmp_path)
    return Study(
        base={"data": tiny["data"], "train": tiny["train"]},
        teacher={"train": {"model": "cnn4"}},
        choose_from=[{"loss": "kl", "alpha": 0.5}, {"loss": "dist"}],
        seeds=[0, 1],
    )


def test_a_recipe_chooses_its_method_on_the_validation_split_of_the_first_seed(tmp_path):
    recipe = _choosing(tmp_path)
    summary = run(recipe, out=tmp_path / "job")
    job = tmp_path / "job"
    vals = {name: read_result(job / f"{name}-s0").val_accuracy for name in ("kl-a0.5", "dist")}
    best = max(vals, key=vals.__getitem__)
    other = ({"kl-a0.5", "dist"} - {best}).pop()
    assert (job / f"{best}-s1" / "results.json").is_file() and not (job / f"{other}-s1").exists()
    assert summary.verdict.startswith("Method chosen on the validation split of seed(s) 0: ")
    assert [line.label for line in summary.lines] == [
        "teacher",
        "student",
        "kl alpha=0.5" if best == "kl-a0.5" else "dist",
    ]
    assert [line.n for line in summary.lines][1:] == [2, 2]  # the chosen method over both seeds


def test_a_dry_run_of_a_choosing_recipe_counts_the_screening_then_one_method_and_writes_nothing(tmp_path):
    recipe = _choosing(tmp_path)
    with captured_log() as lines:
        assert run(recipe, out=tmp_path / "job", dry_run=True) is None
    text = "\n".join(lines).splitlines()
    listed = [line.split()[0] for line in text if line.startswith("  ")]
    assert listed == ["teacher-s0", "student-s0", "kl-a0.5-s0", "dist-s0", "student-s1", "kl-a0.5-s1"]
    assert any("6 runs to train" in line for line in text) and not (tmp_path / "job").exists()
