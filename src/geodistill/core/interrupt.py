"""Ctrl-C (SIGINT) and SIGTERM: stop at a step boundary, after a resumable checkpoint.

Once `handle_signals` is installed (the command line does it first thing) both signals raise
`Interrupted` at once, except inside `deferred()` (the training loop): there the first signal is
only recorded, and the loop asks `take()` after each step, writes ``last.ckpt`` and raises
`Interrupted` itself, so nothing is half-done and resume is exact. A second signal inside
`deferred()` raises at once, leaving the last checkpoint written. A sweep's worker processes
only record signals (``record_only``). Without `handle_signals` (the Python API) Python's own
behaviour stands: SIGINT is a `KeyboardInterrupt` wherever it lands.
"""

from __future__ import annotations

import contextlib
import signal
from collections.abc import Iterator

SIGNALS = (signal.SIGINT, signal.SIGTERM)

_pending: list[int] = []
_depth = 0
_record_only = False


class Interrupted(KeyboardInterrupt):
    """The process was asked to stop by signal ``signum``; ``checkpoint``: the resumable
    checkpoint written just before (None when there was nothing to save); ``where``: the epoch
    and step it stopped at, in words. A `KeyboardInterrupt`, so ``except Exception`` lets it pass."""

    def __init__(self, signum: int, checkpoint: str | None = None, where: str = "") -> None:
        super().__init__(signum, checkpoint, where)
        self.signum, self.checkpoint, self.where = int(signum), checkpoint, where

    @property
    def signal_name(self) -> str:
        """'SIGINT' or 'SIGTERM'."""
        return signal.Signals(self.signum).name

    @property
    def exit_code(self) -> int:
        """128 + the signal number, as a shell reports a process the signal ended: 130, 143."""
        return 128 + self.signum


def _handler(signum: int, frame: object) -> None:
    if _record_only or (_depth and not _pending):
        if not _pending:
            _pending.append(signum)
        return
    raise Interrupted(signum)


def handle_signals(record_only: bool = False) -> None:
    """Turn SIGINT and SIGTERM into `Interrupted` (see the module docstring); main thread only.
    ``record_only``: every signal is only recorded, wherever it lands, and a run stops at its
    next step (a sweep's worker process: it may get the terminal's signal and its parent's
    forwarded copy while idle, and the parent, which got it too, stops the pool)."""
    global _record_only
    _record_only = record_only
    for s in SIGNALS:
        signal.signal(s, _handler)


@contextlib.contextmanager
def deferred() -> Iterator[None]:
    """Inside: a signal is recorded for `pending`, not raised (the training loop)."""
    global _depth
    _depth += 1
    try:
        yield
    finally:
        _depth -= 1


def pending() -> int | None:
    """The signal recorded inside `deferred()` and not yet acted on, if any."""
    return _pending[0] if _pending else None


def take() -> int | None:
    """`pending`, and forget it (the caller acts on it now)."""
    return _pending.pop() if _pending else None


__all__ = ["SIGNALS", "Interrupted", "deferred", "handle_signals", "pending", "take"]
