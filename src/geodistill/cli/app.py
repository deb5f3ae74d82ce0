"""The ``geodistill`` command: a thin layer over the Python API (every command is one call).

`main` installs the signal handling (`core.interrupt`) and the console output, runs the typer
app, and hands whatever it raises to `cli.errors.explain`: one line and exit status 2 for a
user's mistake, 130/143 with the resume command for Ctrl-C/SIGTERM, a traceback for a bug.
"""

from __future__ import annotations

import functools
import sys
import traceback
from collections.abc import Callable
from typing import Annotated, Any

import typer

from geodistill.cli import data, deploy, errors, frontier, study, train
from geodistill.cli.options import Verbose, verbosity
from geodistill.core import interrupt
from geodistill.core import log as gdlog

HELP = "Knowledge distillation for aerial scene classifiers: big teacher, small shippable student."

app = typer.Typer(
    add_completion=False, no_args_is_help=True, pretty_exceptions_enable=False, help=HELP, rich_markup_mode=None
)
data_app = typer.Typer(no_args_is_help=True, help="Inspect datasets.")
app.add_typer(data_app, name="data")


@app.callback()
def _options(
    verbose: Verbose = False,
    debug: Annotated[bool, typer.Option("--debug", help="Print an error's traceback too.")] = False,
) -> None:
    """Knowledge distillation for aerial scene classifiers: big teacher, small shippable student."""
    verbosity(verbose)
    errors.Session.debug = errors.Session.debug or debug


def _command(fn: Callable) -> Callable:
    """``fn`` as a command whose interruption reaches `main` as it is (typer would turn a
    `KeyboardInterrupt`, our `Interrupted` included, into a silent exit 130)."""

    @functools.wraps(fn)
    def command(*args: Any, **kw: Any) -> Any:
        try:
            return fn(*args, **kw)
        except KeyboardInterrupt as e:
            raise errors.Stopped(e) from e

    return command


for group, name, fn in (
    (app, "train", train.train),
    (app, "distill", train.distill),
    (app, "evaluate", train.evaluate),
    (app, "run", study.run),
    (app, "sweep", study.sweep),
    (app, "frontier", frontier.frontier),
    (app, "report", deploy.report),
    (app, "export", deploy.export),
    (app, "predict", deploy.predict),
    (app, "profile", deploy.profile),
    (app, "list", data.list_names),
    (data_app, "info", data.data_info),
    (data_app, "download", data.data_download),
    (data_app, "preview", data.data_preview),
):
    group.command(name)(_command(fn))


def main(argv: list[str] | None = None) -> None:
    """Entry point: run the app; a user's mistake or a signal ends in one line (`cli.errors`)."""
    interrupt.handle_signals()
    gdlog.setup()
    try:
        code = app(args=argv, prog_name=errors.PROG, standalone_mode=False)
    except SystemExit:
        raise
    except BaseException as e:
        failure = errors.explain(e)
        if failure is None:
            raise
        if errors.Session.debug and failure.message:
            traceback.print_exception(e)
        if failure.stdout:
            typer.echo(failure.stdout)
        if failure.message:
            typer.echo(failure.message, err=True)
        sys.exit(failure.code)
    sys.exit(code if isinstance(code, int) else 0)
