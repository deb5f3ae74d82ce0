"""Atomic file writes: a reader sees the old file or the new one, never half of one.

Everything is written to a temp file in the destination's folder, flushed and fsynced, then
renamed onto the destination with ``os.replace`` (atomic on POSIX and Windows). On any error
the temp file is removed and the destination is untouched. The file gets the mode a plain
``open`` would give a new file (``0o666`` less the umask: 0644 under umask 022), not the
private 0600 of ``mkstemp``, so a shared results folder stays readable.
"""

from __future__ import annotations

import contextlib
import json
import os
import tempfile
from collections.abc import Iterator
from pathlib import Path
from typing import IO, Any


def new_file_mode() -> int:
    """The permission bits a newly created file gets under this process's umask."""
    umask = os.umask(0o022)  # reading the umask means setting it; put it straight back
    os.umask(umask)
    return 0o666 & ~umask


@contextlib.contextmanager
def atomic_file(path: str | Path, mode: str = "wb", **open_kw: Any) -> Iterator[IO]:
    """``with atomic_file(p, "w") as f: f.write(...)`` -> ``p`` appears complete or not at all."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent)
    try:
        if hasattr(os, "fchmod"):  # POSIX; on Windows mkstemp's file is not private anyway
            os.fchmod(fd, new_file_mode())
        with os.fdopen(fd, mode, **open_kw) as f:
            yield f
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise


def write_bytes(path: str | Path, data: bytes) -> Path:
    """Write ``data`` to ``path`` atomically."""
    with atomic_file(path, "wb") as f:
        f.write(data)
    return Path(path)


def write_text(path: str | Path, text: str) -> Path:
    """Write UTF-8 ``text`` to ``path`` atomically (newlines as given)."""
    with atomic_file(path, "w", encoding="utf-8", newline="") as f:
        f.write(text)
    return Path(path)


def write_json(path: str | Path, obj: Any) -> Path:
    """Write ``obj`` as indented JSON atomically (numpy/torch scalars via ``float``)."""
    return write_text(path, json.dumps(obj, indent=2, default=float))


def create_once(path: str | Path, text: str) -> bool:
    """Write ``text`` to ``path`` only if ``path`` does not exist yet, atomically: of several
    processes that race, exactly one creates the file (a hard link of a complete temp file, which
    fails if the name is taken) and the others leave it as it is. Returns whether this one did."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f".{path.name}.{os.getpid()}.once")
    write_text(tmp, text)
    try:
        os.link(tmp, path)
        return True
    except FileExistsError:
        return False
    finally:
        tmp.unlink(missing_ok=True)
