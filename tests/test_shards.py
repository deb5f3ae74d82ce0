"""Sweep shards on the synthetic set: two shard processes started at once run every point once and
the teacher once, with the numbers of a one-process sweep; a shard killed mid-point is resumed by
its rerun; the report names the points still missing; shard parsing (I/N and SLURM arrays); the
teacher lock files (stale ones taken over, a live one waited on until the timeout)."""

from __future__ import annotations

import json
import os
import socket
import subprocess
import sys
import time
from pathlib import Path

import pytest

from geodistill.core.errors import GeodistillError
from geodistill.study.shards import Shard, parse_shard, read_lock, release, slurm_shard, try_lock, wait_lock
from geodistill.study.sweep import run_sweep
from kill_hook import host_env, kill_env
from log_capture import captured_log

SRC = Path(__file__).resolve().parents[1] / "src"
POINTS = ["student-s0", "thesis-a0.1-s0", "thesis-a0.3-s0", "thesis-a0.5-s0"]  # plan order
SHARD_POINTS = {1: ["student-s0", "thesis-a0.3-s0"], 2: ["thesis-a0.1-s0", "thesis-a0.5-s0"]}  # round-robin


def sweep_yaml(tmp: Path, cache: str = "cache") -> Path:
    """A thesis α sweep of 4 tiny points (16 px, 180 training images, 2 epochs of 5 steps)."""
    f = tmp / f"sweep-{cache}.yaml"
    data = {"dataset": "synthetic", "size": 16, "n_per_class": 30, "cache_dir": str(tmp / cache)}
    f.write_text(f"""recipe: thesis
base:
  data: {json.dumps(data)}
  train: {{epochs: 2, batch_size: 32, progress: false, patience: null}}
  teacher: {{train: {{model: cnn4}}}}
  student: {{train: {{model: cnn3}}}}
grid: {{alpha: [0.1, 0.3, 0.5]}}
seeds: [0]
""")
    return f


def _env(extra: dict[str, str] | None = None) -> dict[str, str]:
    """This checkout's package first on the path (the venv's editable install may point elsewhere);
    every process believes its CPU has bf16 units unless ``extra`` says otherwise (`host_env`), so
    precision auto trains the same on any machine that runs the tests."""
    extra = {**host_env(True), **(extra or {})}
    path = os.pathsep.join(p for p in (extra.pop("PYTHONPATH", ""), str(SRC)) if p)
    return dict(os.environ, OMP_NUM_THREADS="1", PYTHONPATH=path, **extra)


def _start(*args: str, env: dict[str, str] | None = None) -> subprocess.Popen:
    return subprocess.Popen(
        [sys.executable, "-m", "geodistill.cli", *args],
        env=_env(env),
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
    )


def _finish(proc: subprocess.Popen) -> tuple[int, str]:
    out, _ = proc.communicate(timeout=600)
    return proc.returncode, out


def _sweep(f: Path, out: Path, *extra: str, env: dict[str, str] | None = None) -> subprocess.Popen:
    return _start("sweep", "--file", str(f), "--out", str(out), *extra, env=env)


def _result(folder: Path) -> dict:
    return json.loads((folder / "results.json").read_text())


def _same_numbers(a: dict, b: dict) -> None:
    assert a["metrics"]["confusion_matrix"] == b["metrics"]["confusion_matrix"]
    assert a["val_accuracy"] == b["val_accuracy"]
    assert [h["train_loss"] for h in a["history"]] == pytest.approx([h["train_loss"] for h in b["history"]], rel=1e-6)


@pytest.fixture(scope="module")
def work(tmp_path_factory) -> Path:
    return tmp_path_factory.mktemp("shards")


@pytest.fixture(scope="module")
def reference(work) -> Path:
    """The same sweep in one process (no --shard)."""
    out = work / "one"
    rc, log = _finish(_sweep(sweep_yaml(work), out))
    assert rc == 0, log[-3000:]
    return out


# ---------------------------------------------------------------- shards as processes


def test_two_shards_at_once_run_each_point_once_with_one_process_numbers(reference, work):
    out = work / "two"
    f = sweep_yaml(work, "cache-two")  # its own cache: the teacher cache is built here, not found
    procs = [_sweep(f, out, "--shard", f"{i}/2") for i in (1, 2)]
    (rc1, log1), (rc2, log2) = (_finish(p) for p in procs)
    assert (rc1, rc2) == (0, 0), (log1[-3000:], log2[-3000:])
    logs = {1: log1, 2: log2}
    # every point trained by exactly one shard, the one round-robin gives it
    for shard, names in SHARD_POINTS.items():
        for name in names:
            assert logs[shard].count(f"[{name}] test accuracy") == 1, name
            assert logs[3 - shard].count(f"[{name}] test accuracy") == 0, name
            rows = (out / name / "metrics.csv").read_text().splitlines()
            assert len(rows) == 1 + 2  # header + one row per epoch: not trained twice
    # the teacher trained once and its cache built once, by whichever shard came first
    assert log1.count("[teacher-s0] test accuracy") + log2.count("[teacher-s0] test accuracy") == 1
    assert log1.count("teacher cache built") + log2.count("teacher cache built") == 1
    assert "shard 2/2 runs 2 of them" in log2
    assert not list(out.glob("*.lock"))
    # the same numbers as the one-process sweep, and the same sweep.json
    for name in ["teacher-s0", *POINTS]:
        _same_numbers(_result(out / name), _result(reference / name))
    assert json.loads((out / "sweep.json").read_text())["points"] == POINTS


