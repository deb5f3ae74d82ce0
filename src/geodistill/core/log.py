"""Output through `logging`: module loggers under ``geodistill``, one handler installed by the CLI.

Under DDP only rank 0 prints information; every rank still prints warnings and errors. Python
warnings print as one line, ``warning: <message>``, without the source line.
"""

from __future__ import annotations

import logging
import os
import sys
import warnings

ROOT = "geodistill"
_CHATTY = ("lightning.fabric", "lightning.pytorch", "lightning_fabric")  # INFO only with --verbose
_ENV_RANKS = ("RANK", "SLURM_PROCID", "LOCAL_RANK")
_LIGHTNING_RANK = "lightning.fabric.utilities.rank_zero"  # read once imported, never imported here (start-up time)


def process_rank() -> int:
    """This process's global rank: Lightning's record once Lightning is imported (a launched Fabric
    sets it), else the launcher's env."""
    rank = getattr(getattr(sys.modules.get(_LIGHTNING_RANK), "rank_zero_only", None), "rank", None)
    if rank is not None:
        return int(rank)
    for key in _ENV_RANKS:
        if os.environ.get(key, "").isdigit():
            return int(os.environ[key])
    return 0


class RankZeroFilter(logging.Filter):
    """Let records below WARNING through on rank 0 only."""

    def filter(self, record: logging.LogRecord) -> bool:
        return record.levelno >= logging.WARNING or process_rank() == 0


class _Format(logging.Formatter):
    def format(self, record: logging.LogRecord) -> str:
        msg = record.getMessage()
        return msg if record.levelno < logging.WARNING else f"{record.levelname.lower()}: {msg}"


class _ConsoleHandler(logging.StreamHandler):
    """A stream handler; without a stream of its own it writes to ``sys.stdout`` as that is
    when each record comes, so a live progress view that redirects stdout prints lines above it."""

    def __init__(self, stream=None) -> None:
        super().__init__(stream or sys.stdout)
        self.follow_stdout = stream is None

    def emit(self, record: logging.LogRecord) -> None:
        if self.follow_stdout:
            self.stream = sys.stdout
        super().emit(record)


def _show_warning(message, category, filename, lineno, file=None, line=None) -> None:
    """Python warnings as one line through the logger (no source line, line breaks folded)."""
    logging.getLogger(ROOT).warning(" ".join(str(message).split()))


def is_setup() -> bool:
    """Whether `setup` installed geodistill's console handler in this process."""
    return any(getattr(h, "_geodistill", False) for h in logging.getLogger(ROOT).handlers)


def setup(verbose: bool = False, stream=None) -> logging.Handler:
    """Install (once) the handler that prints geodistill's messages, and one-line warnings;
    ``verbose`` shows DEBUG messages too (every epoch's line) and Lightning's information."""
    logger = logging.getLogger(ROOT)
    for h in list(logger.handlers):
        if getattr(h, "_geodistill", False):
            logger.removeHandler(h)
    handler = _ConsoleHandler(stream)
    handler._geodistill = True  # type: ignore[attr-defined]
    handler.setFormatter(_Format())
    handler.addFilter(RankZeroFilter())
    logger.addHandler(handler)
    logger.setLevel(logging.DEBUG if verbose else logging.INFO)
    logger.propagate = False
    handler._verbose = verbose  # type: ignore[attr-defined]
    quiet_lightning()
    warnings.showwarning = _show_warning
    return handler


def quiet_lightning() -> None:
    """Lightning's information (its per-process banners, "Initializing distributed: GLOBAL_RANK:
    1 ...") only with ``--verbose``, once `setup` ran. Lightning sets its loggers to INFO as it is
    imported, which is after `setup` now that the command line imports it lazily: the code that
    builds a Fabric calls this again."""
    handlers = [h for h in logging.getLogger(ROOT).handlers if getattr(h, "_geodistill", False)]
    if handlers:
        verbose = getattr(handlers[-1], "_verbose", False)
        for name in _CHATTY:
            logging.getLogger(name).setLevel(logging.NOTSET if verbose else logging.WARNING)
