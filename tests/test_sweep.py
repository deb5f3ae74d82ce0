"""Sweeps end to end on the synthetic set: a thesis-style α sweep (thesis5, 2 seeds) and the loss
ablation, resuming without training, a broken point, a failed teacher, a process pool, a YAML
grid, grid parsing, the report of a real sweep (also in Chromium) and the CLI."""

from __future__ import annotations

import csv
import json
import logging
import os
import re
import shutil
import statistics
import subprocess
import sys
from pathlib import Path

import pytest

import geodistill.engine.api as api
import geodistill.teachers.cache as cache_mod
import geodistill.teachers.sets as teachers_mod
from geodistill.config import Study, load_recipe
from geodistill.config.run import DistillConfig
from geodistill.core.errors import GeodistillError, GeodistillWarning
from geodistill.losses import PRESETS, loss_fragment
from geodistill.report.build import write_report
from geodistill.results import read_result
from geodistill.study.grid import THESIS5, THESIS11, load_sweep_file, parse_grid, sweep_study
from geodistill.study.plan import plan
from geodistill.study.recipe import run as run_recipe
from geodistill.study.runs import failure_result
from geodistill.study.sweep import run_sweep
from kill_hook import kill_env
from log_capture import captured_log

N_PER_CLASS = 30  # 10 classes -> 300 images: 180 train / 60 val / 60 test, at 16 px


def base(tmp: Path) -> dict:
    """Tiny runs on top of the thesis recipe; the role sub-sections pin the teacher and student."""
    return {
        "data": {"dataset": "synthetic", "size": 16, "n_per_class": N_PER_CLASS, "cache_dir": str(tmp / "cache")},
        "train": {"epochs": 2, "batch_size": 32, "progress": False, "patience": None},
        "teacher": {"train": {"model": "cnn4"}},
        "student": {"train": {"model": "cnn3"}},
    }


def _snapshot(folder: Path) -> dict[str, tuple[int, int]]:
    return {
        str(p.relative_to(folder)): (p.stat().st_mtime_ns, p.stat().st_size)
        for p in sorted(folder.rglob("*"))
        if p.is_file()
    }


@pytest.fixture(scope="module")
def work(tmp_path_factory) -> Path:
    return tmp_path_factory.mktemp("sweep")


@pytest.fixture(scope="module")
def alpha_sweep(work):
    """The thesis's n = 5 α sweep (thesis objective, β tied) over 2 seeds, run once."""
    out = work / "alpha"
    sweep = {"recipe": "thesis", "base": base(work), "grid": {"alpha": "thesis5"}, "seeds": [0, 1]}
    with captured_log(logging.DEBUG) as lines:  # DEBUG: the teacher cache hits too
        results = run_sweep(sweep, out)
    return out, sweep, results, lines


# ---------------------------------------------------------------- the α sweep


def test_thesis_alpha_sweep_end_to_end(alpha_sweep, work):
    out, _, results, lines = alpha_sweep
    names = [r.run_id for r in results]
    assert names == [f"{n}-s{s}" for n in ["student"] + [f"thesis-a{a:g}" for a in THESIS5] for s in (0, 1)]
    assert all(r.status == "ok" for r in results)
    for r in results:
        assert (r.model, r.epochs, r.size) == ("cnn3", 2, 16)  # base overrides the recipe's 40 epochs
        if r.objective_name == "student":
            assert r.role == "student" and r.alpha is None and r.teacher is None
        else:  # every student of a seed distils from that seed's teacher
            assert r.role == "distilled" and r.beta is None and r.T == 4.0
            assert r.teacher == str((out / f"teacher-s{r.seed}" / "model.ckpt").resolve())
    assert [r.alpha for r in results if r.seed == 1 and r.alpha is not None] == THESIS5
    # one teacher per seed, trained once; one cache per teacher, built once and then only read
    for seed in (0, 1):
        t = json.loads((out / f"teacher-s{seed}" / "results.json").read_text())
        assert (t["role"], t["model"], t["seed"], t["epochs"]) == ("teacher", "cnn4", seed, 2)
    assert sum("test accuracy" in line and line.startswith("[teacher-") for line in lines) == 2
    assert sum(line.startswith("teacher cache built") for line in lines) == 2
    assert sum(line.startswith("teacher cache hit") for line in lines) == 10  # one per distilled student
    assert len(list((work / "cache" / "teacher").iterdir())) == 2
    conv = sum(r.converged for r in results)  # 2-epoch points: the closing line counts them
    assert any(f"\nsweep: {conv} of 12 finished points converged" in line for line in lines)
    meta = json.loads((out / "sweep.json").read_text())
    assert meta["points"] == names and meta["teachers"] == ["teacher-s0", "teacher-s1"] and meta["seeds"] == [0, 1]