def test_a_shard_on_a_host_whose_rule_differs_trains_as_the_study_decided(reference, work):
    """Precision auto is decided once per study: shard 1 (a host with bf16 units) records it
    before anything trains; shard 2 starts on a host whose rule would say fp32, reads the
    study's decision, and every number equals the one-process sweep's."""
    out = work / "mixed"
    f = sweep_yaml(work, "cache-mixed")
    first = _sweep(f, out, "--shard", "1/2")
    decided = [out / "precision" / f"{m}.json" for m in ("cnn4", "cnn3")]
    deadline = time.monotonic() + 300
    while not all(p.is_file() for p in decided) and first.poll() is None and time.monotonic() < deadline:
        time.sleep(0.05)
    second = _sweep(f, out, "--shard", "2/2", env=host_env(False))
    (rc1, log1), (rc2, log2) = _finish(first), _finish(second)
    assert (rc1, rc2) == (0, 0), (log1[-3000:], log2[-3000:])
    assert all(json.loads(p.read_text())["value"] == "bf16-mixed" for p in decided)
    assert "bf16-mixed (auto: a CPU with bf16 units" in log2  # shard 2's own rule would have said fp32
    for name in ["teacher-s0", *POINTS]:
        assert _result(out / name)["precision"]["value"] == "bf16-mixed"
        _same_numbers(_result(out / name), _result(reference / name))


def test_a_killed_shard_rerun_finishes_the_sweep_and_the_report_names_the_missing(reference, work):
    out = work / "killed"
    teacher = str(reference / "teacher-s0" / "model.ckpt")
    args = ("--teacher", teacher)
    p1 = _sweep(sweep_yaml(work), out, *args, "--shard", "1/2")
    p2 = _sweep(sweep_yaml(work), out, *args, "--shard", "2/2", env=kill_env(7))  # SIGKILL in epoch 2 of 2
    (rc1, log1), (rc2, _) = _finish(p1), _finish(p2)
    assert rc1 == 0, log1[-3000:]
    assert rc2 == -9
    first, second = SHARD_POINTS[2]
    assert (out / first / "last.ckpt").is_file() and not (out / first / "results.json").exists()
    assert not (out / second).exists()
    assert not list(out.glob("*.lock"))  # the killed shard's cache lock was released before training

    rc, log = _finish(_start("report", str(out)))
    assert rc == 0, log[-3000:]
    assert "2 of the sweep's points have no result yet" in log and f"{first}, {second}" in log
    md = (out / "report" / "report.md").read_text(encoding="utf-8")
    assert f"| not finished (no result yet) | 2: {first}, {second} |" in md

    done = {n: (out / n / "results.json").stat().st_mtime_ns for n in SHARD_POINTS[1]}
    rc, log = _finish(_sweep(sweep_yaml(work), out, *args, "--shard", "2/2"))
    assert rc == 0, log[-3000:]
    assert "shard 2/2 runs 2 of them, 0 already done, 2 to run" in log
    assert done == {n: (out / n / "results.json").stat().st_mtime_ns for n in done}  # shard 1's points untouched
    for name in POINTS:  # same teacher weights as the reference's teacher, resumed exactly
        _same_numbers(_result(out / name), _result(reference / name))
    rc, log = _finish(_start("report", str(out)))
    assert rc == 0 and "no result yet" not in log


# ---------------------------------------------------------------- teacher locks (in process)


def _foreign_lock(path: Path, shard: str, host: str = "elsewhere.example") -> dict:
    owner = {"pid": 4242, "host": host, "shard": shard, "since": "2025-01-01 00:00:00 +0000", "slurm_job": "77"}
    path.write_text(json.dumps(owner))
    return owner


def test_a_teacher_held_elsewhere_times_out_and_fails_only_its_points(work, tmp_path):
    out = tmp_path / "held"
    out.mkdir()
    owner = _foreign_lock(out / "teacher-s0.lock", "2/2")
    sweep = {
        "recipe": "thesis",
        "base": {
            "data": {"dataset": "synthetic", "size": 16, "n_per_class": 30, "cache_dir": str(work / "cache")},
            "train": {"epochs": 1, "batch_size": 32, "progress": False, "patience": None},
            "teacher": {"train": {"model": "cnn4"}},
        },
        "grid": {"alpha": [0.3]},
        "seeds": [0],
    }
    with captured_log() as lines:
        results = run_sweep(sweep, out, shard="1/1", teacher_timeout=0.2)
    assert [(r.run_id, r.status) for r in results] == [("student-s0", "ok"), ("thesis-a0.3-s0", "failed")]
    err = results[1].error
    assert err.startswith(f"teacher {out / 'teacher-s0'} was not ready after 0.2s: shard 2/2 (pid 4242 on ")
    assert "elsewhere.example" in err and "SLURM job 77" in err and str(out / "teacher-s0.lock") in err
    assert "delete the lock file and re-run (or raise --teacher-timeout)" in err
    assert any(line.startswith("waiting for teacher-s0.lock: held by shard 2/2") for line in lines)
    assert not (out / "teacher-s0").exists()  # not trained behind the owner's back
    assert read_lock(out / "teacher-s0.lock") == owner  # and its lock left alone


