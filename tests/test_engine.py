"""Training engine: teacher, student alone and distillation on the synthetic set; the teacher
cache's exactness and invalidation; resume after a kill; DDP on 2 CPU processes."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import torch
from torch import nn

from geodistill.config.run import build_config
from geodistill.core.errors import GeodistillError
from geodistill.data.transforms import NUM_VIEWS, Normalizer, apply_view
from geodistill.data.views import ViewSet
from geodistill.engine import trainer as trainer_mod
from geodistill.engine.api import distill, evaluate, prepare_data, train
from geodistill.engine.batches import epoch_order
from geodistill.engine.precision import auto_rule, decide
from geodistill.engine.trainer import lr_factor
from geodistill.models import build_model
from geodistill.models.checkpoint import load_classifier
from geodistill.results import RunResult, read_result
from geodistill.teachers.cache import build_teacher_cache
from kill_hook import kill_env
from log_capture import captured_log

N_PER_CLASS = 60  # 10 classes -> 600 images: 360 train / 120 val / 120 test


def cfg_dict(tmp: Path, **over) -> dict:
    d = {
        "data": {"dataset": "synthetic", "size": 32, "n_per_class": N_PER_CLASS, "cache_dir": str(tmp / "cache")},
        "train": {"model": "cnn3", "epochs": 6, "batch_size": 32, "lr": 3e-3, "progress": False},
        "out": str(tmp / "runs"),
    }
    for k, v in over.items():
        d.setdefault(k, {}).update(v)
    return d


@pytest.fixture(scope="module")
def work(tmp_path_factory) -> Path:
    return tmp_path_factory.mktemp("engine")


@pytest.fixture(scope="module")
def teacher(work) -> RunResult:
    cfg = build_config(cfg_dict(work, train={"model": "cnn4", "epochs": 10}))
    return train(cfg, work / "teacher", role="teacher")


def test_teacher_learns_far_above_chance(teacher, work):
    assert teacher.status == "ok" and teacher.role == "teacher"
    assert teacher.metrics.accuracy > 0.45  # chance is 0.10
    assert (work / "teacher" / "model.ckpt").is_file()
    assert not (work / "teacher" / "last.ckpt").exists()  # resumable state removed once finished
    assert len(teacher.history) == 10 and teacher.metrics.n == 120


def test_student_alone_and_distilled_learn(teacher, work):
    alone = train(build_config(cfg_dict(work)), work / "alone")
    kd = distill(
        build_config(
            cfg_dict(work, distill={"teacher": str(work / "teacher" / "model.ckpt"), "loss": "kl+cos", "alpha": 0.5})
        ),
        work / "kd",
    )
    assert alone.role == "student" and kd.role == "distilled"
    assert alone.metrics.accuracy > 0.3 and kd.metrics.accuracy > 0.3
    assert "KL" in kd.objective and kd.teacher_cache_s > 0  # built by this run
    again = distill(
        build_config(
            cfg_dict(
                work,
                distill={"teacher": str(work / "teacher" / "model.ckpt"), "loss": "kl", "alpha": 0.5},
                train={"epochs": 1},
            )
        ),
        work / "kd2",
    )
    assert again.teacher_cache_s is None  # reused, not rebuilt


def test_same_seed_same_numbers(work):
    a = train(build_config(cfg_dict(work, train={"epochs": 2})), work / "rep_a")
    b = train(build_config(cfg_dict(work, train={"epochs": 2})), work / "rep_b")
    assert a.history[-1].train_loss == b.history[-1].train_loss
    assert a.metrics.confusion_matrix == b.metrics.confusion_matrix


def _data_and_teacher(work: Path):
    """The synthetic training data, the trained teacher, its normaliser and the train indices."""
    data = prepare_data(build_config(cfg_dict(work)))
    model, meta = load_classifier(work / "teacher" / "model.ckpt")
    return data, model, Normalizer.from_dict(meta["normalizer"]), np.sort(data.train)


def test_cache_equals_on_the_fly_teacher_for_every_view(teacher, work):
    data, model, norm, idx = _data_and_teacher(work)
    cache = build_teacher_cache(
        model,
        data.images,
        idx,
        norm,
        data_key=data.key,
        size=32,
        views=ViewSet(),
        cache_root=work / "cache",
    )
    pick = idx[:5]
    x = torch.from_numpy(np.asarray(data.images[pick]))
    for v in range(NUM_VIEWS):
        views = torch.full((len(pick),), v)
        with torch.no_grad():
            z, f = model.forward_features(norm(apply_view(x, v)))
        cz, cf = cache(pick, views)
        assert torch.allclose(cz, z, atol=2e-2, rtol=1e-2), v
        assert torch.allclose(cf, f, atol=2e-2, rtol=1e-2), v
    mixed = torch.tensor([0, 3, 5, 7, 2])
    with torch.no_grad():
        z_mixed = model(norm(apply_view(x, mixed)))
    assert torch.allclose(cache(pick, mixed)[0], z_mixed, atol=2e-2, rtol=1e-2)


def test_cache_invalidated_by_teacher_or_data_change(teacher, work):
    data, model, norm, idx = _data_and_teacher(work)
    kw = dict(size=32, views=ViewSet(), cache_root=work / "cache2")
    first = build_teacher_cache(model, data.images, idx, norm, data_key=data.key, **kw)
    again = build_teacher_cache(model, data.images, idx, norm, data_key=data.key, **kw)
    assert again.path == first.path
    with torch.no_grad():
        next(model.parameters()).add_(0.01)
    changed_teacher = build_teacher_cache(model, data.images, idx, norm, data_key=data.key, **kw)
    assert changed_teacher.path != first.path
    changed_data = build_teacher_cache(model, data.images, idx, norm, data_key=data.key + "x", **kw)
    assert changed_data.path not in (first.path, changed_teacher.path)
    assert not list((work / "cache2" / "teacher").glob(".*tmp*"))  # no half-built caches left


def test_grid_cache_answers_each_crop_view_exactly(teacher, work):
    """A view id of the 8 x (2x2 crops) set is one crop then one dihedral view; the cache holds
    the teacher's answer for exactly those pixels, under its own key."""
    data, model, norm, idx = _data_and_teacher(work)
    vs = ViewSet(crop_grid=2, crop_pad=3)
    kw = dict(data_key=data.key, size=32, cache_root=work / "cache3")
    cache = build_teacher_cache(model, data.images, idx[:6], norm, views=vs, **kw)
    assert cache.logits.shape[:2] == (6, 32) and cache.n_views == 32
    plain = build_teacher_cache(model, data.images, idx[:6], norm, views=ViewSet(), **kw)
    assert plain.path != cache.path
    x = torch.from_numpy(np.asarray(data.images[idx[:6]]))
    padded = torch.nn.functional.pad(x.float(), (3, 3, 3, 3), mode="reflect").to(x.dtype)
    views = torch.tensor([0, 8 + 1, 16 + 2, 24 + 7, 5, 31])  # crops (0,0) (0,6) (6,0) (6,6) (0,0) (6,6)
    offsets = [(0, 0), (0, 6), (6, 0), (6, 6), (0, 0), (6, 6)]
    ref = torch.stack(
        [
            apply_view(padded[i : i + 1, :, r : r + 32, c : c + 32], int(v) % 8)[0]
            for i, ((r, c), v) in enumerate(zip(offsets, views))
        ]
    )
    with torch.no_grad():
        z = model(norm(ref))
    assert torch.allclose(cache(idx[:6], views)[0], z, atol=2e-2, rtol=1e-2)


