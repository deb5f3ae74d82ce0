"""Issue 11's acceptance run: ``geodistill run --recipe thesis`` on AID as a new user runs it.

The CLI in a subprocess, on a fresh data cache (``GEODISTILL_CACHE`` in a new temporary
folder), with every core (no ``OMP_NUM_THREADS``): wall time, peak memory, the recipe's own
summary table and verdict (and the budget check when the recipe runs one). About 80 minutes on
2 cores (results/thesis.md). ``--quick``: the same command on the synthetic set at 16 px and two
epochs, to keep the benchmark from rotting (seconds; its numbers mean nothing).
"""

from __future__ import annotations

import os
import resource
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from benchmarks.common import AID
from geodistill.study.recipe import format_summary, load_summary

COMMAND = ["run", "--recipe", "thesis", "--dataset", "folder", "--root", str(AID)]
QUICK = [
    "run",
    "--recipe",
    "thesis",
    "--size",
    "16",
    "--seeds",
    "0,1",
    "--set",
    "data.n_per_class=8",
    "--set",
    "train.epochs=2",
]


def main(out: Path, quick: bool = False) -> str:
    """Run the recipe in ``out`` (resumes: delete ``out`` to time a run from scratch)."""
    out.mkdir(parents=True, exist_ok=True)
    env = {k: v for k, v in os.environ.items() if k not in ("OMP_NUM_THREADS", "MKL_NUM_THREADS")}
    args = QUICK if quick else COMMAND
    cli = [sys.executable, "-m", "geodistill.cli", *args, "--out", str(out / "thesis")]
    with tempfile.TemporaryDirectory() as cache:
        t0 = time.perf_counter()
        subprocess.run(cli, check=True, env={**env, "GEODISTILL_CACHE": cache}, capture_output=quick)
        wall = time.perf_counter() - t0
    peak_gb = resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss / 2**20
    summary = load_summary(out / "thesis")
    t = summary.timings_s
    students = [k for k in t if not k.startswith("teacher") and "-2x-" not in k]
    teachers = [k for k in t if k.startswith("teacher")]
    head = (
        "## `geodistill run --recipe thesis` on AID (issue 11's acceptance run)\n\n"
        f"`geodistill {' '.join(args)}` on a fresh data cache, every core: **{wall / 60:.0f} minutes wall**, peak "
        f"memory {peak_gb:.1f} GB; teacher {sum(t[k] for k in teachers) / 60:.1f} min, students "
        f"{min(t[k] for k in students) / 60:.1f}-{max(t[k] for k in students) / 60:.1f} min each.\n\n"
    )
    return head + format_summary(summary)


if __name__ == "__main__":
    print(main(Path(os.environ.get("GEODISTILL_BENCH_DIR", "/tmp/geodistill-bench")) / "thesis", "--quick" in sys.argv))
