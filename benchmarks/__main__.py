"""Run the benchmarks and rewrite BENCHMARKS.md from their sections.

Each benchmark module has ``main(out_dir, quick) -> str`` (a Markdown section); the section is
kept in ``benchmarks/results/NAME.md`` so one benchmark can be re-run without the others.
"""

from __future__ import annotations

import argparse
import datetime as dt
import importlib
import os
import platform
import sys
from pathlib import Path

import torch

HERE = Path(__file__).resolve().parent
ORDER = ["speed", "precision", "compression", "aid", "thesis", "converged", "peers"]
# converged runs for hours, in lanes: python -m benchmarks.converged
RUN_BY_DEFAULT = ["speed", "precision", "compression", "aid", "peers"]


def machine() -> str:
    cpu = "unknown CPU"
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                cpu = line.split(":", 1)[1].strip()
                break
    except OSError:
        pass
    return (
        f"{platform.system()} {platform.machine()}, {os.cpu_count()} cores ({cpu}), torch {torch.__version__}, "
        f"{torch.get_num_threads()} threads, no GPU used"
    )


def main(argv: list[str] | None = None) -> None:
    ap = argparse.ArgumentParser(prog="python -m benchmarks")
    ap.add_argument("names", nargs="*", default=RUN_BY_DEFAULT, help=f"subset of {ORDER}")
    ap.add_argument("--quick", action="store_true", help="smaller sizes for a fast check")
    ap.add_argument("--out", type=Path, default=Path(os.environ.get("GEODISTILL_BENCH_DIR", "/tmp/geodistill-bench")))
    args = ap.parse_args(argv)
    results = HERE / "results"
    results.mkdir(exist_ok=True)
    threads = os.environ.get("OMP_NUM_THREADS")
    cmd = (
        (f"OMP_NUM_THREADS={threads} " if threads else "")
        + "python -m benchmarks "
        + " ".join(sys.argv[1:] if argv is None else argv)
    )
    for name in args.names:
        mod = importlib.import_module(f"benchmarks.{name}")
        print(f"== {name}", flush=True)
        section = mod.main(args.out / name, quick=args.quick)
        stamp = f"_Measured {dt.date.today().isoformat()} with `{cmd.strip()}` on {machine()}._\n\n"
        (results / f"{name}.md").write_text(section.rstrip() + "\n\n" + stamp)
        print(section, flush=True)
    assemble(results)


def assemble(results: Path) -> None:
    """Rewrite BENCHMARKS.md from the sections in ``results`` (in ``ORDER``)."""
    parts = [
        "# geodistill benchmarks\n",
        "Every section says the command that produced it; re-run one with "
        "`OMP_NUM_THREADS=1 python -m benchmarks NAME` (`make bench` runs all). Speed is measured as ratios "
        "within one run on one machine.\n",
    ]
    parts += [(results / f"{n}.md").read_text() for n in ORDER if (results / f"{n}.md").is_file()]
    (HERE.parent / "BENCHMARKS.md").write_text("\n".join(parts))


if __name__ == "__main__":
    main()