def test_objective_needing_teacher_without_one_is_refused(work):
    with pytest.raises(GeodistillError, match="teacher"):
        train(build_config(cfg_dict(work, distill={"loss": "kl"})), work / "noteacher")


def test_nan_loss_names_term_and_step(work):
    cfg = build_config(cfg_dict(work, train={"lr": 1e6, "epochs": 3, "optimizer": "sgd"}))
    with pytest.raises(GeodistillError, match=r"Loss term 'ce' became .* at epoch \d+, step \d+"):
        train(cfg, work / "nan")


def test_evaluate_matches_training_test_metrics(teacher, work):
    m = evaluate(work / "teacher" / "model.ckpt", build_config(cfg_dict(work)), split="test")
    assert m.accuracy == pytest.approx(teacher.metrics.accuracy)
    assert m.correct == teacher.metrics.correct and set(m.correct) <= {"0", "1"}
    assert len(m.correct) == m.n and m.correct.count("1") / m.n == pytest.approx(m.accuracy)


def test_epoch_order_is_seeded_sharded_and_disjoint():
    train_idx = np.arange(100)
    a = epoch_order(train_idx, 0, 3, 0, 2, 10)
    b = epoch_order(train_idx, 0, 3, 1, 2, 10)
    assert [x.tolist() for x in a] == [x.tolist() for x in epoch_order(train_idx, 0, 3, 0, 2, 10)]
    flat_a, flat_b = np.concatenate(a), np.concatenate(b)
    assert len(a) == 5 and not set(flat_a) & set(flat_b)
    assert not np.array_equal(np.concatenate(epoch_order(train_idx, 0, 4, 0, 2, 10)), flat_a)