def test_stale_locks_are_taken_over_live_ones_are_not(tmp_path):
    lock = tmp_path / "t.lock"
    gone = subprocess.run([sys.executable, "-c", "import os; print(os.getpid())"], capture_output=True, text=True)
    _foreign_lock(lock, "2/2", host=socket.gethostname())
    lock.write_text(json.dumps(dict(json.loads(lock.read_text()), pid=int(gone.stdout))))
    assert try_lock(lock, Shard(1, 2)) is None  # its process on this host is gone
    mine = read_lock(lock)
    assert mine["pid"] == os.getpid() and mine["shard"] == "1/2"
    assert try_lock(lock, Shard(2, 2)) == mine  # held by a live process: not taken
    release(lock)
    assert not lock.exists()

    earlier = _foreign_lock(lock, "2/2")  # another host: a different shard waits ...
    assert try_lock(lock, Shard(1, 2)) == earlier
    assert wait_lock(lock, Shard(1, 2), timeout_s=0.05, poll_s=0.01) == earlier
    assert try_lock(lock, Shard(2, 2)) is None  # ... but a rerun of shard 2/2 knows it left it
    release(lock)
    _foreign_lock(lock, "1/2")
    release(lock)  # not ours: left in place
    assert read_lock(lock)["shard"] == "1/2"


# ---------------------------------------------------------------- shard assignment and parsing


def test_round_robin_gives_every_point_to_exactly_one_shard():
    items = [f"p{i}" for i in range(11)]
    for n in (1, 2, 3, 4, 11, 12):
        shares = [Shard(i, n).take(items) for i in range(1, n + 1)]
        assert sorted(x for s in shares for x in s) == sorted(items)
        assert all(max(len(s) for s in shares) - len(s) <= 1 for s in shares)  # balanced
    assert Shard(2, 3).take(items) == ["p1", "p4", "p7", "p10"]
    assert Shard(1, 1).whole and not Shard(1, 2).whole and str(Shard(3, 4)) == "3/4"


def test_parse_shard_is_one_based():
    assert parse_shard("1/4") == Shard(1, 4) and parse_shard(" 4 / 4 ") == Shard(4, 4)
    assert parse_shard(None) == Shard(1, 1)
    for bad, message in [
        ("0/4", "shards count from 1"),
        ("5/4", "shards count from 1"),
        ("1/0", "shards count from 1"),
        ("2", "is not I/N"),
        ("a/4", "I must be a whole number"),
    ]:
        with pytest.raises(GeodistillError, match=message):
            parse_shard(bad)


@pytest.mark.parametrize(
    "env,shard",
    [
        ({"SLURM_ARRAY_TASK_ID": "0", "SLURM_ARRAY_TASK_MIN": "0", "SLURM_ARRAY_TASK_COUNT": "4"}, Shard(1, 4)),
        ({"SLURM_ARRAY_TASK_ID": "3", "SLURM_ARRAY_TASK_MIN": "0", "SLURM_ARRAY_TASK_COUNT": "4"}, Shard(4, 4)),
        ({"SLURM_ARRAY_TASK_ID": "1", "SLURM_ARRAY_TASK_MIN": "1", "SLURM_ARRAY_TASK_COUNT": "4"}, Shard(1, 4)),
        ({"SLURM_ARRAY_TASK_ID": "4", "SLURM_ARRAY_TASK_MIN": "1", "SLURM_ARRAY_TASK_COUNT": "4"}, Shard(4, 4)),
        (
            {
                "SLURM_ARRAY_TASK_ID": "14",
                "SLURM_ARRAY_TASK_MIN": "10",
                "SLURM_ARRAY_TASK_STEP": "2",
                "SLURM_ARRAY_TASK_COUNT": "3",
            },
            Shard(3, 3),
        ),
    ],
)
def test_slurm_array_tasks(env, shard):
    assert slurm_shard(env) == shard
    assert parse_shard("slurm", env) == shard


def test_slurm_errors():
    with pytest.raises(GeodistillError, match="needs SLURM_ARRAY_TASK_ID and SLURM_ARRAY_TASK_COUNT"):
        parse_shard("slurm", {})
    with pytest.raises(GeodistillError, match="task 5 is not one of 4 tasks from 1"):
        slurm_shard({"SLURM_ARRAY_TASK_ID": "5", "SLURM_ARRAY_TASK_MIN": "1", "SLURM_ARRAY_TASK_COUNT": "4"})


def test_a_bad_shard_writes_nothing(tmp_path):
    with pytest.raises(GeodistillError, match="--shard 3/2"):
        run_sweep({"grid": {"alpha": [0.1]}}, tmp_path / "x", shard="3/2")
    assert not (tmp_path / "x").exists()
