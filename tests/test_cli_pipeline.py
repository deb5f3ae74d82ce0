"""The main job (`geodistill run`) and the CLI wiring of every command, on tiny synthetic data."""

from __future__ import annotations

import json
import math
import os
import subprocess
import sys
from pathlib import Path

import pytest

from geodistill.analysis.summary import Line, Summary
from geodistill.study.recipe import format_summary, load_summary, run
from log_capture import captured_log


def _cli(args: list[str], cwd: Path) -> subprocess.CompletedProcess:
    env = dict(os.environ, OMP_NUM_THREADS="1", GEODISTILL_CACHE=str(cwd / "cache"))
    return subprocess.run(
        [sys.executable, "-m", "geodistill.cli", *args], capture_output=True, text=True, env=env, cwd=cwd, timeout=600
    )


def _cli_to_file(args: list[str], cwd: Path, name: str) -> list[str]:
    """Run the CLI with its output (stdout and stderr) going to a file, as in CI or a log; its lines."""
    env = dict(os.environ, OMP_NUM_THREADS="1", GEODISTILL_CACHE=str(cwd / "cache"))
    path = cwd / name
    with open(path, "w", encoding="utf-8") as fh:
        r = subprocess.run(
            [sys.executable, "-m", "geodistill.cli", *args], stdout=fh, stderr=subprocess.STDOUT, env=env, cwd=cwd
        )
    text = path.read_text(encoding="utf-8")
    assert r.returncode == 0, text[-3000:]
    return text.splitlines()


TINY = {"data": {"n_per_class": 24}, "train": {"epochs": 2, "batch_size": 32, "progress": False}}


@pytest.fixture(scope="module")
def demo(tmp_path_factory) -> tuple[Path, dict]:
    out = tmp_path_factory.mktemp("demo")
    over = dict(TINY, data=dict(TINY["data"], cache_dir=str(out / "cache")))
    summary = run("demo", overrides=over, seeds=[0, 1], out=out / "run")
    return out, summary


def test_run_trains_teacher_once_and_every_student(demo):
    out, summary = demo
    labels = [line.label for line in summary.lines]
    assert labels == ["teacher", "student", "kl alpha=0.5 T=4"]
    students = [line for line in summary.lines if not line.label.startswith("teacher")]
    assert all(line.n == 2 for line in students)  # two seeds each
    assert len(list((out / "run").glob("*/results.json"))) == 1 + 2 * 2
    distilled = [line for line in students if line.label != "student"]
    assert all(line.mean_diff is not None and line.pairs == 2 for line in distilled)  # paired over both seeds
    assert summary.lines[1].params_ratio > 40  # cnn4 vs cnn3
    assert (out / "run" / "summary.md").read_text() == format_summary(summary)
    assert format_summary(load_summary(out / "run")) == format_summary(summary)  # summary.json reads back
    assert "student alone" in summary.verdict


def test_run_again_skips_finished_runs(demo):
    out, summary = demo
    over = dict(TINY, data=dict(TINY["data"], cache_dir=str(out / "cache")))
    with captured_log() as lines:
        again = run("demo", overrides=over, seeds=[0, 1], out=out / "run")
    assert any("4 points, 4 already done, 0 to run" in l for l in lines)
    assert not any("test accuracy" in l for l in lines)  # nothing trained again
    assert format_summary(again) == format_summary(summary)


def test_user_overrides_beat_recipe_and_role_overrides_beat_both(demo):
    out, _ = demo
    res = json.loads((out / "run" / "teacher-s0" / "results.json").read_text())
    assert res["epochs"] == 2 and res["config"]["data"]["n_per_class"] == 24


def test_cli_data_info_train_export_predict_profile(tmp_path):
    r = _cli(["data", "info", "synthetic", "--size", "16"], tmp_path)
    assert r.returncode == 0, r.stderr
    assert "forest" in r.stdout.lower() and "2000" in r.stdout.replace(",", "")
    r = _cli(
        [
            "train",
            "--dataset",
            "synthetic",
            "--model",
            "cnn3",
            "--epochs",
            "1",
            "--size",
            "16",
            "--name",
            "m",
            "--out",
            str(tmp_path / "runs"),
            "--set",
            "data.n_per_class=12",
            "--set",
            "train.progress=false",
        ],
        tmp_path,
    )
    assert r.returncode == 0, r.stderr
    ckpt = tmp_path / "runs" / "m" / "model.ckpt"
    r = _cli(["evaluate", str(ckpt), "--dataset", "synthetic", "--set", "data.n_per_class=12"], tmp_path)
    assert r.returncode == 0 and "on the test split (20 images): accuracy" in r.stdout, r.stderr
    assert "F1 per class:" in r.stdout and "\\u" not in r.stdout
    r = _cli(["evaluate", str(ckpt), "--split", "val", "--json"], tmp_path)
    assert r.returncode == 0 and json.loads(r.stdout)["split"] == "val" and json.loads(r.stdout)["n"] == 30, r.stderr
    r = _cli(["export", str(ckpt), "--format", "onnx", "--out", str(tmp_path / "m.onnx")], tmp_path)
    assert r.returncode == 0, r.stderr
    assert (tmp_path / "m.onnx").is_file()
    from PIL import Image

    imgs = tmp_path / "imgs"
    imgs.mkdir()
    Image.new("RGB", (20, 20), (10, 120, 30)).save(imgs / "a.png")
    (imgs / "broken.jpg").write_bytes(b"not a jpeg")
    r = _cli(["predict", str(tmp_path / "m.onnx"), str(imgs), "--out", str(tmp_path / "p.csv")], tmp_path)
    assert r.returncode == 0, r.stderr
    assert "1 predicted, 1 unreadable" in r.stdout
    r = _cli(["predict", str(tmp_path / "m.onnx"), str(imgs / "a.png"), "--top-k", "3"], tmp_path)
    assert r.returncode == 0 and len(r.stdout.strip().split("\t")[1].split(", ")) == 3, r.stdout  # all 3 shown
    r = _cli(["profile", str(ckpt), str(ckpt), "--runtimes", "torch", "--batch", "1,2"], tmp_path)
    assert r.returncode == 0, r.stderr
    assert "1.0x" in r.stdout  # a model against itself compresses by exactly 1
    assert "m (cnn3) -> m (cnn3)" in r.stdout  # labelled by run folder and architecture
    assert "| 16 " in r.stdout  # at the size it trained at