def test_lr_schedule_warmup_then_cosine():
    assert lr_factor(0, 100, 10) == pytest.approx(0.1)
    assert lr_factor(9, 100, 10) == pytest.approx(1.0)
    assert lr_factor(10, 100, 10) == pytest.approx(1.0)
    assert lr_factor(55, 100, 10) == pytest.approx(0.5)
    assert lr_factor(100, 100, 10) == pytest.approx(0.0)


def _cli(args: list[str], env: dict | None = None, **kw) -> subprocess.CompletedProcess:
    e = dict(os.environ, OMP_NUM_THREADS="1", **(env or {}))
    return subprocess.run(
        [sys.executable, "-m", "geodistill.cli", *args], capture_output=True, text=True, env=e, timeout=600, **kw
    )


def _train_args(work: Path, name: str, epochs: int = 3) -> list[str]:
    return [
        "train",
        "--dataset",
        "synthetic",
        "--model",
        "cnn3",
        "--epochs",
        str(epochs),
        "--out",
        str(work / "runs"),
        "--name",
        name,
        "--set",
        f"data.n_per_class={N_PER_CLASS}",
        "--set",
        f"data.cache_dir={work / 'cache'}",
        "--set",
        "train.batch_size=32",
        "--set",
        "train.checkpoint_every=4",
        "--set",
        "train.progress=false",
    ]


def test_resume_after_kill_equals_uninterrupted_run(work):
    full = _cli(_train_args(work, "full"))
    assert full.returncode == 0, full.stderr
    killed = _cli(_train_args(work, "killed"), env=kill_env(17))  # SIGKILL mid-epoch 2 (11 steps/epoch)
    assert killed.returncode != 0
    runs = work / "runs"
    assert (runs / "killed" / "last.ckpt").is_file() and not (runs / "killed" / "results.json").exists()
    resumed = _cli(_train_args(work, "killed") + ["--resume"])
    assert resumed.returncode == 0, resumed.stderr
    a, b = read_result(runs / "full"), read_result(runs / "killed")
    assert a.metrics.confusion_matrix == b.metrics.confusion_matrix
    assert [h.train_loss for h in a.history] == pytest.approx([h.train_loss for h in b.history], rel=1e-6)
    # the resumed process's wall time misses the epochs before the kill; train_time_s keeps them
    assert b.train_time_s == pytest.approx(sum(h.time_s for h in b.history)) and len(b.history) == 3
    sa = torch.load(runs / "full" / "model.ckpt", weights_only=True)["state_dict"]
    sb = torch.load(runs / "killed" / "model.ckpt", weights_only=True)["state_dict"]
    assert all(torch.equal(sa[k], sb[k]) for k in sa)


def test_cli_error_is_one_sentence_without_traceback(work):
    r = _cli(["train", "--dataset", "folder", "--root", str(work / "does-not-exist")])
    assert r.returncode == 2
    assert "Traceback" not in r.stderr and str(work / "does-not-exist") in r.stderr


