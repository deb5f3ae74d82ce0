"""``geodistill frontier``: which student to ship under a latency or size budget, and whether
distillation pays for it (`geodistill.frontier`). Without options: the embedded synthetic
frontier (`frontier.defaults.embedded`), a few minutes on a laptop CPU."""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING, Annotated, Any

import typer

from geodistill.cli import errors
from geodistill.cli.options import (
    DryRun,
    Protocol,
    Root,
    Sets,
    Threads,
    Verbose,
    option,
    seed_list,
    study_overrides,
    verbosity,
)
from geodistill.cli.study import ShardOpt
from geodistill.config.merge import deep_merge
from geodistill.core.errors import GeodistillError

if TYPE_CHECKING:
    from geodistill.frontier.spec import FrontierSpec

Teacher = Annotated[
    str | None,
    option(
        help="A trained teacher's model.ckpt (its split is used for every seed), or MODEL@SIZE to train one per "
        "split, e.g. efficientnet_lite2@128 (with --teacher-weights imagenet).",
        default_text="cnn4@32",
        metavar="CKPT|MODEL@SIZE",
    ),
]
Students = Annotated[
    str | None,
    option(
        help="Comma-separated candidates MODEL[@SIZE], e.g. cnn3@32,cnn3x2@32,efficientnet_lite0@96.",
        default_text="cnn3x0.5@16,cnn3@24,cnn3@32",
        metavar="LIST",
    ),
]
Weights = Annotated[str | None, typer.Option(help="'imagenet' or a local weights file.", metavar="W")]
Methods = Annotated[
    str | None,
    option(
        help="Comma-separated distillation methods to choose from on validation: kl, dist, ens (KL from a "
        "3-teacher ensemble).",
        default_text="kl,dist",
        metavar="LIST",
    ),
]
Seeds = Annotated[
    str | None, option(help="Split seeds, comma-separated (each its own split).", default_text="0,1", metavar="LIST")
]
ScreenSeeds = Annotated[
    str | None,
    option(
        help="Seeds whose validation split chooses each student's method.",
        default_text="the first seed",
        metavar="LIST",
    ),
]
ClaimSeeds = Annotated[
    str | None,
    option(
        help="More seeds for the students on either Pareto set, e.g. 3,4 (5 splits for a claim).",
        default_text="none",
        metavar="LIST",
    ),
]


def frontier(
    dataset: Annotated[
        str | None, option(help="Dataset name (`geodistill list`).", default_text="synthetic", metavar="NAME")
    ] = None,
    protocol: Protocol = None,
    root: Root = None,
    teacher: Teacher = None,
    teacher_weights: Annotated[str | None, typer.Option(help="The teacher's initial weights.", metavar="W")] = None,
    students: Students = None,
    weights: Weights = None,
    methods: Methods = None,
    seeds: Seeds = None,
    screen_seeds: ScreenSeeds = None,
    claim_seeds: ClaimSeeds = None,
    epochs: Annotated[
        str | None,
        option(
            "--epochs",
            help="Epochs of every run: a number or 'auto' (converged, with a budget check).",
            default_text="30",
            metavar="N|auto",
        ),
    ] = None,
    threads: Threads = None,
    max_latency_ms: Annotated[
        float | None, option(min=0.0, help="int8 ONNX latency budget at batch 1, here.", default_text="1", metavar="MS")
    ] = None,
    max_size_kb: Annotated[
        float | None, option(min=0.0, help="Model file size budget (int8 ONNX).", default_text="none", metavar="KB")
    ] = None,
    workers: Annotated[int, typer.Option(min=1, help="Runs trained at once, each in a process of its own.")] = 2,
    shard: ShardOpt = None,
    out: Annotated[Path, typer.Option(help="Folder of the frontier.")] = Path("runs/frontier"),
    dry_run: DryRun = False,
    set_: Sets = None,
    verbose: Verbose = False,
) -> None:
    """Train candidate students alone and distilled, measure their int8 latency, and print the
    accuracy-latency frontier and the best student under the budget."""
    verbosity(verbose)
    over = study_overrides(set_, dataset=dataset, protocol=protocol, root=root, epochs=epochs, threads=threads)
    from geodistill.frontier.run import frontier as frontier_api
    from geodistill.study.execute import Options
    from geodistill.study.shards import parse_shard

    given = dict(teacher=teacher, teacher_weights=teacher_weights, students=students, weights=weights)
    given.update(methods=methods, seeds=seeds, screen_seeds=screen_seeds, claim_seeds=claim_seeds)
    given.update(max_latency_ms=max_latency_ms)
    spec = _spec(over, **given, max_size_kb=max_size_kb)
    errors.resume_with()
    frontier_api(spec, out, Options(shard=parse_shard(shard), workers=workers, dry_run=dry_run))