def test_rerun_of_finished_sweep_trains_and_writes_nothing(alpha_sweep, monkeypatch):
    out, sweep, results, _ = alpha_sweep
    before = _snapshot(out)

    def forbidden(*a, **k):
        raise AssertionError("a finished sweep must not train, decode data or build caches")

    for target, name in (
        (api, "fit"),
        (api, "prepare_data"),
        (teachers_mod, "build_teacher_cache"),
        (cache_mod, "build_teacher_cache"),
    ):
        monkeypatch.setattr(target, name, forbidden)
    with captured_log() as lines:
        again = run_sweep(sweep, out)
    assert [r.metrics for r in again] == [r.metrics for r in results]
    assert "sweep: 12 points, 12 already done, 0 to run" in lines
    assert _snapshot(out) == before  # not even sweep.json is rewritten
    assert not any("reused as trained" in line for line in lines)


def test_a_rerun_whose_config_changed_reuses_the_runs_and_says_so(alpha_sweep, monkeypatch, tmp_path):
    out, sweep, results, _ = alpha_sweep
    copy = tmp_path / "alpha"
    shutil.copytree(out, copy)  # the teachers' paths differ in the copy: not a change of config
    monkeypatch.setattr(api, "fit", lambda *a, **k: pytest.fail("a finished run must not train again"))
    changed = {**sweep, "base": {**sweep["base"], "train": {**sweep["base"]["train"], "lr": 0.5}}}
    with captured_log() as lines:
        again = run_sweep(changed, copy)
    assert [r.metrics for r in again] == [r.metrics for r in results]
    stale = [line for line in lines if "reused as trained" in line]
    assert len(stale) == 1 and stale[0].startswith(f"12 finished run(s) in {copy} are reused as trained")
    assert "e.g. student-s0 (train.lr: 0.5 planned, 0.01 stored); delete their folders" in stale[0]


def test_report_of_the_alpha_sweep(alpha_sweep, work):
    out, _, results, _ = alpha_sweep
    html_path, md_path = write_report(out, work / "alpha-report")
    html, md = html_path.read_text(encoding="utf-8"), md_path.read_text(encoding="utf-8")
    # the α table: student alone + the 5 α values, each the mean over the 2 seeds
    title = "### The thesis objective, T=4 on synthetic, student cnn3: n = 5 α values, mean ± sd over seeds"
    assert title in md
    table = md.split(title)[1].split("\n\n")[1].splitlines()
    assert table[0] == "| α | seeds | accuracy, β=α (nuclear norm) | macro F1, β=α (nuclear norm) |"
    assert [line.split(" | ")[0] for line in table[2:]] == [
        "| student alone",
        "| 0.1",
        "| 0.2",
        "| 0.3",
        "| 0.4",
        "| 0.5",
    ]
    with open(work / "alpha-report" / "alpha_table.csv", newline="") as fh:
        long = list(csv.DictReader(fh))
    assert [float(r["alpha"]) for r in long] == THESIS5 and {r["n"] for r in long} == {"2"}
    for r in long:
        accs = [x.metrics.accuracy for x in results if x.alpha == float(r["alpha"])]
        assert float(r["accuracy_mean"]) == pytest.approx(statistics.fmean(accs))
        assert float(r["accuracy_std"]) == pytest.approx(statistics.stdev(accs))
        assert r["nuclear"] == "True"
    # teacher against student: cnn4 teacher, cnn3 student alone, the best distilled setting
    with open(work / "alpha-report" / "teacher_student.csv", newline="") as fh:
        ts = list(csv.DictReader(fh))
    assert [(r["who"], r["model"]) for r in ts] == [
        ("teacher", "cnn4"),
        ("student alone", "cnn3"),
        ("distilled (best)", "cnn3"),
    ]
    teacher_params = json.loads((out / "teacher-s0" / "results.json").read_text())["cost"]["params"]
    assert float(ts[1]["params_ratio"]) == pytest.approx(teacher_params / results[0].cost.params)
    assert '<table class="teacher-student">' in html and html.count('<table class="alpha-table">') == 1
    # the verdict is computed from the paired statistics of the 5 settings over 2 seeds
    verdict = re.search(r'<p class="verdict">(.*?)</p>', html, re.S).group(1)
    assert verdict.startswith("The best setting, the thesis objective (α=") and "over 2 seeds" in verdict
    assert "Of the 5 settings tried" in verdict
    figures = {p.name for p in (work / "alpha-report" / "figures").glob("*.png")}
    assert {"alpha.png", "compression.png"} <= figures and any(f.startswith("confusion_") for f in figures)
    assert "Failed runs" not in html