def test_ddp_two_cpu_processes_trains_and_checkpoints(work):
    r = _cli(
        _train_args(work, "ddp", epochs=2) + ["--devices", "2", "--strategy", "ddp", "--set", "train.accelerator=cpu"],
        cwd=work,
    )
    assert r.returncode == 0, r.stderr[-3000:]
    res = read_result(work / "runs" / "ddp")
    assert res.metrics.n == 120  # all test images counted once across both processes
    one = evaluate(work / "runs" / "ddp" / "model.ckpt")  # one process: each image's hit in the same place
    assert res.metrics.correct == one.correct and len(one.correct) == 120
    assert (work / "runs" / "ddp" / "model.ckpt").is_file()
    lines = r.stdout.splitlines()  # rank 0 alone prints: the run header and the result once each
    assert sum(line.startswith("[ddp] cnn3 on synthetic") for line in lines) == 1, r.stdout
    assert sum(line.startswith("[ddp] test accuracy") for line in lines) == 1, r.stdout
    said = [line for line in lines if not line.startswith("warning: ")]
    assert len(said) == len(set(said)), r.stdout  # nothing but warnings comes from the second rank
    assert "GLOBAL_RANK: 1" not in r.stdout + r.stderr  # nor Lightning's per-process banner


def test_bf16_mixed_precision_trains(work):
    res = train(build_config(cfg_dict(work, train={"epochs": 2, "precision": "bf16-mixed"})), work / "bf16")
    assert np.isfinite(res.history[-1].train_loss) and res.config["train"]["precision"] == "bf16-mixed"


def _cpu_units(monkeypatch, has: bool) -> None:
    monkeypatch.setattr(torch.cuda, "is_available", lambda: False)
    monkeypatch.setattr(torch.cpu, "_is_amx_tile_supported", lambda: has, raising=False)
    monkeypatch.setattr(torch.cpu, "_is_avx512_bf16_supported", lambda: False, raising=False)


PLAIN = nn.Sequential(nn.Conv2d(3, 4, 3), nn.Flatten(), nn.Linear(4, 2))
DEPTHWISE = nn.Sequential(nn.Conv2d(3, 3, 3, groups=3), nn.Flatten(), nn.Linear(3, 2))


def test_auto_precision_is_a_rule_of_the_hardware_and_the_model(monkeypatch):
    t = build_config({"train": {"precision": "auto"}}).train
    _cpu_units(monkeypatch, True)
    assert auto_rule(t, PLAIN)[0] == "bf16-mixed" and auto_rule(t, DEPTHWISE)[0] == "32-true"
    assert auto_rule(t, build_model("cnn3", 3))[0] == "bf16-mixed"
    assert auto_rule(t, build_model("mobilenet_v2", 3))[0] == "32-true"  # depthwise: slower in bf16 on a CPU
    _cpu_units(monkeypatch, False)
    assert auto_rule(t, PLAIN) == ("32-true", "a CPU without bf16 units")
    monkeypatch.setattr(torch.cuda, "is_available", lambda: True)
    monkeypatch.setattr(torch.cuda, "is_bf16_supported", lambda: True)
    assert auto_rule(t, DEPTHWISE)[0] == "bf16-mixed"
    fixed = t.model_copy(update={"precision": "bf16"})
    assert decide(fixed, PLAIN, None).value == "bf16-mixed" and not decide(fixed, PLAIN, None).auto


def test_auto_precision_is_decided_once_per_study_folder_whatever_the_host(monkeypatch, tmp_path):
    t = build_config({"train": {"precision": "auto", "model": "cnn3"}}).train
    _cpu_units(monkeypatch, True)
    first = decide(t, PLAIN, tmp_path)
    assert first.value == "bf16-mixed" and (tmp_path / "precision" / "cnn3.json").is_file()
    _cpu_units(monkeypatch, False)  # another host (or process) whose rule says fp32 reads the study's decision
    later = decide(t, PLAIN, tmp_path)
    assert later == first and later.file == str(tmp_path / "precision" / "cnn3.json")
    assert decide(t, PLAIN, tmp_path / "other").value == "32-true"  # another study decides for itself


