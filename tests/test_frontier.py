"""The accuracy-latency frontier: the Pareto sets and the budget pick on hand-made students, the
method chosen on validation, repeated splits with a teacher per split, and a tiny frontier end
to end on the synthetic set."""

from __future__ import annotations

import json
import math
import os
import subprocess
import sys

import pytest

from geodistill.config import Student, Study
from geodistill.frontier.build import choose
from geodistill.frontier.pareto import alone, fits, pareto, pick
from geodistill.frontier.spec import FrontierSpec
from geodistill.results import Metrics, RunResult, write_result
from geodistill.study.plan import plan
from results_helpers import cand

STUDENTS = [
    cand("tiny", 0.05, 0.60, 0.66),
    cand("small", 0.20, 0.70, 0.74),
    cand("slow-and-worse", 0.40, 0.65, 0.69),  # dominated by small on both curves
    cand("mid", 0.50, 0.80, 0.81, kb=900),
    cand("big", 1.50, 0.88, 0.89),
]


def test_the_pareto_sets_of_both_curves():
    assert [c.student for c in pareto(STUDENTS)] == ["tiny", "small", "mid", "big"]
    assert [c.student for c in pareto(STUDENTS, acc=alone)] == ["tiny", "small", "mid", "big"]
    tie = [cand("a", 0.1, 0.7, 0.7), cand("b", 0.1, 0.7, 0.7)]
    assert len(pareto(tie)) == 2  # equal students do not dominate each other


def test_the_pick_under_a_latency_or_size_budget():
    assert pick(STUDENTS, max_latency_ms=1.0).student == "mid"
    assert pick(STUDENTS, max_latency_ms=1.0, max_size_kb=500).student == "small"
    assert pick(STUDENTS, max_latency_ms=1.0, acc=alone).student == "mid"
    assert pick(STUDENTS).student == "big" and pick(STUDENTS, max_latency_ms=0.01) is None
    assert fits(STUDENTS[0], 0.05, 100.0) and not fits(STUDENTS[0], 0.049)


def _spec(**over) -> FrontierSpec:
    d = {
        "base": {"data": {"dataset": "synthetic", "n_per_class": 12, "train_ratio": 0.5}, "train": {"epochs": 2}},
        "teacher": {"data": {"size": 16}, "train": {"model": "cnn4"}},
        "students": [Student.parse("cnn3@16"), Student.parse("cnn3x2@16")],
        "methods": ["kl", "dist", "ens"],
        "seeds": [0, 1],
        "teacher_seeds": [0, 1],
    }
    return FrontierSpec(**{**d, **over})


def test_repeated_splits_tie_the_split_seed_to_the_run_seed_with_a_teacher_per_split(tmp_path):
    p = plan(_spec().final(Student.parse("cnn3@16"), _spec().objectives()[2]), tmp_path)
    assert [t.name for t in p.teachers] == [
        "teacher-split0-s0",
        "teacher-split0-s1",
        "teacher-split1-s0",
        "teacher-split1-s1",
    ]
    for t in p.teachers:  # every teacher sees its own split only: split seed from the run, seed from the set
        split, seed = (int(x) for x in t.name.removeprefix("teacher-split").split("-s"))
        assert (t.spec["data"]["split_seed"], t.spec["train"]["seed"]) == (split, seed)
    for job in p.runs:
        seed = int(job.name.rsplit("-s", 1)[1])
        assert job.spec["data"]["split_seed"] == seed and job.spec["train"]["seed"] == seed
        assert all(f"teacher-split{seed}-" in str(t) for t in job.teachers)  # distils from its split's teachers
    assert [j.name for j in p.runs] == [
        "cnn3@16-student-s0", "cnn3@16-student-s1", "cnn3@16-kl-a0.9-T4-ens-s0", "cnn3@16-kl-a0.9-T4-ens-s1"
    ]  # fmt: skip
    assert p.runs[0].spec["data"]["size"] == 16 and p.teachers[0].spec["data"]["size"] == 16
    assert Study(splits="per_seed", seeds=[3]).splits == "per_seed"


def test_each_student_gets_the_method_its_validation_split_prefers(tmp_path):
    spec = _spec()
    screening = plan(spec.screening(), tmp_path)
    val = {"kl": {"cnn3@16": 0.5, "cnn3x2@16": 0.7}, "dist": {"cnn3@16": 0.6, "cnn3x2@16": 0.4},
           "ens": {"cnn3@16": 0.55, "cnn3x2@16": 0.65}}  # fmt: skip
    for job in screening.runs:
        student, rest = job.name.split("-", 1)
        method = "ens" if "-ens-" in rest else rest.split("-")[0]
        v = 0.3 if method == "student" else val[method][student]
        r = RunResult(job.name, "distilled", "synthetic", "cnn3", objective_name=method, seed=0,
                      metrics=Metrics(accuracy=0.1), val_accuracy=v)  # fmt: skip
        write_result(tmp_path / job.name, r)
    chosen = choose(spec, screening, tmp_path)
    assert chosen["cnn3@16"].loss == "dist" and chosen["cnn3x2@16"].loss == "kl"
    assert chosen["cnn3x2@16"].teachers is None  # plain KL, not the ensemble (0.65 < 0.7)
    record = json.loads((tmp_path / "frontier-choice.json").read_text())
    assert record["cnn3@16"]["chosen"] == "dist T=1" and record["cnn3@16"]["mean_best_val"]["dist T=1"] == 0.6