CHROMIUM = Path("/usr/bin/chromium")


@pytest.mark.skipif(not CHROMIUM.exists(), reason="/usr/bin/chromium is absent")
def test_real_sweep_report_renders_in_chromium(alpha_sweep, work, tmp_path):
    html_path = work / "alpha-report" / "report.html"
    if not html_path.is_file():
        write_report(alpha_sweep[0], work / "alpha-report")
    cmd = [
        str(CHROMIUM),
        "--headless",
        "--no-sandbox",
        "--disable-gpu",
        "--disable-dev-shm-usage",
        "--no-first-run",
        "--disable-background-networking",
        "--disable-component-update",
        "--disable-sync",
        f"--user-data-dir={tmp_path / 'profile'}",
        "--virtual-time-budget=5000",
        "--dump-dom",
        html_path.as_uri(),
    ]
    dom = subprocess.run(cmd, capture_output=True, text=True, timeout=180).stdout
    shutil.rmtree(tmp_path / "profile", ignore_errors=True)
    for cls in ("teacher-student", "alpha-table", "aggregate", "paired", "results"):
        assert f'<table class="{cls}"' in dom, cls
    assert dom.count('<img class="plot"') == len(list((html_path.parent / "figures").glob("*.png")))


# ---------------------------------------------------------------- ablation, failures


def test_ablation_with_a_given_teacher_shares_its_cache(alpha_sweep, work):
    teacher = alpha_sweep[0] / "teacher-s0" / "model.ckpt"
    out = work / "ablation"
    with captured_log() as lines:
        results = run_sweep(
            {"recipe": "thesis", "base": base(work), "ablation": True, "seeds": [0]},
            out,
            teacher_ckpt=str(teacher),
        )
    assert [r.objective_name for r in results] == list(PRESETS) and all(r.ok for r in results)
    assert not list(out.glob("teacher-*"))  # the given teacher is used, none trained
    assert all(r.teacher == str(teacher) for r in results if r.objective_name != "student")
    thesis = next(r for r in results if r.objective_name == "thesis")
    kl = next(r for r in results if r.objective_name == "kl")
    thesis_recipe = load_recipe("thesis")
    recipe = next(o for o in [*thesis_recipe.objectives, *thesis_recipe.choose_from] if o.loss == "kl")
    assert kl.config["distill"]["alpha"] == recipe.alpha != DistillConfig().alpha  # the recipe's α
    assert recipe.teachers == "ensemble" and kl.teacher == str(teacher)  # its α, not its teacher set
    assert "‖W₁‖*" in thesis.objective and "DKD" in next(r for r in results if r.objective_name == "dkd").objective
    # same teacher, same data: the α sweep's cache is found, not rebuilt
    assert not any(line.startswith("teacher cache built") for line in lines)
    html_path, _ = write_report(out)
    html = html_path.read_text(encoding="utf-8")
    assert f"Of the {len(PRESETS) - 1} settings tried" in html and "No α sweep among these runs" in html


