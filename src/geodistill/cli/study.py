"""``geodistill run`` (a recipe end to end) and ``geodistill sweep`` (a grid or ablation): studies.

Both check the user's config layer before anything trains, say the plan's expected time, and
resume when run again (the command that resumes an interrupted study is the same command).
"""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer

from geodistill.cli import errors
from geodistill.cli.options import (
    RECIPES,
    SIZE_HELP,
    DryRun,
    Protocol,
    Recipe,
    Root,
    Seeds,
    Sets,
    StudyEpochs,
    Threads,
    Verbose,
    option,
    seed_list,
    study_overrides,
    verbosity,
)
from geodistill.config.merge import deep_merge
from geodistill.config.study import load_recipe
from geodistill.study.shards import TEACHER_TIMEOUT_S

StudyDataset = Annotated[
    str | None, option(help="Dataset name (`geodistill list`).", default_text="the recipe's", metavar="NAME")
]
StudySize = Annotated[int | None, option("--size", help=SIZE_HELP, default_text="the recipe's")]


def run(
    recipe: Recipe = "demo",
    dataset: StudyDataset = None,
    protocol: Protocol = None,
    root: Root = None,
    size: StudySize = None,
    epochs: StudyEpochs = None,
    threads: Threads = None,
    teacher: Annotated[
        str | None, typer.Option(help="Use this teacher checkpoint instead of training one.", metavar="CKPT")
    ] = None,
    seeds: Seeds = None,
    out: Annotated[str | None, option(help="Folder of the study.", default_text="runs/RECIPE")] = None,
    fresh: Annotated[bool, typer.Option(help="Retrain runs that already finished.")] = False,
    budget_check: Annotated[
        bool | None,
        option(
            "--budget-check/--no-budget-check",
            help="Also train the student alone at twice the epochs, to see whether the budget converged.",
            default_text="the recipe's choice; paper does",
        ),
    ] = None,
    workers: Annotated[
        int | None,
        option(min=1, help="Student runs trained at once, each in a process of its own.", default_text="the recipe's"),
    ] = None,
    dry_run: DryRun = False,
    set_: Sets = None,
    verbose: Verbose = False,
) -> None:
    """The main job: teacher, its cache, student alone and distilled, compared on the test split."""
    verbosity(verbose)
    over = study_overrides(
        set_, dataset=dataset, protocol=protocol, root=root, size=size, epochs=epochs, threads=threads
    )
    load_recipe(recipe)  # an unknown recipe is said before anything is imported or trained
    from geodistill.study.recipe import run as run_api

    errors.resume_with(drop=("--fresh",))
    run_api(recipe, overrides=over, teacher=teacher, out=out, resume=not fresh, seeds=seed_list(seeds),
            budget_check=budget_check, dry_run=dry_run, workers=workers)  # fmt: skip


BaseRecipe = Annotated[str | None, option(help=f"Base recipe: {RECIPES}.", default_text="thesis", metavar="NAME")]
Grid = Annotated[
    list[str] | None,
    typer.Option(
        help="alpha=thesis11 | alpha=thesis5 | alpha=[0.1,0.3] | beta=[0,0.001] | beta=tied (repeatable).",
        metavar="FIELD=VALUES",
    ),
]
Ablation = Annotated[bool, typer.Option(help="student, KL, cosine, KL+cosine, thesis, DKD, DIST.")]
SweepSeeds = Annotated[
    str | None, option(help="Comma-separated.", default_text="the sweep file's, else the recipe's", metavar="LIST")
]
SweepFile = Annotated[
    Path | None, typer.Option("--file", help="YAML sweep (base/teacher/student/grid/ablation/seeds).", metavar="FILE")
]
Teacher = Annotated[str | None, typer.Option(help="Use this teacher for every seed.", metavar="CKPT")]
Workers = Annotated[int, typer.Option(min=1, help="Points run in parallel processes.")]
WorkerDevices = Annotated[
    str | None, typer.Option(help="GPU ids for the workers, e.g. 0,1 (one per worker).", metavar="IDS")
]
KeepFailed = Annotated[bool, typer.Option(help="Do not retry points that failed before.")]
ShardOpt = Annotated[
    str | None,
    typer.Option(
        help="Run one share of the points: I/N, 1-based (1/4 ... 4/4), or 'slurm' to read it from "
        "SLURM_ARRAY_TASK_ID/_MIN/_COUNT (e.g. sbatch --array=1-4 or 0-3). Give every shard the same "
        "arguments and --out; teachers are built once and shared through the folder.",
        metavar="I/N|slurm",
    ),
]
TeacherTimeout = Annotated[float, typer.Option(help="Seconds a shard waits for a teacher another shard is building.")]
SweepOut = Annotated[Path, typer.Option(help="Folder of the sweep.")]


def sweep(
    recipe: BaseRecipe = None,
    dataset: StudyDataset = None,
    protocol: Protocol = None,
    root: Root = None,
    size: StudySize = None,
    epochs: StudyEpochs = None,
    threads: Threads = None,
    grid: Grid = None,
    ablation: Ablation = False,
    seeds: SweepSeeds = None,
    file: SweepFile = None,
    teacher: Teacher = None,
    workers: Workers = 1,
    devices: WorkerDevices = None,
    keep_failed: KeepFailed = False,
    shard: ShardOpt = None,
    teacher_timeout: TeacherTimeout = TEACHER_TIMEOUT_S,
    out: SweepOut = Path("runs/sweep"),
    dry_run: DryRun = False,
    set_: Sets = None,
    verbose: Verbose = False,
) -> None:
    """Run (or resume) an α/β grid and/or a loss ablation over seeds, or one shard of it; then
    `geodistill report OUT`."""
    verbosity(verbose)
    over = study_overrides(
        set_, dataset=dataset, protocol=protocol, root=root, size=size, epochs=epochs, threads=threads
    )
    if recipe:
        load_recipe(recipe)  # an unknown recipe is said before anything is imported or trained
    from geodistill.study.grid import load_sweep_file, parse_grid
    from geodistill.study.sweep import run_sweep

    spec = load_sweep_file(file) if file else {}
    spec["recipe"] = recipe or spec.get("recipe") or "thesis"  # a CNN4 teacher and CNN3 student unless told otherwise
    spec["base"] = deep_merge(spec.get("base", {}), over)
    if grid:
        spec["grid"] = deep_merge(spec.get("grid", {}), parse_grid(grid))
    spec["ablation"] = ablation or spec.get("ablation", False)
    if seeds:
        spec["seeds"] = seed_list(seeds)
    errors.resume_with()
    run_sweep(spec, out, workers=workers, teacher_ckpt=teacher, retry_failed=not keep_failed,
              devices=devices.split(",") if devices else None, shard=shard, teacher_timeout=teacher_timeout,
              dry_run=dry_run)  # fmt: skip
