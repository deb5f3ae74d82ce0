"""Ctrl-C (SIGINT) and SIGTERM during a command: a resumable checkpoint at the current step, one
line naming the exact command that resumes it, exit status 130 / 143, and a resumed run that
ends with exactly the numbers of an uninterrupted one.

The processes signal themselves at a given training step (tests/hooks), so the tests do not
depend on timing."""

from __future__ import annotations

import os
import shlex
import subprocess
import sys
from pathlib import Path

import pytest
import torch

from geodistill.results.files import read_result
from kill_hook import signal_env

N_PER_CLASS = 40  # 10 classes -> 400 images: 240 train -> 7 steps of 32 per epoch


def _cli(args: list[str], cwd: Path, env: dict | None = None) -> subprocess.CompletedProcess:
    e = dict(os.environ, OMP_NUM_THREADS="1", GEODISTILL_CACHE=str(cwd / "cache"), **(env or {}))
    return subprocess.run(
        [sys.executable, "-m", "geodistill.cli", *args], capture_output=True, text=True, env=e, cwd=cwd, timeout=600
    )


def _train_args(name: str) -> list[str]:
    return [
        "train", "--epochs", "3", "--size", "16", "--out", "runs", "--name", name,
        "--set", f"data.n_per_class={N_PER_CLASS}", "--set", "train.batch_size=32", "--set", "train.progress=false",
    ]  # fmt: skip


@pytest.fixture(scope="module")
def work(tmp_path_factory) -> Path:
    work = tmp_path_factory.mktemp("signals")
    full = _cli(_train_args("full"), work)
    assert full.returncode == 0, full.stderr
    return work


def _resume_command(stderr: str) -> list[str]:
    lines = stderr.strip().splitlines()
    assert len(lines) == 1 and "Traceback" not in stderr, stderr
    assert " resume with: " in lines[0], stderr
    return shlex.split(lines[0].split(" resume with: ", 1)[1])


@pytest.mark.parametrize(("signal_name", "code"), [("SIGINT", 130), ("SIGTERM", 143)])
def test_a_signal_mid_epoch_checkpoints_says_how_to_resume_and_resume_is_exact(work, signal_name, code):
    name = f"cut-{signal_name.lower()}"
    cut = _cli(_train_args(name), work, signal_env(signal_name, step=10))  # epoch 2, step 3
    assert cut.returncode == code, cut.stderr
    command = _resume_command(cut.stderr)
    assert f"interrupted by {signal_name} at epoch 2, step 3" in cut.stderr
    assert command == ["geodistill", *_train_args(name), "--resume"]
    run = work / "runs" / name
    assert (run / "last.ckpt").is_file() and not (run / "results.json").exists()  # nothing claimed finished
    assert torch.load(run / "last.ckpt", weights_only=True)["train_state"]["global_step"] == 10
    resumed = _cli(command[1:], work)
    assert resumed.returncode == 0, resumed.stderr
    a, b = read_result(work / "runs" / "full"), read_result(run)
    assert a.metrics.confusion_matrix == b.metrics.confusion_matrix and a.metrics.correct == b.metrics.correct
    assert [h.train_loss for h in a.history] == [h.train_loss for h in b.history]
    assert [h.val_acc for h in a.history] == [h.val_acc for h in b.history]
    sa = torch.load(work / "runs" / "full" / "model.ckpt", weights_only=True)["state_dict"]
    sb = torch.load(run / "model.ckpt", weights_only=True)["state_dict"]
    assert all(torch.equal(sa[k], sb[k]) for k in sa)


def test_a_signal_before_training_is_one_line_and_leaves_no_run_folder(work):
    cut = _cli(_train_args("early"), work, signal_env("SIGINT"))
    assert cut.returncode == 130, cut.stderr
    lines = cut.stderr.strip().splitlines()
    assert lines == ["error: interrupted by SIGINT before any work started; nothing was written."], cut.stderr
    assert not (work / "runs" / "early").exists()


def test_a_study_interrupted_by_sigterm_resumes_with_the_same_command(work):
    args = ["run", "--out", "study", "--size", "16", "--seeds", "0", "--epochs", "2"]
    args += ["--set", "data.n_per_class=12", "--set", "train.batch_size=16", "--set", "train.progress=false"]
    cut = _cli(args, work, signal_env("SIGTERM", step=6))  # the teacher's epoch 2 (4 steps an epoch)
    assert cut.returncode == 143, cut.stderr
    assert _resume_command(cut.stderr) == ["geodistill", *args]
    teacher = work / "study" / "teacher-s0"
    assert (teacher / "last.ckpt").is_file() and not (teacher / "results.json").exists()
    again = _cli(args, work)
    assert again.returncode == 0, again.stderr
    assert "2 points, 0 already done, 2 to run" in again.stdout  # the cut teacher resumes, nothing is lost
    assert len(list((work / "study").glob("*/results.json"))) == 3