def test_broken_points_are_recorded_and_the_others_complete(alpha_sweep, work, monkeypatch):
    teacher = str(alpha_sweep[0] / "teacher-s0" / "model.ckpt")
    sweep = {
        "recipe": "thesis",
        "base": base(work),
        "seeds": [0],
        "grid": {"alpha": [0.3], "loss": ["thesis", "kl", "ce:1e39 + kl"]},
    }  # 1e39·CE overflows: inf loss
    out = work / "broken"
    real_train = api.train

    def crash_kl(cfg, run_dir=None, **kw):
        if Path(run_dir).name == "kl-a0.3-s0":
            raise RuntimeError("simulated crash")
        return real_train(cfg, run_dir, **kw)

    monkeypatch.setattr(api, "train", crash_kl)
    results = run_sweep(sweep, out, teacher_ckpt=teacher)
    status = {r.run_id: r.status for r in results}
    spec_name = f"{loss_fragment('ce:1e39 + kl', {'alpha': 0.3})}-s0"
    assert status == {"student-s0": "ok", "thesis-a0.3-s0": "ok", "kl-a0.3-s0": "failed", spec_name: "failed"}
    kl = json.loads((out / "kl-a0.3-s0" / "failed.json").read_text())
    assert kl["error"] == "RuntimeError: simulated crash"
    assert {k: kl[k] for k in ("role", "objective_name", "alpha", "beta", "T", "seed", "dataset", "model")} == {
        "role": "distilled",
        "objective_name": "kl",
        "alpha": 0.3,
        "beta": None,
        "T": 4.0,
        "seed": 0,
        "dataset": "synthetic",
        "model": "cnn3",
    }
    assert kl["objective"] == "L = 0.7·CE + 0.3·KL(T=4)" and kl["teacher"] == teacher
    spec = json.loads((out / spec_name / "failed.json").read_text())
    assert spec["error"].startswith("GeodistillError: Loss term") and spec["objective_name"] == "ce:1e39 + kl"

    html_path, _ = write_report(out)
    html = html_path.read_text(encoding="utf-8")
    assert "<h2>Failed runs</h2>" in html
    assert "<code>kl-a0.3-s0</code> (distilled cnn3, KL (α=0.3, T=4), seed 0): RuntimeError: simulated crash" in html
    assert f"<code>{spec_name}</code>" in html and "became inf" in html
    with open(html_path.parent / "aggregate.csv", newline="") as fh:
        kl_row = next(r for r in csv.DictReader(fh) if r["objective_name"] == "kl")
    assert (kl_row["alpha"], kl_row["n"], kl_row["n_failed"]) == ("0.3", "0", "1")  # grouped with its setting

    # the next run retries only the failures: the crash is gone, the overflow is not
    monkeypatch.setattr(api, "train", real_train)
    kept = {n: (out / n / "results.json").stat().st_mtime_ns for n in ("student-s0", "thesis-a0.3-s0")}
    again = {r.run_id: r.status for r in run_sweep(sweep, out, teacher_ckpt=teacher)}
    assert again == {"student-s0": "ok", "thesis-a0.3-s0": "ok", "kl-a0.3-s0": "ok", spec_name: "failed"}
    assert not (out / "kl-a0.3-s0" / "failed.json").exists()
    assert kept == {n: (out / n / "results.json").stat().st_mtime_ns for n in kept}


def test_a_failed_teacher_fails_its_students_only(work, monkeypatch):
    real_train = api.train

    def no_teacher(cfg, run_dir=None, role=None, **kw):
        if role == "teacher":
            raise RuntimeError("teacher exploded")
        return real_train(cfg, run_dir, role=role, **kw)

    monkeypatch.setattr(api, "train", no_teacher)
    out = work / "no-teacher"
    results = run_sweep({"recipe": "thesis", "base": base(work), "grid": {"alpha": [0.3]}, "seeds": [0]}, out)
    assert [(r.run_id, r.status) for r in results] == [("student-s0", "ok"), ("thesis-a0.3-s0", "failed")]
    assert results[1].error == "teacher teacher-s0 failed: RuntimeError: teacher exploded"
    t = json.loads((out / "teacher-s0" / "failed.json").read_text())
    assert (t["role"], t["model"], t["seed"]) == ("teacher", "cnn4", 0)


