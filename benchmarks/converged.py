"""Converged distillation on AID (issue 11): which method beats CNN3 alone once every run converged.

AID 60/20/20 (split seed 0), 32 px, dihedral views; the thesis's CNN4 teacher (900k images
seen, 150 epochs of 6,000, lr 3e-3) and CNN3 student (3.6M images, 600 epochs, lr 1e-2),
cosine decay to zero, precision auto; seeds 0-4. Methods: KL (α 0.9, T 4), DIST (τ 1), KL from
the teacher averaged over the 8 cached views, and KL from the mean logits of 3 teachers (seeds
0-2). One study, run by the study engine; the budget check is a second study: the student alone
at twice the images (7.2M) on seeds 0-2, converged when it gains < 0.5 validation points on
average. The method is chosen by mean validation accuracy over the seeds, never by test.

Lanes: ``python -m benchmarks.converged --shard 1/2`` and ``--shard 2/2`` at once (one torch
thread each) share the work through the folder; ``--summarise`` writes the section from what has
finished. About 8 hours on 2 cores. ``--quick``: the synthetic set, 2 epochs, seeds 0-1, DIST only.
"""

from __future__ import annotations

import argparse
import statistics
from pathlib import Path

from benchmarks.common import AID
from geodistill.analysis.summary import format_summary, summarise
from geodistill.config import Study
from geodistill.core import log as gdlog
from geodistill.engine.convergence import BUDGET_GAIN
from geodistill.study.choose import by_validation
from geodistill.study.execute import Options, execute, result_of
from geodistill.study.plan import StudyPlan, plan

KL = {"loss": "kl", "alpha": 0.9, "T": 4.0}
METHODS = [KL, {"loss": "dist", "T": 1.0}, {**KL, "view_mean": True}, {**KL, "teachers": "ensemble"}]


def study(quick: bool, twice: bool = False) -> Study:
    """The comparison (``twice``: the budget check's students alone at twice the images)."""
    data = {"dataset": "synthetic", "n_per_class": 8, "size": 16} if quick else {"dataset": "folder", "root": str(AID)}
    student = {"train": {"model": "cnn3", "lr": 1e-2, "auto_images": 7_200_000 if twice else 3_600_000}}
    return Study(
        base={
            "data": {"size": 32, **data},
            "train": {
                "batch_size": 64,
                "warmup_epochs": 1,
                "epochs": 2 if quick else "auto",
                "precision": "auto",
                "progress": False,
            },
        },
        teacher={"train": {"model": "cnn4", "lr": 3e-3, "auto_images": 900_000}},
        student=student,
        objectives=[{"loss": "student"}] if twice else [{"loss": "student"}, *(METHODS[1:2] if quick else METHODS)],
        seeds=[0, 1] if quick else [0, 1, 2] if twice else [0, 1, 2, 3, 4],
    )


def budget(main_plan: StudyPlan, check_plan: StudyPlan, out: Path) -> str:
    """The mean budget check over the seeds both studies finished."""
    gains = []
    for a, b in zip(main_plan.runs, check_plan.runs):
        r1, r2 = result_of(out, a.name), result_of(out / "twice", b.name)
        if a.label == "student" and r1.ok and r2.ok:
            gains.append(100 * (r2.val_accuracy - r1.val_accuracy))
    if not gains:
        return "Budget check: not run yet."
    mean = statistics.fmean(gains)
    state = "converged" if mean < BUDGET_GAIN else "NOT converged"
    each = ", ".join(f"{g:+.2f}" for g in gains)
    what = f"Budget check (the student alone at twice the images, {len(gains)} seeds)"
    return f"{what}: {each}, mean {mean:+.2f} validation points: {state}."


def section(out: Path, quick: bool) -> str:
    """The Markdown section from the runs that finished."""
    main_plan, check_plan = plan(study(quick), out), plan(study(quick, twice=True), out / "twice")
    labelled = [("teacher", result_of(out, main_plan.teachers[0].name))]
    labelled += [(j.label, result_of(out, j.name)) for j in main_plan.runs]
    best, vals = by_validation([(label, r) for label, r in labelled[1:] if label != "student"])
    chosen = f"Chosen by mean best validation accuracy over the seeds: **{best}**" if best else "No method finished yet"
    ranked = "; ".join(f"{label} {100 * v:.2f}%" for label, v in sorted(vals.items(), key=lambda kv: -kv[1]))
    return "\n".join([
        "## Converged distillation on AID (issue 11)",
        "",
        "AID 60/20/20 (split seed 0), 32 px, CNN4 teacher (900k images seen) -> CNN3 (3.6M, 600 epochs on AID), "
        "cosine to 0, seeds 0-4, one study of the study engine (`python -m benchmarks.converged`)."
        + (" **--quick**: the synthetic set, 2 epochs: the numbers only show that it runs." if quick else ""),
        "",
        format_summary(summarise([(label, r) for label, r in labelled if r.ok])),
        f"{chosen} ({ranked}).",
        "",
        budget(main_plan, check_plan, out),
        "",
    ])  # fmt: skip


def main(out_dir: Path, quick: bool = False, shard: str | None = None) -> str:
    """Run (or resume) both studies, or one shard of each; returns the section."""
    opts = Options(shard=shard or "1/1", what="converged")
    execute(plan(study(quick), out_dir), out_dir, opts)
    execute(plan(study(quick, twice=True), out_dir / "twice"), out_dir / "twice", opts)
    return section(out_dir, quick)


if __name__ == "__main__":
    ap = argparse.ArgumentParser(prog="python -m benchmarks.converged")
    ap.add_argument("--out", type=Path, default=Path("/work/bench/converged"))
    ap.add_argument("--quick", action="store_true")
    ap.add_argument("--shard", default=None)
    ap.add_argument("--summarise", action="store_true")
    args = ap.parse_args()
    gdlog.setup()
    print(section(args.out, args.quick) if args.summarise else main(args.out, args.quick, args.shard))
