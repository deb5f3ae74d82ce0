"""Sweep shards: which points a process runs, and the lock files through which shards share teachers.

A sweep can be spread over N processes (a SLURM job array, or any N processes on machines that
share the sweep folder). Each process is one *shard* ``I/N``, **1-based** (``1/4`` … ``4/4``), and
runs the points at plan positions ``k`` with ``k mod N = I - 1`` (round-robin over the plan's
point list, which is a pure function of the sweep description, so every shard computes the same
assignment and every point belongs to exactly one shard). ``--shard slurm`` reads the shard from
``SLURM_ARRAY_TASK_ID``, ``SLURM_ARRAY_TASK_MIN`` (and ``_STEP``) and ``SLURM_ARRAY_TASK_COUNT``,
so ``--array=0-3`` and ``--array=1-4`` both give shards 1/4 … 4/4.

Teachers are shared, not assigned: the first shard that needs a teacher creates its lock file
(``open(O_CREAT | O_EXCL)``, holding pid, host, shard, start time and SLURM job id), trains it,
builds its cache and removes the lock; the others wait for the lock to go. A lock whose owner is
gone is taken over: one left by a dead process on this host, or one left by an earlier run of
the same shard on another host (a shard never runs twice at once). Any other lock is waited on
for at most a timeout; the caller then reports the owner and the lock file.
"""

from __future__ import annotations

import json
import logging
import os
import socket
import time
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any, TypeVar

from geodistill.core.errors import GeodistillError

TEACHER_TIMEOUT_S = 24 * 3600.0  # how long a shard waits for a teacher another shard builds

logger = logging.getLogger(__name__)

T = TypeVar("T")
SLURM_HELP = "run it inside an sbatch --array job, or give --shard I/N"


@dataclass(frozen=True)
class Shard:
    """Shard ``index`` of ``count`` (1-based): the points at plan positions ``k ≡ index − 1 (mod count)``."""

    index: int = 1
    count: int = 1

    def __str__(self) -> str:
        return f"{self.index}/{self.count}"

    @property
    def whole(self) -> bool:
        """True for ``1/1``: the process runs the whole sweep."""
        return self.count == 1

    def owns(self, position: int) -> bool:
        """Whether the point at 0-based plan position ``position`` is this shard's."""
        return position % self.count == self.index - 1

    def take(self, items: Sequence[T]) -> list[T]:
        """This shard's share of ``items`` (round-robin, order kept)."""
        return [x for k, x in enumerate(items) if self.owns(k)]


def _int(text: str, what: str) -> int:
    try:
        return int(text.strip())
    except (ValueError, AttributeError):
        raise GeodistillError(f"{what} must be a whole number, not {text!r}.") from None


def parse_shard(text: str | Shard | None, env: Mapping[str, str] | None = None) -> Shard:
    """``"2/4"`` -> ``Shard(2, 4)`` (1-based); ``"slurm"`` -> the SLURM array task's shard;
    None -> ``Shard(1, 1)`` (the whole sweep)."""
    if text is None:
        return Shard()
    if isinstance(text, Shard):
        index, count = text.index, text.count
    elif text.strip().lower() == "slurm":
        return slurm_shard(os.environ if env is None else env)
    elif "/" not in text:
        raise GeodistillError(f"--shard {text!r} is not I/N (1-based, e.g. 1/4) or 'slurm'.")
    else:
        i, n = text.split("/", 1)
        index, count = _int(i, f"--shard {text!r}: I"), _int(n, f"--shard {text!r}: N")
    if count < 1 or not 1 <= index <= count:
        raise GeodistillError(f"--shard {index}/{count}: shards count from 1, so I must be in 1..N and N >= 1.")
    return Shard(index, count)