def test_cli_bad_recipe_and_bad_override_are_one_line(tmp_path):
    r = _cli(["run", "--recipe", "nope"], tmp_path)
    assert r.returncode == 2 and "Traceback" not in r.stderr and "demo, paper, thesis" in r.stderr
    r = _cli(["train", "--set", "train.lr=-3"], tmp_path)
    assert r.returncode == 2 and "'train.lr'" in r.stderr and "Traceback" not in r.stderr


def test_train_written_to_a_file_is_at_most_15_lines(tmp_path):
    args = ["train", "--dataset", "synthetic", "--epochs", "30", "--size", "16", "--out", str(tmp_path / "runs")]
    args += ["--set", "data.n_per_class=6", "--set", "train.batch_size=32"]
    lines = _cli_to_file([*args, "--name", "m"], tmp_path, "train.log")
    assert len(lines) <= 15, "\n".join(lines)
    assert lines[0].startswith("[m] expected to take about ") and "ms/step" in lines[0]  # said before it is spent
    assert lines[1].startswith("[m] cnn3 on synthetic") and lines[1].endswith(", 1 thread")
    assert lines[-1].startswith("[m] test accuracy")
    assert "left)" in lines[2]  # the epoch lines count down from the estimate
    epochs = [line.split(" epoch ")[1].split()[0] for line in lines if "] epoch " in line]
    assert epochs == [f"{e}/30" for e in range(3, 31, 3)]  # one line per tenth of the run
    verbose = _cli_to_file([*args, "--name", "v", "--verbose"], tmp_path, "verbose.log")
    assert sum("] epoch " in line for line in verbose) == 30  # --verbose: every epoch


def test_demo_written_to_a_file_is_at_most_40_lines_and_ends_with_table_and_verdict(tmp_path):
    args = ["run", "--out", str(tmp_path / "demo"), "--size", "16"]
    lines = _cli_to_file(args + ["--set", "data.n_per_class=12", "--set", "train.epochs=3"], tmp_path, "run.log")
    assert len(lines) <= 40, "\n".join(lines)
    assert "recipe demo: 7 runs to train, about " in lines[2] and " expected" in lines[2]  # said before it is spent
    ends = [line for line in lines if " runs done, " in line]  # one end line per run, with the job's count
    assert len(ends) == 7 and "[7/7 runs done" in ends[-1] and "left]" in ends[0]  # time left from the first
    assert "recipe demo: 6 points on 2 worker processes, 1 thread(s) each (train.threads)" in lines
    head = next(i for i, line in enumerate(lines) if line.startswith("| model / objective"))
    table = lines[head : head + 5]  # header, rule, the teacher and the demo's 2 objectives
    assert all(line.startswith("|") for line in table) and not lines[head + 5].strip()
    assert "student alone" in lines[-2] and "converged" in lines[-2]  # the verdict, then where the results are
    assert lines[-1].startswith(f"results in {tmp_path / 'demo'}")
    columns = [c.strip() for c in table[0].strip("|").split("|")]
    latency = {line.strip("|").split("|")[columns.index("latency ms")].strip() for line in table if "(cnn3)" in line}
    assert len(latency) == 1  # every CNN3 row: one measurement of one architecture


def test_summary_table_numbers_follow_the_one_format():
    common = {"model": "cnn3", "params": 24346, "flops": 5.6e6, "size_bytes": 98304, "latency_ms": 0.312}
    single = Line(label="teacher", n=1, accuracy_mean=0.915, accuracy_std=math.nan, converged="1/1", **common,
                  f1_macro_mean=0.9151, f1_macro_std=math.nan)  # fmt: skip
    gain = {"mean_diff": 0.0008, "sd_diff": 0.014201, "wins": 2, "pairs": 3}
    several = Line(label="kl", n=3, accuracy_mean=0.835, accuracy_std=0.013224, converged="0/3", **common,
                   f1_macro_mean=0.8326, f1_macro_std=0.013301, **gain)  # fmt: skip
    text = format_summary(Summary([single, several], "v"))
    rows = [line for line in text.splitlines() if line.startswith("| teacher") or line.startswith("| kl")]
    assert "| 1/1 | 91.50 | 91.51 | – | – |" in rows[0]  # one run: no ±
    assert "| 0/3 | 83.50 ± 1.32 | 83.26 ± 1.33 | +0.08 ± 1.42 | 2/3 |" in rows[1]  # percent, 2 decimals, signed gain
