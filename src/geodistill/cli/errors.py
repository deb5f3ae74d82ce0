"""The one place where the command line turns an exception into what the user reads.

Every user mistake (a `GeodistillError`, typer's usage errors, a folder that cannot be written)
ends in one line on stderr and exit status 2; a signal ends in one line with the command that
resumes the work and 128 + the signal number (130 for Ctrl-C, 143 for SIGTERM). Anything else
is a bug and keeps its traceback. ``--debug`` (or ``--verbose``) prints the traceback first.
"""

from __future__ import annotations

import errno
import shlex
import sys
from dataclasses import dataclass

from typer.exceptions import Abort, Exit, TyperException

from geodistill.core.errors import GeodistillError
from geodistill.core.interrupt import Interrupted

USAGE = 2
PROG = "geodistill"


@dataclass(frozen=True)
class Failure:
    """What to print (one line on stderr, and ``stdout`` first: the help of a bare group) and the exit status."""

    message: str
    code: int
    stdout: str = ""


class Stopped(Exception):
    """A command's `KeyboardInterrupt` (an `Interrupted` included), carried past typer to `main`."""

    def __init__(self, interrupt: KeyboardInterrupt) -> None:
        super().__init__(str(interrupt))
        self.interrupt = interrupt


class Session:
    """What the running command told this module: whether to show tracebacks, and the command
    that resumes its work once it has started any (None before)."""

    debug = False
    resume: list[str] | None = None


def resume_with(add: tuple[str, ...] = (), drop: tuple[str, ...] = ()) -> None:
    """From now on an interruption names this command line, less ``drop``, plus ``add``, as
    the one that resumes it (``train`` adds ``--resume``; ``run`` drops ``--fresh``)."""
    args = [a for a in sys.argv[1:] if a not in drop]
    Session.resume = args + [a for a in add if a not in args]


def _one_line(text: str) -> str:
    return " ".join(str(text).split())


def _first(ctx) -> str:
    names = ctx.command.list_commands(ctx) if hasattr(ctx.command, "list_commands") else []
    return names[0] if names else "COMMAND"


def _usage(e: TyperException) -> Failure:
    """typer's (vendored click's) usage errors, and click's own, as one sentence."""
    ctx = getattr(e, "ctx", None)
    if type(e).__name__ == "NoArgsIsHelpError":
        example = f"{PROG} run" if ctx is None or ctx.parent is None else f"{ctx.command_path} {_first(ctx)} ..."
        return Failure(f"error: give a command (listed above), e.g. {example}", USAGE, e.format_message())
    options = getattr(e, "possibilities", None)
    if type(e).__name__ == "NoSuchOption":
        text = f"No such option: {e.option_name}" + (
            f"; did you mean {' or '.join(sorted(options))}?" if options else "."
        )
    else:
        text = e.format_message()
    help_hint = f" (see '{ctx.command_path} --help')" if ctx is not None else ""
    return Failure(f"error: {_one_line(text).rstrip('.')}{help_hint}.", getattr(e, "exit_code", USAGE) or USAGE)


def _os_error(e: OSError) -> Failure:
    """A file-system failure (an output folder that cannot be written, a missing file) in one sentence."""
    name = e.filename if e.filename is not None else "a file"
    if isinstance(e, FileExistsError | NotADirectoryError):
        what = f"{name} exists and" if isinstance(e, FileExistsError) else f"a part of {name}"
        return Failure(f"error: {what} is not a folder; choose another path (e.g. --out) or move that file.", USAGE)
    if isinstance(e, PermissionError) or e.errno in (errno.EACCES, errno.EPERM, errno.EROFS):
        fix = "choose a folder you can write to (e.g. --out) or fix its permissions"
    elif isinstance(e, FileNotFoundError):
        fix = "check the path"
    elif e.errno == errno.ENOSPC:
        fix = "free some space or choose another folder"
    else:
        fix = "check the path and its permissions"
    return Failure(f"error: {e.strerror or type(e).__name__}: {name}; {fix}.", USAGE)


def _interrupted(e: KeyboardInterrupt) -> Failure:
    if not isinstance(e, Interrupted):
        e = Interrupted(2)
    if Session.resume is None:
        return Failure(
            f"error: interrupted by {e.signal_name} before any work started; nothing was written.", e.exit_code
        )
    saved = f" at {e.where}" if e.where else ""
    saved += f", its state saved in {e.checkpoint}" if e.checkpoint else ""
    command = shlex.join([PROG, *Session.resume])
    return Failure(f"interrupted by {e.signal_name}{saved}; resume with: {command}", e.exit_code)


def explain(e: BaseException) -> Failure | None:
    """What the user reads for ``e`` and the exit status; None for a bug (keep the traceback)."""
    if isinstance(e, Stopped):
        e = e.interrupt
    if isinstance(e, GeodistillError):
        return Failure(f"error: {_one_line(e)}", USAGE)
    if isinstance(e, KeyboardInterrupt):
        return _interrupted(e)
    if isinstance(e, Exit):
        return Failure("", e.exit_code)
    if isinstance(e, Abort):
        return Failure("error: aborted.", 130)
    click = sys.modules.get("click.exceptions")  # click's own, if anything imported click
    if isinstance(e, TyperException) or (click is not None and isinstance(e, click.ClickException)):
        return _usage(e)
    if isinstance(e, OSError):
        return _os_error(e)
    return None