def _spec(
    over: dict,
    *,
    teacher: str | None,
    teacher_weights: str | None,
    students: str | None,
    weights: str | None,
    methods: str | None,
    seeds: str | None,
    screen_seeds: str | None,
    claim_seeds: str | None,
    max_latency_ms: float | None,
    max_size_kb: float | None,
) -> FrontierSpec:
    """The embedded `FrontierSpec` with the user's config layer and options over it."""
    from geodistill.config.study import Student
    from geodistill.frontier.defaults import embedded

    spec = embedded()
    roles = {r: over.pop(r) for r in ("teacher", "student") if r in over}
    update: dict[str, Any] = {"base": _base(spec.base, over)}
    if teacher:
        update.update(_teacher(teacher, teacher_weights))
    for role, layer in roles.items():  # --set teacher.KEY / student.KEY over the role's layer
        update[role] = deep_merge(update.get(role, getattr(spec, role)), layer)
    if students:
        update["students"] = [Student.parse(s, weights=weights) for s in students.split(",") if s.strip()]
    elif weights:
        update["students"] = [s.model_copy(update={"weights": weights}) for s in spec.students]
    for key, value in (("methods", _methods(methods)), ("seeds", seed_list(seeds))):
        if value:
            update[key] = value
    update["screen_seeds"] = seed_list(screen_seeds) or (update.get("seeds") or spec.seeds)[:1]
    update["claim_seeds"] = seed_list(claim_seeds) or []
    update.update(max_latency_ms=max_latency_ms or spec.max_latency_ms, max_size_kb=max_size_kb)
    return type(spec).model_validate({**spec.model_dump(), **update})


def _base(embedded: dict, over: dict) -> dict:
    """The embedded base, with a named dataset or protocol replacing its synthetic data section."""
    data = over.get("data", {})
    if data.get("dataset") or data.get("protocol"):
        embedded = {**embedded, "data": {"augment": embedded["data"]["augment"]}}
    return deep_merge(embedded, over)


def _teacher(text: str, weights: str | None) -> dict[str, Any]:
    """``--teacher``: a checkpoint, or MODEL@SIZE as the teacher role's config."""
    if text.endswith(".ckpt") or Path(text).is_file():
        if not Path(text).is_file():
            raise GeodistillError(f"--teacher {text}: no such file; give a model.ckpt or MODEL@SIZE.")
        return {"teacher_ckpt": text, "teacher": {}}
    model, _, size = text.partition("@")
    if size and not size.isdigit():
        raise GeodistillError(f"--teacher {text}: the size after @ must be a number of pixels, e.g. {model}@128.")
    train = {"model": model, **({"weights": weights} if weights else {})}
    return {"teacher": {"train": train, **({"data": {"size": int(size)}} if size else {})}}


def _methods(text: str | None) -> list[str] | None:
    """``--methods kl,dist``: names of the frontier's methods, or one sentence."""
    if not text:
        return None
    from geodistill.frontier.spec import METHODS

    names = [m.strip() for m in text.split(",") if m.strip()]
    unknown = [m for m in names if m not in METHODS]
    if unknown:
        raise GeodistillError(f"--methods: {', '.join(unknown)} unknown; choose among {', '.join(METHODS)}.")
    return names
