"""Content fingerprints of image files, memoised by (size, mtime) so re-runs read no bytes.

Each file's fingerprint is the SHA-256 of its bytes. Hashing every byte on every run would cost
about as much as a tenth of decoding, so digests are remembered in a small JSON memo per
dataset root, keyed by relative path and trusted only while the file's byte size and
``st_mtime_ns`` are unchanged *and* the file was last modified at least ``RACY_SECONDS`` before
the memo was written (the same guard git uses against a file edited within one clock tick of
being hashed). Anything else is hashed again.
"""

from __future__ import annotations

import hashlib
import json
import os
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

RACY_SECONDS = 2.0
_MEMO_VERSION = 1
_CHUNK = 1 << 20


def file_digest(path: Path) -> str:
    """SHA-256 hex digest of the file's bytes."""
    h = hashlib.sha256()
    with open(path, "rb") as fh:
        while chunk := fh.read(_CHUNK):
            h.update(chunk)
    return h.hexdigest()


def _memo_file(memo_dir: Path, root: Path) -> Path:
    tag = hashlib.sha256(str(root.resolve()).encode()).hexdigest()[:20]
    return memo_dir / f"{tag}.json"


def _read_memo(path: Path) -> tuple[float, dict[str, list]]:
    try:
        data = json.loads(path.read_text())
        if data.get("version") != _MEMO_VERSION:
            return 0.0, {}
        return float(data["written"]), dict(data["files"])
    except (OSError, ValueError, KeyError, TypeError):
        return 0.0, {}


def _write_memo(path: Path, root: Path, files: dict[str, list]) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f".{path.name}.{os.getpid()}.tmp")
    payload = {"version": _MEMO_VERSION, "root": str(root), "written": time.time(), "files": files}
    try:
        tmp.write_text(json.dumps(payload, separators=(",", ":")))
        os.replace(tmp, path)
    except OSError:  # a memo is an optimisation only: never fail a load over it
        tmp.unlink(missing_ok=True)


def fingerprint_files(
    root: Path, paths: list[str], memo_dir: Path | None = None, threads: int = 2
) -> list[tuple[int, str]]:
    """(byte size, SHA-256 hex) of each ``root/path``, reusing memoised digests when safe."""
    memo_path = _memo_file(memo_dir, root) if memo_dir is not None else None
    written, memo = _read_memo(memo_path) if memo_path is not None else (0.0, {})
    trusted_before_ns = int((written - RACY_SECONDS) * 1e9)
    base = os.fspath(root)
    stats = [os.stat(os.path.join(base, p)) for p in paths]
    out: list[tuple[int, str] | None] = [None] * len(paths)
    todo: list[int] = []
    for i, (p, st) in enumerate(zip(paths, stats)):
        entry = memo.get(p)
        if (
            entry is not None
            and entry[0] == st.st_size
            and entry[1] == st.st_mtime_ns
            and st.st_mtime_ns < trusted_before_ns
        ):
            out[i] = (st.st_size, entry[2])
        else:
            todo.append(i)
    if todo:
        with ThreadPoolExecutor(max_workers=max(1, threads)) as pool:  # hashlib frees the GIL
            digests = list(pool.map(lambda i: file_digest(Path(base, paths[i])), todo))
        for i, d in zip(todo, digests):
            out[i] = (stats[i].st_size, d)
    if memo_path is not None and (todo or len(memo) != len(paths)):
        files = {p: [st.st_size, st.st_mtime_ns, o[1]] for p, st, o in zip(paths, stats, out)}
        _write_memo(memo_path, root, files)
    return out  # type: ignore[return-value]