def test_geodistill_frontier_end_to_end(tmp_path):
    """The command: a teacher it trains per split, two students, the budget pick exported."""
    pytest.importorskip("onnxruntime")
    args = ["frontier", "--students", "cnn3x0.5@16,cnn3@16", "--methods", "kl", "--teacher", "cnn4@16"]
    args += ["--epochs", "2", "--workers", "1", "--out", "f", "--max-latency-ms", "1"]
    args += ["--set", "data.n_per_class=12", "--set", "train.batch_size=32", "--set", "train.progress=false"]
    env = dict(os.environ, OMP_NUM_THREADS="1", GEODISTILL_CACHE=str(tmp_path / "cache"))
    dry = subprocess.run([sys.executable, "-m", "geodistill.cli", *args, "--dry-run"], capture_output=True,
                         text=True, env=env, cwd=tmp_path, timeout=600)  # fmt: skip
    assert dry.returncode == 0 and "cnn3@16-kl-a0.9-T4-s1" in dry.stderr + dry.stdout and not (tmp_path / "f").exists()
    r = subprocess.run([sys.executable, "-m", "geodistill.cli", *args], capture_output=True, text=True, env=env,
                       cwd=tmp_path, timeout=600)  # fmt: skip
    assert r.returncode == 0, r.stderr[-2000:]
    f = json.loads((tmp_path / "f" / "frontier.json").read_text())
    assert [c["student"] for c in f["students"]] == ["cnn3x0.5@16", "cnn3@16"]
    assert all(c["int8_latency_ms"] > 0 and c["n_seeds"] == 2 for c in f["students"])
    assert f["pick"]["int8_latency_ms"] <= 1.0 and (tmp_path / f["exported"]).is_file()
    assert set(f["pareto_distilled"]) <= {"cnn3x0.5@16", "cnn3@16"} and f["pareto_distilled"]
    assert "| student | params |" in r.stderr + r.stdout and (tmp_path / "f" / "frontier.png").is_file()
    page = (tmp_path / "f" / "frontier.html").read_text()
    assert '<section id="frontier">' in page and '<section id="results">' in page and "data:image/png" in page
    assert not math.isnan(f["teacher_acc"])


def test_claim_seeds_go_to_the_pareto_members_only(tmp_path, monkeypatch):
    """Students on either Pareto set (found on the first seeds) get the claim seeds; a dominated
    one does not. Training and latency are stand-ins: runs get hand-made results."""
    import geodistill.frontier.run as run
    from results_helpers import result

    acc = {"cnn3x0.5": 0.6, "cnn3": 0.55, "cnn3x2": 0.8}  # cnn3 is slower than x0.5 and worse
    ms = {"cnn3x0.5@16": 0.1, "cnn3@16": 0.2, "cnn3x2@16": 0.3}

    def execute(p, out, opts):
        for job in [*p.teachers, *p.runs]:
            seed, model = job.spec["train"]["seed"], job.spec["train"]["model"]
            name = "student" if job.label == "student" else "teacher" if job in p.teachers else "kl"
            a = 0.9 if name == "teacher" else acc[model] + (0.02 if name == "kl" else 0.0)
            r = result(name, seed, a, role="teacher" if name == "teacher" else None, model=model, run_id=job.name,
                       val_accuracy=a)  # fmt: skip
            write_result(out / job.name, r)

    monkeypatch.setattr(run, "execute", execute)
    monkeypatch.setattr(run, "cost", lambda s, ckpt, out, threads: {"params": 1, "flops": 1, "size_kb": 1.0,
                        "int8_latency_ms": ms[s.name], "fp32_latency_ms": ms[s.name]})  # fmt: skip
    monkeypatch.setattr(run, "_write", lambda result, spec, out: None)
    students = [Student.parse(s) for s in ms]
    spec = _spec(students=students, methods=["kl"], seeds=[0, 1], claim_seeds=[2], teacher_seeds=[0])
    f = run.frontier(spec, tmp_path)
    claimed = sorted(p.name for p in tmp_path.glob("*-s2") if not p.name.startswith("teacher"))
    assert claimed == ["cnn3x0.5@16-kl-a0.9-T4-s2", "cnn3x0.5@16-student-s2", "cnn3x2@16-kl-a0.9-T4-s2",
                       "cnn3x2@16-student-s2"]  # fmt: skip
    assert {c.student: c.n_seeds for c in f.candidates} == {"cnn3x0.5@16": 3, "cnn3@16": 2, "cnn3x2@16": 3}
    assert f.pareto_distilled == ["cnn3x0.5@16", "cnn3x2@16"] and math.isclose(f.candidates[0].gain_mean, 0.02)
