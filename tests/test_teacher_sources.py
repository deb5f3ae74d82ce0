"""Several teachers behind one student: fold teachers train on the right images, out-of-fold caches
hold only the images their teacher never saw, an ensemble equals the stated mean of its members,
and the run records every teacher. Tiny synthetic runs (16 px, 2 epochs)."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
import torch

from geodistill.analysis.stats import paired_difference, setting_label
from geodistill.config.recipes import RECIPES
from geodistill.config.run import build_config
from geodistill.core.errors import GeodistillError
from geodistill.data.folds import make_folds
from geodistill.data.prepare import prepare_data
from geodistill.data.transforms import Normalizer, apply_view
from geodistill.engine.api import distill, train
from geodistill.study.recipe import run
from geodistill.teachers.combine import EnsembleSource, OutOfFoldSource
from geodistill.teachers.sets import load_teachers, teacher_source
from log_capture import captured_log


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
    assert res["teacher"] == folds and res["status"] == "ok" and res["method"] == "2 out-of-fold teachers"
    assert json.loads((work / "oof-student" / "results.json").read_text())["teacher"] == folds


def test_methods_are_separate_settings_in_tables_and_verdicts():
    """One loss at one α/T with one teacher and with an ensemble: two settings, each paired with
    the student alone, each named with its method."""
    rows = []
    for seed, (alone, one, ens) in enumerate([(0.70, 0.71, 0.74), (0.72, 0.72, 0.75), (0.71, 0.73, 0.76)]):
        common = {"dataset": "d", "model": "cnn3", "seed": seed, "role": "student", "status": "ok", "beta": None}
        rows.append({**common, "objective_name": "student", "accuracy": alone})
        rows.append({**common, "objective_name": "kl", "alpha": 0.5, "T": 4.0, "accuracy": one})
        ens_method = "an ensemble of 3 teachers (mean logits)"
        rows.append({**common, "objective_name": "kl", "alpha": 0.5, "T": 4.0, "method": ens_method, "accuracy": ens})
    diffs = {d.get("method") or "": d for d in paired_difference(rows)}
    assert set(diffs) == {"", "an ensemble of 3 teachers (mean logits)"}
    assert diffs[""]["mean_diff"] == pytest.approx(0.01) and diffs[ens_method]["mean_diff"] == pytest.approx(0.04)
    assert setting_label(diffs[ens_method]) == "KL (α=0.5, T=4) with an ensemble of 3 teachers (mean logits)"
    assert setting_label(diffs[""]) == "KL (α=0.5, T=4)"


def test_a_recipe_trains_the_teacher_sets_its_objectives_ask_for(tmp_path, monkeypatch):
    tiny = spec(tmp_path)
    monkeypatch.setitem(
        RECIPES,
        "tiny-sets",
        {
            "base": {"data": tiny["data"], "train": tiny["train"]},
            "teacher": {},
            "student": {},
            "objectives": [
                {"loss": "student"},
                {"loss": "kl", "alpha": 0.5, "teachers": "ensemble"},
                {"loss": "kl", "alpha": 0.5, "teachers": "out_of_fold"},
            ],
            "seeds": [0, 1],
            "teacher_seeds": [0, 1],
            "folds": 2,
        },
    )
    with captured_log() as lines:
        summary = run("tiny-sets", out=tmp_path / "job")
    assert not [line for line in lines if "already finished" in line]  # each teacher set resolved once, not per seed
    job = tmp_path / "job"
    assert sorted(p.name for p in job.glob("teacher*")) == ["teacher", "teacher-fold0", "teacher-fold1", "teacher-s1"]
    labels = [t["label"] for t in summary["table"]]
    assert labels == [
        "teacher",
        "student",
        "kl alpha=0.5 + an ensemble of 2 teachers (mean logits)",
        "kl alpha=0.5 + 2 out-of-fold teachers",
    ]
    oof = json.loads(next(job.glob("kl-a0.5-oof-s0")).joinpath("results.json").read_text())
    assert oof["teacher"] == [str(job / f"teacher-fold{k}" / "model.ckpt") for k in (0, 1)]


def test_recipe_objectives_get_their_own_folders_or_a_clear_error(tmp_path, monkeypatch):
    tiny = spec(tmp_path)
    recipe = {"base": {"data": tiny["data"], "train": tiny["train"]}, "teacher": {}, "student": {}, "seeds": [0]}
    same = [{"loss": "kl", "alpha": 0.5, "T": 2.0}, {"loss": "kl", "alpha": 0.5, "T": 4.0}]
    monkeypatch.setitem(RECIPES, "tiny-clash", {**recipe, "objectives": same})
    with pytest.raises(GeodistillError, match="'kl-a0.5'"):
        run("tiny-clash", out=tmp_path / "clash", teacher=str(tmp_path / "unused.ckpt"))
    assert not (tmp_path / "clash" / "kl-a0.5-s0").exists()  # refused before anything trained
    both = [{"loss": "kl", "alpha": 0.5}, {"loss": "kl", "alpha": 0.5, "view_mean": True}]
    monkeypatch.setitem(RECIPES, "tiny-tta", {**recipe, "objectives": both})
    teacher = str(tmp_path / "t" / "model.ckpt")
    train(build_config(spec(tmp_path)), tmp_path / "t", role="teacher")
    summary = run("tiny-tta", out=tmp_path / "tta", teacher=teacher)
    assert sorted(p.name for p in (tmp_path / "tta").glob("kl-*")) == ["kl-a0.5-s0", "kl-a0.5-view_mean-s0"]
    assert [t["label"] for t in summary["table"]][-1] == "kl alpha=0.5 + teacher averaged over 8 views"


def test_an_unknown_teacher_set_in_a_recipe_is_one_sentence(tmp_path, monkeypatch):
    tiny = spec(tmp_path)
    recipe = {"base": {"data": tiny["data"], "train": tiny["train"]}, "teacher": {}, "student": {}, "seeds": [0]}
    monkeypatch.setitem(RECIPES, "tiny-bad", {**recipe, "objectives": [{"loss": "kl", "teachers": "many"}]})
    with pytest.raises(GeodistillError, match="'teachers' must be one, ensemble or out_of_fold, not 'many'"):
        run("tiny-bad", out=tmp_path / "bad", teacher=str(tmp_path / "unused.ckpt"))


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
    assert res["size"] == 16 and res["status"] == "ok"
    grid = build_config(spec(work, data={"augment": "dihedral+grid"}, distill={"teacher": path, "loss": "kl"}))
    with pytest.raises(GeodistillError, match="needs data.augment=dihedral"):
        teacher_source(grid, prepare_data(grid), load_teachers(grid, prepare_data(grid)), feats=False)