def slurm_shard(env: Mapping[str, str]) -> Shard:
    """The shard of a SLURM array task: index ``(ID − MIN) / STEP + 1`` of ``COUNT``, for an array
    given as one range (``--array=0-3``, ``1-4``, ``0-14:2``; a ``%`` throttle is fine)."""
    missing = [k for k in ("SLURM_ARRAY_TASK_ID", "SLURM_ARRAY_TASK_COUNT") if not env.get(k)]
    if missing:
        raise GeodistillError(f"--shard slurm needs {' and '.join(missing)}; {SLURM_HELP}.")
    task = _int(env["SLURM_ARRAY_TASK_ID"], "SLURM_ARRAY_TASK_ID")
    count = _int(env["SLURM_ARRAY_TASK_COUNT"], "SLURM_ARRAY_TASK_COUNT")
    first = _int(env.get("SLURM_ARRAY_TASK_MIN", "0"), "SLURM_ARRAY_TASK_MIN")
    step = max(1, _int(env.get("SLURM_ARRAY_TASK_STEP", "1"), "SLURM_ARRAY_TASK_STEP"))
    offset = task - first
    if offset < 0 or offset % step or offset // step >= count:
        raise GeodistillError(
            f"SLURM array task {task} is not one of {count} tasks from {first} in steps of {step}; "
            "give the array as one range (e.g. --array=1-4) or pass --shard I/N."
        )
    return Shard(offset // step + 1, count)


# ---------------------------------------------------------------- lock files


def _me(shard: Shard) -> dict[str, Any]:
    return {
        "pid": os.getpid(),
        "host": socket.gethostname(),
        "shard": str(shard),
        "since": time.strftime("%Y-%m-%d %H:%M:%S %z"),
        "slurm_job": os.environ.get("SLURM_JOB_ID"),
    }


def read_lock(path: Path) -> dict[str, Any] | None:
    """The owner record of lock file ``path``; None when there is no lock; ``{}`` while its owner
    is still writing it (or wrote something unreadable)."""
    try:
        text = path.read_text(encoding="utf-8")
    except FileNotFoundError:
        return None
    try:
        owner = json.loads(text)
    except json.JSONDecodeError:
        return {}
    return owner if isinstance(owner, dict) else {}


def describe_owner(owner: Mapping[str, Any]) -> str:
    """``shard 2/4 (pid 41 on node7, since 2025-01-01 10:00:00 +0000, SLURM job 123)``."""
    if not owner:
        return "a process that has not written its name yet"
    job = f", SLURM job {owner['slurm_job']}" if owner.get("slurm_job") else ""
    return (
        f"shard {owner.get('shard')} (pid {owner.get('pid')} on {owner.get('host')}, since {owner.get('since')}{job})"
    )


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:  # someone else's live process
        return True
    return True


def stale_reason(owner: Mapping[str, Any], shard: Shard) -> str | None:
    """Why a lock's owner is known to be gone (so the lock may be taken over), or None."""
    host, pid = owner.get("host"), owner.get("pid")
    if host == socket.gethostname():
        if isinstance(pid, int) and pid != os.getpid() and not _alive(pid):
            return f"its owner, pid {pid} on {host}, is gone"
        return None
    if host and owner.get("shard") == str(shard):
        return f"it was left on {host} by an earlier run of shard {shard}"
    return None


def _break(path: Path, owner: Mapping[str, Any], reason: str) -> None:
    """Remove a stale lock if it still holds ``owner`` (not a fresh lock taken meanwhile)."""
    if read_lock(path) == dict(owner):
        logger.warning(f"taking over {path}: {reason}")
        path.unlink(missing_ok=True)


def try_lock(path: Path, shard: Shard) -> dict[str, Any] | None:
    """Take lock file ``path`` (created with O_EXCL, holding this process's record): None when
    taken; else the record of the process that holds it. A stale lock is taken over."""
    for _ in range(3):
        try:
            fd = os.open(path, os.O_CREAT | os.O_EXCL | os.O_WRONLY, 0o644)
        except FileExistsError:
            owner = read_lock(path)
            if owner is None:  # released in between: try again
                continue
            reason = stale_reason(owner, shard) if owner else None
            if reason is None:
                return owner
            _break(path, owner, reason)
            continue
        with os.fdopen(fd, "w", encoding="utf-8") as f:
            json.dump(_me(shard), f)
            f.flush()
            os.fsync(f.fileno())
        return None
    return read_lock(path) or {}


def release(path: Path) -> None:
    """Remove lock file ``path`` if this process holds it."""
    owner = read_lock(path)
    if owner and owner.get("pid") == os.getpid() and owner.get("host") == socket.gethostname():
        path.unlink(missing_ok=True)
    elif owner is not None:
        logger.warning(f"{path} is no longer this process's lock ({describe_owner(owner)} took it over); left in place")


def wait_lock(path: Path, shard: Shard, timeout_s: float, poll_s: float = 2.0) -> dict[str, Any] | None:
    """Block until this process holds ``path``: None; or, after ``timeout_s`` seconds, the record of
    the process still holding it."""
    t0, said = time.monotonic(), False
    while True:
        owner = try_lock(path, shard)
        if owner is None:
            return None
        if time.monotonic() - t0 >= timeout_s:
            return owner
        if not said:
            logger.info(f"waiting for {path.name}: held by {describe_owner(owner)}")
            said = True
        time.sleep(max(0.01, min(poll_s, timeout_s - (time.monotonic() - t0))))


__all__ = [
    "Shard",
    "describe_owner",
    "parse_shard",
    "read_lock",
    "release",
    "slurm_shard",
    "stale_reason",
    "try_lock",
    "wait_lock",
]
