"""The options the commands share, their help (defaults and choices read from the config
schema, `config.run`), and the one way flags become a validated `RunConfig`.

Nothing here imports torch: `geodistill --help` and a mistake on the command line answer at once.
"""

from __future__ import annotations

import typing
from pathlib import Path
from typing import Annotated, Any, Literal

import typer

from geodistill.cli import errors
from geodistill.config.merge import deep_merge, load_yaml, parse_overrides
from geodistill.config.run import RunConfig, TrainConfig, build_config, default_of, section_of
from geodistill.config.study import recipe_names
from geodistill.core import log as gdlog
from geodistill.core.errors import GeodistillError

LIST_HINT = "`geodistill list` names them"
RECIPES = " | ".join(recipe_names())
SIZE_HELP = "Square image size in pixels (32, 64, 224, ...)."
WHERE = "the command line"


def option(*decls: str, help: str = "", default_text: str | None = None, **kw: Any) -> Any:
    """A typer option whose help ends with the default it falls back to when not given (a
    config field's, a recipe's, the checkpoint's), which typer cannot show for a None default."""
    text = f"{help} [default: {default_text}]".strip() if default_text is not None else help
    return typer.Option(*decls, help=text, **kw)


def shown(dotted: str) -> str:
    """The default of a config field as ``--help`` shows it."""
    value = default_of(dotted)
    return "none" if value is None else str(value)


def choices(model: type, name: str) -> tuple[str, ...]:
    """The values a ``Literal`` config field accepts (what ``--help`` lists)."""
    return typing.get_args(model.model_fields[name].annotation)


PrecisionChoice = Literal[choices(TrainConfig, "precision")]  # type: ignore[valid-type]

Dataset = Annotated[
    str | None,
    option(help=f"Dataset name ({LIST_HINT}).", default_text=shown("data.dataset"), metavar="NAME"),
]
Protocol = Annotated[
    str | None,
    option(
        help=f"A protocol of the field: its dataset and per-class training ratio, the rest is test, e.g. aid-20 "
        f"({LIST_HINT}; with --dataset folder --root DIR for a local copy).",
        default_text="none",
        metavar="NAME",
    ),
]
Root = Annotated[str | None, typer.Option("--root", help="Dataset folder (not needed for synthetic).", metavar="DIR")]
Size = Annotated[
    int | None,
    option("--size", help=SIZE_HELP, default_text=shown("data.size")),
]
Model = Annotated[
    str | None, option(help=f"Model name ({LIST_HINT}).", default_text=shown("train.model"), metavar="NAME")
]
Epochs = Annotated[
    str | None,
    option(
        "--epochs",
        help="A number, or 'auto' (a budget of train.auto_images images seen).",
        default_text=shown("train.epochs"),
        metavar="N|auto",
    ),
]
StudyEpochs = Annotated[
    str | None,
    option(
        "--epochs",
        help="Epochs of every run, teachers and students alike: a number or 'auto' (one role only: "
        "--set teacher.train.epochs=N or --set student.train.epochs=N).",
        default_text="the recipe's",
        metavar="N|auto",
    ),
]
Threads = Annotated[
    int | None,
    option(
        "--threads",
        min=1,
        help="CPU threads per run (train.threads; part of the config: the count changes a CPU run's numbers).",
        default_text=shown("train.threads"),
    ),
]
Out = Annotated[str | None, option(help="Folder of the runs.", default_text=shown("out"), metavar="DIR")]
Name = Annotated[str | None, option(help="The run's folder name.", default_text="MODEL-LOSS-sSEED", metavar="NAME")]
Sets = Annotated[
    list[str] | None,
    typer.Option("--set", help="Config override section.key=value (repeatable).", metavar="KEY=VALUE"),
]
ConfigFile = Annotated[
    Path | None, typer.Option("--config", help="YAML config file (sections data/train/distill).", metavar="FILE")
]
Verbose = Annotated[bool, typer.Option("--verbose", "-v", help="Print every epoch's line and other detail.")]
Resume = Annotated[bool, typer.Option(help="Continue from last.ckpt; skip the run if it finished.")]
DryRun = Annotated[bool, typer.Option("--dry-run", help="Print the plan and the time estimate; train nothing.")]
Recipe = Annotated[str, typer.Option(help=f"Recipe: {RECIPES}.", metavar="NAME")]
Seeds = Annotated[str | None, typer.Option(help="Comma-separated, e.g. 0,1,2.", metavar="LIST")]


def verbosity(verbose: bool) -> None:
    """``--verbose`` (before or after the command): DEBUG messages too (every epoch's line),
    and an error's traceback."""
    if verbose:
        gdlog.setup(verbose=True)
        errors.Session.debug = True


def parse_devices(value: str | None) -> int | str | None:
    """``--devices``: a count (``2``), a list (``0,1``) or ``auto``; one sentence for anything else."""
    if value is None:
        return None
    if value.isdigit():
        return int(value)
    if value == "auto" or all(p.strip().isdigit() for p in value.split(",")):
        return value
    raise GeodistillError(f"--devices {value!r} is not a count (2), a list of device ids (0,1) or 'auto'.")


def seed_list(value: str | None) -> list[int] | None:
    """``--seeds 0,1,2`` as integers, or one sentence."""
    if not value:
        return None
    try:
        return [int(s) for s in value.split(",")]
    except ValueError:
        raise GeodistillError(f"--seeds {value!r} is not a comma-separated list of integers, e.g. 0,1,2.") from None


def flags_dict(flags: dict[str, Any]) -> dict:
    """Flags named like config fields (``model``, ``size``, ``out``) as a nested config dict;
    flags left out (None) are not set."""
    d: dict = {}
    for k, v in flags.items():
        if v is not None:
            sec = section_of(k)
            d = deep_merge(d, {sec: {k: v}} if sec else {k: v})
    return d


def build(config: Path | None, sets: list[str] | None, **flags: Any) -> RunConfig:
    """YAML file, then explicit flags, then --set overrides, validated into one RunConfig."""
    d = load_yaml(config) if config else {}
    d = deep_merge(deep_merge(d, flags_dict(flags)), parse_overrides(sets or []))
    return build_config(d, where=str(config) if config else WHERE)


def study_overrides(sets: list[str] | None, **flags: Any) -> dict:
    """The user's config layer of a study (``run``, ``sweep``): flags and ``--set``, checked
    against the config schema now (per role for ``teacher.``/``student.`` keys), before any
    teacher trains."""
    over = deep_merge(flags_dict(flags), parse_overrides(sets or []))
    build_config({k: v for k, v in over.items() if k not in ("teacher", "student")}, where=WHERE)
    for role in ("teacher", "student"):
        if over.get(role) is not None:
            if not isinstance(over[role], dict):
                raise GeodistillError(f"--set {role}=... must name a field, e.g. {role}.train.epochs=20.")
            build_config(over[role], where=f"{WHERE} ({role}.)")
    return over