# ---------------------------------------------------------------- YAML grid, process pool


def test_yaml_grid_runs_on_a_process_pool(alpha_sweep, work, tmp_path):
    teacher = str(alpha_sweep[0] / "teacher-s0" / "model.ckpt")
    f = tmp_path / "sweep.yaml"
    b = base(work)
    f.write_text(f"""recipe: thesis
base:
  data: {json.dumps(b["data"])}
  train: {{epochs: 2, batch_size: 32, progress: false, patience: null}}
grid:
  alpha: [0, 0.4]
  T: [2, 4]
seeds: [0]
""")
    sweep = load_sweep_file(f)
    study = sweep_study(sweep).model_copy(update={"teacher_ckpt": teacher})
    names = [p.name for p in plan(study, work / "pool").runs]
    assert names == ["student-s0", "thesis-a0-T2-s0", "thesis-a0-T4-s0", "thesis-a0.4-T2-s0", "thesis-a0.4-T4-s0"]
    results = run_sweep(sweep, work / "pool", workers=2, teacher_ckpt=teacher)
    assert [r.run_id for r in results] == names and all(r.ok for r in results)
    # at α = 0 (β tied = 0) the objective is CE alone and the engine calls the run a student;
    # the sweep still records the coordinates it asked for, so the point stays on its α curve
    assert [(r.role, r.alpha, r.beta, r.T) for r in results[1:]] == [
        ("student", 0.0, None, 2.0),
        ("student", 0.0, None, 4.0),
        ("distilled", 0.4, None, 2.0),
        ("distilled", 0.4, None, 4.0),
    ]
    assert {r.machine["threads"] for r in results} == {1}  # train.threads, whatever the number of workers


def test_a_worker_that_dies_is_recorded_and_the_sweep_returns(alpha_sweep, work, monkeypatch):
    teacher = str(alpha_sweep[0] / "teacher-s0" / "model.ckpt")
    sweep = {"recipe": "thesis", "base": base(work), "grid": {"alpha": [0.3]}, "seeds": [0]}
    out = work / "killed"
    for k, v in kill_env(1).items():  # tests/hooks: each worker SIGKILLs itself after step 1
        monkeypatch.setenv(k, v)
    results = run_sweep(sweep, out, workers=2, teacher_ckpt=teacher)
    assert [r.status for r in results] == ["failed", "failed"]
    assert all(r.error.startswith("worker process failed: BrokenProcessPool") for r in results)
    assert json.loads((out / "student-s0" / "failed.json").read_text())["role"] == "student"
    monkeypatch.delenv("GEODISTILL_KILL_AT_STEP")
    again = run_sweep(sweep, out, teacher_ckpt=teacher)
    assert [r.status for r in again] == ["ok", "ok"] and not list(out.glob("*/failed.json"))


def test_sweep_file_errors(tmp_path):
    f = tmp_path / "s.yaml"
    f.write_text("grid: {alpha: [0.1, 1.5]}\n")
    with pytest.raises(GeodistillError, match=r"grid, field 'alpha': alpha value 1.5 is not a number in \[0, 1\]"):
        load_sweep_file(f)
    f.write_text("grids: {alpha: [0.1]}\n")
    with pytest.raises(GeodistillError, match="key 'grids' is unknown"):
        load_sweep_file(f)
    f.write_text("grid: [0.1, 0.2]\n")
    with pytest.raises(GeodistillError, match="must map field names to lists"):
        load_sweep_file(f)
    f.write_text("grid: {alpha: thesis11}\nseeds: [0, x]\n")
    with pytest.raises(GeodistillError, match="'seeds' must be a list of integers"):
        load_sweep_file(f)
    f.write_text("grid: {alpha: thesis11, beta: [0, tied]}\n")
    assert load_sweep_file(f)["grid"] == {"alpha": THESIS11, "beta": [0.0, None]}


# ---------------------------------------------------------------- grids and plans (no training)


