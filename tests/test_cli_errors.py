"""Every mistake a user can make at the command line, in a config or on the file system ends in
one line on stderr naming what to fix, exit status 2 and no traceback (issue 26's list)."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

TINY = ["--size", "16", "--set", "data.n_per_class=6", "--set", "train.progress=false"]


def _cli(args: list[str], cwd: Path) -> subprocess.CompletedProcess:
    env = dict(os.environ, OMP_NUM_THREADS="1", GEODISTILL_CACHE=str(cwd / "cache"))
    return subprocess.run(
        [sys.executable, "-m", "geodistill.cli", *args], capture_output=True, text=True, env=env, cwd=cwd, timeout=600
    )


def _one_line(r: subprocess.CompletedProcess) -> str:
    """The one stderr line of a refused command (exit 2, no traceback)."""
    lines = r.stderr.strip().splitlines()
    assert r.returncode == 2 and len(lines) == 1 and "Traceback" not in r.stderr, (r.returncode, r.stderr)
    assert lines[0].startswith("error: "), r.stderr
    return lines[0]


@pytest.fixture(scope="module")
def work(tmp_path_factory) -> Path:
    """A folder with a trained checkpoint, a fake ONNX file, an image, a broken YAML config and
    a plain file where an output folder would go."""
    work = tmp_path_factory.mktemp("cli-errors")
    r = _cli(["train", "--epochs", "1", "--out", "runs", "--name", "m", *TINY], work)
    assert r.returncode == 0, r.stderr
    (work / "m.onnx").write_bytes(b"\x08\x07onnx")
    (work / "bad.yaml").write_text("train:\n  lr: 0.1\n  epochs: [3\n")
    (work / "blocker").write_text("a file, not a folder\n")
    from PIL import Image

    Image.new("RGB", (16, 16), (10, 120, 30)).save(work / "a.png")
    return work


USAGE = [  # (arguments, what the line must say)
    ([], "give a command"),
    (["data"], "give a command (listed above), e.g. geodistill data info"),
    (["trian"], "Did you mean 'train'?"),
    (["train", "--epoch", "2"], "did you mean --epochs?"),
    (["train", "--lr", "fast"], "'--lr'"),
    (["train", "--size", "big"], "'--size'"),
    (["train", "--devices", "gpu"], "--devices 'gpu' is not a count"),
    (["train", "--precision", "fast"], "'--precision'"),
    (["distill", "--student", "cnn3"], "Missing option '--teacher'"),
    (["evaluate"], "Missing argument 'CKPT'"),
    (["predict", "m.onnx", "a.png", "--top-k", "x"], "'--top-k'"),
    (["train", "--set", "train.epoch=2"], "field 'train.epoch' is unknown; did you mean 'train.epochs'?"),
    (["run", "--set", "trian.epochs=2"], "did you mean 'train'?"),
    (["sweep", "--set", "student.train.lrr=1", "--grid", "alpha=[0.3]"], "did you mean 'train.lr'?"),
    (["train", "--config", "bad.yaml"], "bad.yaml is not valid YAML at line 4"),
    (["run", "--recipe", "demoo"], "choose one of demo, paper, thesis"),
    (["train", "--dataset", "ucmerced"], "needs --root DIR"),
    (["data", "download", "synthetic", "--root", "x"], "nothing to download"),
    (["frontier", "--methods", "kl,foo"], "--methods: foo unknown; choose among kl, dist, ens"),
    (["frontier", "--teacher", "nope.ckpt"], "--teacher nope.ckpt: no such file"),
    (["frontier", "--teacher", "cnn4@big"], "the size after @ must be a number"),
]


@pytest.mark.parametrize(("args", "says"), USAGE, ids=[" ".join(a) or "(nothing)" for a, _ in USAGE])
def test_a_mistake_on_the_command_line_is_one_line(work, args, says):
    line = _one_line(_cli(args, work))
    assert says in line, line


def test_help_shows_defaults_choices_and_the_study_epochs(work):
    train = " ".join(_cli(["train", "--help"], work).stdout.split())
    assert "[default: synthetic]" in train and "[default: cnn3]" in train and "[default: 30]" in train
    assert "32-true|bf16-mixed" in train and "<bool>" not in train
    run = " ".join(_cli(["run", "--help"], work).stdout.split())
    assert "--epochs" in run and "student.train.epochs=N" in run and "--threads" in run
    names = _cli(["list"], work)
    assert names.returncode == 0 and all(n in names.stdout for n in ("aid", "mobilenet_v2", "kl+cos", "thesis"))


ONNX_GIVEN = [
    ["evaluate", "m.onnx"],
    ["export", "m.onnx"],
    ["profile", "m.onnx", "--runtimes", "torch"],
    ["distill", "--teacher", "m.onnx", *TINY],
]


@pytest.mark.parametrize("args", ONNX_GIVEN, ids=[a[0] for a in ONNX_GIVEN])
def test_an_onnx_file_where_a_checkpoint_is_needed_says_so(work, args):
    assert "m.onnx is an ONNX model; this command needs a .ckpt" in _one_line(_cli(args, work))


CKPT = "runs/m/model.ckpt"
UNWRITABLE = [  # every command that writes, told to write below a plain file
    ["train", "--epochs", "1", "--out", "blocker/runs", *TINY],
    ["export", CKPT, "--out", "blocker/m.onnx"],
    ["predict", CKPT, "a.png", "--out", "blocker/p.csv"],
    ["report", "runs", "--out", "blocker/report"],
    ["run", "--out", "blocker/study", "--epochs", "1", "--seeds", "0", *TINY],
    ["sweep", "--out", "blocker/sweep", "--grid", "alpha=[0.3]", "--epochs", "1", "--seeds", "0", *TINY],
]


@pytest.mark.parametrize("args", UNWRITABLE, ids=[a[0] for a in UNWRITABLE])
def test_an_output_folder_that_cannot_be_written_is_one_line(work, args):
    line = _one_line(_cli(args, work))
    assert "blocker" in line and "is not a folder; choose another path" in line, line
    assert not list(work.glob("blocker*/")) or (work / "blocker").is_file()


def test_train_refuses_to_overwrite_a_finished_run_and_leaves_no_empty_folder(work):
    line = _one_line(_cli(["train", "--epochs", "1", "--out", "runs", "--name", "m", *TINY], work))
    assert "runs/m holds a finished run; pass --resume" in line
    line = _one_line(_cli(["train", "--dataset", "folder", "--root", "missing", "--out", "fresh", *TINY], work))
    assert "missing" in line and not (work / "fresh").exists()  # a failed command leaves no empty run folder
