"""Run the benchmarks; a full run rewrites their sections in BENCHMARKS.md.

Each benchmark module has ``main(out_dir, quick) -> str`` (a Markdown section). A full run keeps
the section in ``benchmarks/results/NAME.md`` and puts it in BENCHMARKS.md in place of the
section with its heading, leaving the others (and notes written by hand) as they are; ``--quick``
(seconds, the synthetic set) writes only under ``--out``: ``OUT/NAME.md`` for each benchmark,
nothing in the repository.
"""

from __future__ import annotations

import argparse
import datetime as dt
import importlib
import os
import sys
from pathlib import Path

from benchmarks.common import machine
from geodistill.core.atomic import write_text

HERE = Path(__file__).resolve().parent
ORDER = ["speed", "precision", "compression", "aid", "thesis", "converged", "peers", "frontier", "paper_gpu"]
# `make bench`: the ones that fit an hour on 2 cores; converged and frontier run for hours in lanes
# (python -m benchmarks.converged / benchmarks.frontier --shard I/N), thesis is the 80-minute
# acceptance run, paper_gpu needs a GPU
RUN_BY_DEFAULT = ["speed", "precision", "compression", "aid", "peers"]


def main(argv: list[str] | None = None) -> None:
    ap = argparse.ArgumentParser(prog="python -m benchmarks")
    ap.add_argument("names", nargs="*", help=f"subset of {ORDER} (default: {' '.join(RUN_BY_DEFAULT)}; --quick: all)")
    ap.add_argument("--quick", action="store_true", help="seconds on the synthetic set; writes only under --out")
    ap.add_argument("--out", type=Path, default=Path(os.environ.get("GEODISTILL_BENCH_DIR", "/tmp/geodistill-bench")))
    args = ap.parse_args(argv)
    names = args.names or (ORDER if args.quick else RUN_BY_DEFAULT)
    unknown = [n for n in names if n not in ORDER]
    if unknown:
        raise SystemExit(f"unknown benchmark {unknown[0]!r}; choose from {', '.join(ORDER)}")
    threads = os.environ.get("OMP_NUM_THREADS")
    given = " ".join(sys.argv[1:] if argv is None else argv)
    cmd = (f"OMP_NUM_THREADS={threads} " if threads else "") + f"python -m benchmarks {given}".strip()
    for name in names:
        print(f"== {name}", flush=True)
        section = importlib.import_module(f"benchmarks.{name}").main(args.out / name, quick=args.quick)
        stamp = f"_Measured {dt.date.today().isoformat()} with `{cmd}` on {machine()}._\n\n"
        target = args.out / f"{name}.md" if args.quick else HERE / "results" / f"{name}.md"
        write_text(target, section.rstrip() + "\n\n" + stamp)
        print(section, flush=True)
    if not args.quick:
        for name in names:
            replace_section(HERE.parent / "BENCHMARKS.md", (HERE / "results" / f"{name}.md").read_text())


def replace_section(doc: Path, section: str) -> None:
    """Put ``section`` (Markdown starting with its ``## `` heading) in ``doc`` in place of the
    section with the same heading (up to the next ``## `` heading), or at the end: the other
    sections, notes written by hand among them, stay as they are."""
    heading = section.splitlines()[0]
    lines = doc.read_text().splitlines(keepends=True) if doc.is_file() else ["# geodistill benchmarks\n", "\n"]
    start = next((i for i, line in enumerate(lines) if line.rstrip("\n") == heading), None)
    if start is None:
        head, tail = lines + (["\n"] if lines and lines[-1].strip() else []), []
    else:
        end = next((i for i in range(start + 1, len(lines)) if lines[i].startswith("## ")), len(lines))
        head, tail = lines[:start], lines[end:]
    body = section.rstrip("\n") + "\n" + ("\n" if tail else "")
    write_text(doc, "".join(head) + body + "".join(tail))


if __name__ == "__main__":
    main()
