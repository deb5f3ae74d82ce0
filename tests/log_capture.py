"""Capture what geodistill logs (its module loggers) as a list of message strings."""

from __future__ import annotations

import logging
from collections.abc import Iterator
from contextlib import contextmanager


@contextmanager
def captured_log(level: int = logging.INFO) -> Iterator[list[str]]:
    """``with captured_log() as lines: ...``: every message logged under ``geodistill`` at
    ``level`` or above (INFO: what a user sees without --verbose), in order."""
    lines: list[str] = []

    class _Handler(logging.Handler):
        def emit(self, record: logging.LogRecord) -> None:
            lines.append(record.getMessage())

    logger = logging.getLogger("geodistill")
    handler, before = _Handler(), logger.level
    logger.addHandler(handler)
    logger.setLevel(level)
    try:
        yield lines
    finally:
        logger.removeHandler(handler)
        logger.setLevel(before)