def test_named_grids():
    assert THESIS11 == [0.0, 0.05, 0.1, 0.15, 0.2, 0.25, 0.3, 0.35, 0.4, 0.45, 0.5]
    assert parse_grid(["alpha=thesis11"]) == {"alpha": THESIS11}
    assert parse_grid(["alpha=thesis5"]) == {"alpha": [0.1, 0.2, 0.3, 0.4, 0.5]}


def test_explicit_grids():
    assert parse_grid(["alpha=[0.1, 0.3, 0.1]", "beta=[0, 0.001, tied]", "T=4"]) == {
        "alpha": [0.1, 0.3],
        "beta": [0.0, 0.001, None],
        "T": [4.0],
    }
    assert parse_grid(["loss=[kl, kl+cos]"]) == {"loss": ["kl", "kl+cos"]}
    assert parse_grid(["loss=ce:0.5 + kl:0.5@T=2"]) == {"loss": ["ce:0.5 + kl:0.5@T=2"]}


@pytest.mark.parametrize(
    "entry,message",
    [
        ("alpha", "Grid entry 'alpha' is not name=values"),
        ("gamma=[1]", "Grid entry 'gamma=\\[1\\]': 'gamma' is not a sweepable field"),
        ("alpha=[0.1, 2]", "Grid entry 'alpha=\\[0.1, 2\\]': alpha value 2 is not a number in \\[0, 1\\]"),
        ("alpha=[0.1,", "Grid entry 'alpha=\\[0.1,': cannot read"),
        ("alpha=[]", "Grid entry 'alpha=\\[\\]' has no values"),
        ("alpha=[x]", "alpha value 'x' is not a number"),
        ("beta=[-1]", "beta value -1 is not a number >= 0"),
        ("beta=thesis5", "the named grid 'thesis5' is a list of α values"),
        ("T=[0]", "T value 0 is not a number > 0"),
        ("loss=[kl, bogus]", "Grid entry 'loss=\\[kl, bogus\\]': loss 'bogus' is neither a preset"),
    ],
)
def test_bad_grid_entries(entry, message):
    with pytest.raises(GeodistillError, match=message):
        parse_grid([entry])


def test_same_field_twice_is_an_error():
    with pytest.raises(GeodistillError, match="Grid entry 'alpha=0.2': 'alpha' is given twice"):
        parse_grid(["alpha=0.1", "alpha=0.2"])


def _plan(sweep: dict, teacher: str | None = None):
    study = sweep_study(sweep)
    return plan(study.model_copy(update={"teacher_ckpt": teacher}) if teacher else study, Path("/out"))


def test_plan_precedence_and_roles():
    tiny = Study(
        base={"train": {"lr": 0.003}},
        teacher={"train": {"model": "cnn4", "epochs": 40}},
        student={"train": {"model": "cnn3", "epochs": 40}},
    )
    p = _plan(
        {
            "recipe": tiny,
            "seeds": [3],
            "grid": {"alpha": [0.1]},
            "base": {"train": {"epochs": 2}, "teacher": {"train": {"epochs": 5}}},
            "student": {"train": {"lr": 0.01}},
        }
    )
    (t,), (alone, point) = p.teachers, p.runs
    assert (t.name, t.spec["train"]["model"], t.spec["train"]["epochs"], t.spec["train"]["seed"]) == (
        "teacher-s3",
        "cnn4",
        5,
        3,
    )
    assert (point.spec["train"]["model"], point.spec["train"]["epochs"], point.spec["train"]["lr"]) == ("cnn3", 2, 0.01)
    assert t.spec["train"]["lr"] == 0.003  # the student-only override stays with the students
    assert (alone.name, alone.teachers, point.teachers) == ("student-s3", (), ("teacher-s3",))
    assert point.spec["distill"] == {"loss": "thesis", "alpha": 0.1, "teacher": "/out/teacher-s3/model.ckpt"}
    with pytest.warns(GeodistillWarning, match="teacher and student are both the default cnn3"):
        _plan({"grid": {"alpha": [0.1]}})  # no recipe, no teacher model: distilling cnn3 into cnn3


