"""Files geodistill writes get the mode the user's umask gives a new file (0644 under umask 022),
still written atomically: results, summaries, checkpoints, CSVs, caches, reports, exports."""

from __future__ import annotations

import os
import stat
from collections.abc import Iterator
from pathlib import Path

import pytest

from geodistill.core.atomic import write_text
from geodistill.deploy import export
from geodistill.report.build import write_report
from geodistill.study.recipe import run
from geodistill.study.sweep import run_sweep

TINY = {
    "data": {"n_per_class": 12, "size": 16},
    "train": {"epochs": 1, "batch_size": 32, "progress": False},
}


@pytest.fixture
def umask_022() -> Iterator[None]:
    old = os.umask(0o022)
    try:
        yield
    finally:
        os.umask(old)


def _modes(folder: Path) -> dict[str, int]:
    return {str(p.relative_to(folder)): stat.S_IMODE(p.stat().st_mode) for p in folder.rglob("*") if p.is_file()}


def test_train_run_sweep_report_and_export_write_0644_under_umask_022(tmp_path, umask_022):
    cache = str(tmp_path / "cache")
    over = {**TINY, "data": {**TINY["data"], "cache_dir": cache}}
    run("demo", overrides=over, seeds=[0], out=tmp_path / "run")  # train: teacher and students
    sweep = {
        "recipe": "demo",
        "base": {**over, "student": {"train": {"model": "cnn3"}}},
        "grid": {"alpha": [0.3], "loss": ["kl"]},
        "seeds": [0],
    }
    run_sweep(sweep, tmp_path / "sweep", teacher_ckpt=str(tmp_path / "run" / "teacher-s0" / "model.ckpt"))
    write_report(tmp_path / "run")
    write_report(tmp_path / "sweep")
    export(tmp_path / "run" / "student-s0" / "model.ckpt", "onnx", out=tmp_path / "export" / "student.onnx")

    modes = _modes(tmp_path)
    for must in (
        "run/teacher-s0/results.json",
        "run/teacher-s0/model.ckpt",
        "run/teacher-s0/metrics.csv",
        "run/summary.json",
        "run/summary.md",
        "run/latency.json",
        "run/report/report.html",
        "run/report/report.md",
        "run/report/table.csv",
        "sweep/sweep.json",
        "sweep/kl-a0.3-s0/results.json",
        "sweep/report/report.html",
        "export/student.onnx",
    ):
        assert must in modes, must
    assert any(name.startswith("cache/teacher/") for name in modes)  # the teacher cache is covered too
    wrong = {name: oct(mode) for name, mode in modes.items() if mode != 0o644}
    assert not wrong


def test_atomic_writes_follow_the_umask(tmp_path):
    old = os.umask(0o027)
    try:
        path = write_text(tmp_path / "a.txt", "x")
    finally:
        os.umask(old)
    assert stat.S_IMODE(path.stat().st_mode) == 0o640
    assert [p.name for p in tmp_path.iterdir()] == ["a.txt"]  # no temp file left behind