def test_auto_precision_keeps_what_a_resumed_checkpoint_trained_with(monkeypatch, tmp_path):
    _cpu_units(monkeypatch, False)
    t = build_config({"train": {"precision": "auto"}}).train
    assert decide(t, PLAIN, None, tmp_path / "last.ckpt").value == "32-true"  # nothing to resume
    torch.save({"config": {"train": {"precision": "bf16-mixed"}}}, tmp_path / "last.ckpt")
    assert decide(t, PLAIN, tmp_path, tmp_path / "last.ckpt").value == "bf16-mixed"
    fixed = t.model_copy(update={"precision": "32-true"})
    assert decide(fixed, PLAIN, None, tmp_path / "last.ckpt").value == "32-true"  # only "auto" is kept
    (tmp_path / "last.ckpt").write_bytes(b"PK\x03\x04 cut short")
    with pytest.raises(GeodistillError, match=r"last.ckpt could not be read .*delete it to train"):
        decide(t, PLAIN, None, tmp_path / "last.ckpt")


def test_resuming_from_an_unreadable_last_ckpt_says_so_in_one_sentence(work):
    run = work / "runs" / "cut"
    run.mkdir(parents=True)
    (run / "last.ckpt").write_bytes(b"not a checkpoint")
    r = _cli(_train_args(work, "cut") + ["--resume"])
    assert r.returncode != 0 and "Traceback" not in r.stderr
    assert f"{run / 'last.ckpt'} could not be read" in r.stderr and "delete it" in r.stderr


def test_auto_precision_is_recorded_as_what_ran_and_resumed_as_it_ran(work, monkeypatch):
    _cpu_units(monkeypatch, True)
    res = train(build_config(cfg_dict(work, train={"epochs": 1, "precision": "auto"})), work / "auto" / "a")
    assert res.config["train"]["precision"] == "bf16-mixed"
    assert res.precision.value == "bf16-mixed" and res.precision.auto
    assert res.precision.file == str(work / "auto" / "precision" / "cnn3.json")
    # a run stopped after epoch 1 and resumed in a folder and on a host where auto would say fp32 keeps bf16
    cfg = build_config(cfg_dict(work, train={"epochs": 2, "precision": "auto"}))
    end_epoch = trainer_mod.Trainer.end_epoch

    def stop_after_first(self, *a):  # a kill after epoch 1's checkpoint
        end_epoch(self, *a)
        raise KeyboardInterrupt

    monkeypatch.setattr(trainer_mod.Trainer, "end_epoch", stop_after_first)
    with pytest.raises(KeyboardInterrupt):
        train(cfg, work / "auto-resumed" / "r")
    _cpu_units(monkeypatch, False)
    (work / "auto-resumed" / "precision" / "cnn3.json").unlink()
    monkeypatch.setattr(trainer_mod.Trainer, "end_epoch", end_epoch)
    res = train(cfg, work / "auto-resumed" / "r", resume=True)
    assert res.config["train"]["precision"] == "bf16-mixed" and "kept from" in res.precision.why


def test_crop_augmentation_falls_back_to_teacher_on_the_fly_and_says_so(teacher, work):
    cfg = build_config(
        cfg_dict(
            work,
            data={"augment": "dihedral+crop"},
            train={"epochs": 1},
            distill={"teacher": str(work / "teacher" / "model.ckpt"), "loss": "kl"},
        )
    )
    with captured_log() as lines:
        res = distill(cfg, work / "crop")
    assert any("on the fly" in l for l in lines) and res.teacher_cache_s is None


def test_split_files_define_the_split(work):
    from geodistill.data import load_dataset

    ds = load_dataset("synthetic", size=32, n_per_class=N_PER_CLASS)
    files = {}
    for i, name in enumerate(("train", "val", "test")):
        f = work / f"{name}.txt"
        f.write_text("\n".join(ds.paths[i::3]) + "\n")
        files[name] = str(f)
    data = prepare_data(build_config(cfg_dict(work, data={"split_files": files})))
    assert sorted(data.test.tolist()) == list(range(2, len(ds.paths), 3))
    (work / "test.txt").write_text("forest/does-not-exist.png\n")
    with pytest.raises(GeodistillError, match="does-not-exist"):
        prepare_data(build_config(cfg_dict(work, data={"split_files": files})))