def test_plan_ablation_grid_overlap_and_unused_coordinates():
    tiny = Study(teacher={"train": {"model": "cnn4"}}, objectives=[{"loss": "kl+cos", "alpha": 0.7, "T": 2.0}])
    p = _plan({"recipe": tiny, "ablation": True, "grid": {"alpha": [0.7], "loss": ["kl+cos", "dkd", "student"]}})
    names = [x.name for x in p.runs]
    # the recipe gives kl+cos α=0.7, T=2 in the ablation; dkd and the student ignore α, so the
    # grid's dkd and student points are the ablation's and run once
    assert names == [
        "student-s0",
        "kl-s0",
        "cos-s0",
        "kl_cos-a0.7-T2-s0",
        "thesis-s0",
        "dkd-s0",
        "dist-s0",
        "kl_feat-s0",
        "kl_cos-a0.7-s0",
    ]
    assert p.runs[3].spec["distill"] == {
        "loss": "kl+cos",
        "alpha": 0.7,
        "T": 2.0,
        "teacher": "/out/teacher-s0/model.ckpt",
    }
    assert [t.name for t in p.teachers] == ["teacher-s0"] and p.teachers[0].spec["train"]["model"] == "cnn4"


def test_plan_one_teacher_per_dataset_and_seed(tmp_path):
    p = _plan(
        {
            "recipe": "thesis",
            "datasets": ["synthetic", {"dataset": "eurosat", "root": "/data/eurosat"}],
            "seeds": [0, 1],
            "grid": {"alpha": [0.2, 0.4]},
        }
    )
    assert [t.name for t in p.teachers] == [
        "teacher-synthetic-s0",
        "teacher-synthetic-s1",
        "teacher-eurosat-s0",
        "teacher-eurosat-s1",
    ]
    eu = [x for x in p.runs if x.name.startswith("eurosat-")]
    assert len(eu) == 6 and {x.spec["data"]["root"] for x in eu} == {"/data/eurosat"}
    assert {t for x in eu for t in x.teachers} == {"teacher-eurosat-s0", "teacher-eurosat-s1"}
    (tmp_path / "t.ckpt").write_bytes(b"")
    with pytest.raises(GeodistillError, match="A teacher checkpoint serves one dataset"):
        run_sweep(
            {"datasets": ["synthetic", "eurosat"], "grid": {"alpha": [0.2]}},
            tmp_path,
            teacher_ckpt=str(tmp_path / "t.ckpt"),
        )
    with pytest.raises(GeodistillError, match="lists a dataset twice"):
        _plan({"datasets": ["synthetic", "synthetic"], "grid": {"alpha": [0.2]}})
    with pytest.raises(GeodistillError, match="The sweep has no points"):
        _plan({"seeds": [0]})
    with pytest.raises(GeodistillError, match="run student-s0, field 'train.epochs'"):
        _plan({"base": {"train": {"epochs": 0}}, "grid": {"alpha": [0.2]}})


def test_labels_and_failure_rows():
    assert loss_fragment("thesis", {"alpha": 0.05, "beta": None}) == "thesis-a0.05-btied"
    assert loss_fragment("kl+cos", {"alpha": 0.3, "T": 2.0}) == "kl_cos-a0.3-T2"
    a, b = loss_fragment("ce:0.5 + kl:0.5", {}), loss_fragment("ce:0.5 + kl:0.5@T=2", {})
    assert re.fullmatch(r"[A-Za-z0-9._=-]+", a) and a != b
    row = failure_result(
        {
            "data": {"dataset": "synthetic"},
            "train": {"seed": 2, "label_smoothing": 0.1},
            "distill": {"loss": "thesis", "alpha": 0.2, "beta": 0.0},
        },
        "/x/thesis-a0.2-b0-s2",
        ValueError("bad"),
    )
    assert (row.run_id, row.status, row.error, row.role, row.objective_name) == (
        "thesis-a0.2-b0-s2", "failed", "ValueError: bad", "distilled", "thesis"
    )  # fmt: skip
    assert (row.alpha, row.beta, row.T, row.seed, row.model) == (0.2, 0.0, 4.0, 2, "cnn3")
    # the formula a finished run of it would record, label smoothing included
    assert row.objective == "L = 0.2·softCE(T=4) + 0.8·CE(ls=0.1) + 0·‖W₁‖*"


