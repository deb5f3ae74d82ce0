"""Issue 11's acceptance run: ``geodistill run --recipe thesis`` on AID as a new user runs it.

The CLI in a subprocess, on a fresh data cache (``GEODISTILL_CACHE`` in a new temporary
folder), with every core (no ``OMP_NUM_THREADS``): wall time, peak memory, the recipe's own
summary table and verdict (and the budget check when the recipe runs one). Done when: under 90
minutes on 2 cores, every run converged, the student alone within 1 point of the best CNN3
measured on AID (``benchmarks/converged.py``). About 80 minutes on 2 cores (results/thesis.md);
there is no quick mode.
"""

from __future__ import annotations

import json
import os
import resource
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from benchmarks.converged import AID
from geodistill.study.recipe import format_summary

COMMAND = ["run", "--recipe", "thesis", "--dataset", "folder", "--root", str(AID)]


def main(out: Path, quick: bool = False) -> str:
    """Run the recipe in ``out`` (resumes: delete ``out`` to time a run from scratch)."""
    if quick:
        raise SystemExit("benchmarks.thesis has no quick mode: it is the 80-minute acceptance run.")
    out.mkdir(parents=True, exist_ok=True)
    env = {k: v for k, v in os.environ.items() if k not in ("OMP_NUM_THREADS", "MKL_NUM_THREADS")}
    cli = [sys.executable, "-m", "geodistill.cli", *COMMAND, "--out", str(out / "thesis")]
    with tempfile.TemporaryDirectory() as cache:
        t0 = time.perf_counter()
        subprocess.run(cli, check=True, env={**env, "GEODISTILL_CACHE": cache})
        wall = time.perf_counter() - t0
    peak_gb = resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss / 2**20
    summary = json.loads((out / "thesis" / "summary.json").read_text())
    t = summary["timings_s"]
    minutes = lambda key: f"{t[key] / 60:.1f}"  # noqa: E731
    students = [k for k in t if k != "data_s" and not k.startswith("teacher") and "-2x-" not in k]
    check = next((k for k in t if "-2x-" in k), None)
    head = (
        "## `geodistill run --recipe thesis` on AID (issue 11's acceptance run)\n\n"
        f"`geodistill {' '.join(COMMAND)}` (the root is `../shared/data/aid150`) on a fresh data cache, "
        f"every core: **{wall / 60:.0f} minutes wall**, peak memory {peak_gb:.1f} GB; teacher "
        f"{minutes('teacher_s')} min, students {min(t[k] for k in students) / 60:.1f}-"
        f"{max(t[k] for k in students) / 60:.1f} min each"
        + (f", the budget check {minutes(check)} min" if check else "")
        + ".\n\n"
    )
    return head + format_summary(summary)


if __name__ == "__main__":
    print(main(Path(os.environ.get("GEODISTILL_BENCH_DIR", "/tmp/geodistill-bench")) / "thesis"))