def test_run_sweep_argument_errors(tmp_path):
    with pytest.raises(GeodistillError, match="--workers must be at least 1"):
        run_sweep({"grid": {"alpha": [0.1]}}, tmp_path / "x", workers=0)
    with pytest.raises(GeodistillError, match="Teacher checkpoint .*missing.ckpt does not exist"):
        run_sweep({"grid": {"alpha": [0.1]}}, tmp_path / "x", teacher_ckpt=str(tmp_path / "missing.ckpt"))
    assert not (tmp_path / "x").exists()  # nothing written


# ---------------------------------------------------------------- the command line


def _cli(*args: str, cwd: Path) -> subprocess.CompletedProcess:
    env = dict(os.environ, OMP_NUM_THREADS="1")
    return subprocess.run(
        [sys.executable, "-m", "geodistill.cli", *args], cwd=cwd, env=env, capture_output=True, text=True, timeout=300
    )


def test_cli_sweep_then_report(tmp_path):
    out = tmp_path / "cli-sweep"
    r = _cli(
        "sweep",
        "--recipe",
        "demo",
        "--grid",
        "alpha=[0.3]",
        "--seeds",
        "0",
        "--size",
        "16",
        "--set",
        "data.n_per_class=20",
        "--set",
        "train.epochs=1",
        "--set",
        "train.progress=false",
        "--set",
        f"data.cache_dir={tmp_path / 'cache'}",
        "--out",
        str(out),
        cwd=tmp_path,
    )
    assert r.returncode == 0, f"exit {r.returncode}\n{r.stdout[-1500:]}\n{r.stderr[-3000:]}"
    assert f"geodistill report {out}" in r.stdout
    for name in ("teacher-s0", "student-s0", "thesis-a0.3-s0"):
        res = json.loads((out / name / "results.json").read_text())
        assert res["status"] == "ok" and res["epochs"] == 1 and res["size"] == 16
    r = _cli("report", str(out), cwd=tmp_path)
    assert r.returncode == 0 and (out / "report" / "report.html").is_file() and (out / "report" / "report.md").is_file()
    bad = _cli("sweep", "--grid", "alpha=[2]", "--out", str(tmp_path / "bad"), cwd=tmp_path)
    assert bad.returncode == 2
    assert bad.stderr.strip() == "error: Grid entry 'alpha=[2]': alpha value 2 is not a number in [0, 1]."
    assert not (tmp_path / "bad").exists()


def test_a_sweep_over_alpha_with_a_3_teacher_ensemble_gives_the_recipe_run_numbers(work):
    b = base(work)
    recipe = Study(
        base={"data": b["data"], "train": {**b["train"], "epochs": 1}},
        teacher={"train": {"model": "cnn4"}},
        student={"train": {"model": "cnn3"}},
        objectives=[{"loss": "student"}, {"loss": "kl", "alpha": 0.5, "teachers": "ensemble"}],
        teacher_seeds=[0, 1, 2],
        seeds=[0],
    )
    run_recipe(recipe, out=work / "ens-recipe")
    results = run_sweep(
        {"recipe": recipe, "grid": {"alpha": [0.3, 0.5], "loss": ["kl"]}, "teachers": "ensemble"}, work / "ens-sweep"
    )
    assert [r.run_id for r in results] == ["student-s0", "kl-a0.3-ens-s0", "kl-a0.5-ens-s0"]
    assert sorted(p.name for p in (work / "ens-sweep").glob("teacher-*")) == ["teacher-s0", "teacher-s1", "teacher-s2"]
    for name in ("teacher-s0", "teacher-s1", "teacher-s2", "student-s0", "kl-a0.5-ens-s0"):
        a, b_ = read_result(work / "ens-recipe" / name), read_result(work / "ens-sweep" / name)
        assert a.metrics.confusion_matrix == b_.metrics.confusion_matrix and a.val_accuracy == b_.val_accuracy
        assert [h.train_loss for h in a.history] == [h.train_loss for h in b_.history]
    kl = read_result(work / "ens-sweep" / "kl-a0.5-ens-s0")
    assert str(kl.method) == "an ensemble of 3 teachers (mean logits)" and len(kl.teacher) == 3
