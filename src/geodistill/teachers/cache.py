"""The teacher cache: the teacher's exact answer for every (training image, view id).

Aerial scenes have no "up", so training augments with the 8 views of the dihedral group D4.
Because that set is finite, the teacher's logits z_t(g·x) and pooled features f_t(g·x) are
computed once for every training image x and view g, stored as fp16 on disk, and looked up
during student training: distillation then costs what training the student alone costs. The
same holds for any finite view set with fixed parameters, such as the 8 views x a grid of fixed
crops (`data.views.ViewSet`): the cache stores one answer per (image, view id).

The cache is keyed by sha256(teacher weights, dataset content key, image size, teacher
normalisation, view set (`data.views.ViewSet.key`), cached indices); a key mismatch means a
rebuild, and the build is atomic (a temp folder renamed into place after ``meta.json`` is written).
"""

from __future__ import annotations

import hashlib
import json
import logging
import os
import shutil
import socket
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Protocol

import numpy as np
import torch
from torch import Tensor, nn

from geodistill.data.transforms import Normalizer
from geodistill.data.views import ViewSet

logger = logging.getLogger(__name__)


class TeacherSource(Protocol):
    """Gives the teacher's (logits, features) for a student batch."""

    def __call__(
        self, idx: np.ndarray, views: Tensor, x_u8: Tensor, feats: bool = True
    ) -> tuple[Tensor, Tensor | None]: ...


def hash_state_dict(model: nn.Module) -> str:
    """sha256 over parameter and buffer names and bytes, in sorted order."""
    h = hashlib.sha256()
    for name, t in sorted(model.state_dict().items()):
        h.update(name.encode())
        h.update(t.detach().cpu().contiguous().numpy().tobytes())
    return h.hexdigest()


def cache_key(
    teacher_hash: str, data_key: str, size: int, normalizer: Normalizer, views: ViewSet, indices: np.ndarray
) -> str:
    """The identity of a cache: anything that changes the teacher's answers changes the key."""
    h = hashlib.sha256()
    payload = {
        "teacher": teacher_hash,
        "data": data_key,
        "size": int(size),
        "normalizer": normalizer.to_dict(),
        **views.key(),
        "format": 1,
    }
    h.update(json.dumps(payload, sort_keys=True).encode())
    h.update(np.ascontiguousarray(indices, dtype=np.int64).tobytes())
    return h.hexdigest()[:32]


@dataclass
class TeacherCache:
    """Memory-mapped fp16 answers: ``logits[row, view]`` and ``feats[row, view]``."""

    logits: np.ndarray
    feats: np.ndarray | None
    rows: np.ndarray
    n_views: int
    path: Path
    build_seconds: float = 0.0
    hit: bool = False  # True when an existing cache was reused rather than built

    def __call__(
        self, idx: np.ndarray, views: Tensor, x_u8: Tensor | None = None, feats: bool = True
    ) -> tuple[Tensor, Tensor | None]:
        """Look up the answers for dataset indices ``idx`` seen under view ids ``views``;
        ``feats=False`` skips reading the features when the objective has no use for them."""
        r = self.rows[idx]
        if (r < 0).any():
            raise KeyError("teacher cache asked for an image outside the cached (training) indices")
        v = views.cpu().numpy() if self.n_views > 1 else np.zeros(len(idx), dtype=np.int64)
        logits = torch.from_numpy(np.asarray(self.logits[r, v], dtype=np.float32))
        f = (
            None
            if (self.feats is None or not feats)
            else torch.from_numpy(np.asarray(self.feats[r, v], dtype=np.float32))
        )
        return logits, f


class OnTheFlyTeacher:
    """Runs the teacher on the student's exact (augmented) batch: for views outside the cache."""

    def __init__(self, teacher: nn.Module, normalizer: Normalizer) -> None:
        self.teacher, self.normalizer = teacher.eval(), normalizer

    @torch.no_grad()
    def __call__(
        self, idx: np.ndarray, views: Tensor, x_u8: Tensor, feats: bool = True
    ) -> tuple[Tensor, Tensor | None]:
        logits, f = self.teacher.forward_features(self.normalizer(x_u8))
        return logits.float(), (f.float() if feats else None)


def _open(path: Path) -> TeacherCache | None:
    meta_file = path / "meta.json"
    if not meta_file.is_file():
        return None
    meta = json.loads(meta_file.read_text())
    logits = np.load(path / "logits.npy", mmap_mode="r")
    feats = np.load(path / "feats.npy", mmap_mode="r") if (path / "feats.npy").is_file() else None
    rows = np.load(path / "rows.npy")
    return TeacherCache(logits, feats, rows, int(meta["views"]), path, float(meta.get("build_seconds", 0.0)))


def _fill(tmp: Path, teacher: nn.Module, images, indices, normalizer: Normalizer, views: ViewSet, batch: int):
    """Write the teacher's fp16 logits and features for every (image, view) under ``tmp``;
    returns (classes, feature width)."""
    n, n_views = len(indices), views.n_views
    probe_logits, probe_feats = teacher.forward_features(normalizer(torch.from_numpy(np.asarray(images[indices[:1]]))))
    k, d = probe_logits.shape[1], probe_feats.shape[1]
    logits = np.lib.format.open_memmap(tmp / "logits.npy", mode="w+", dtype=np.float16, shape=(n, n_views, k))
    feats = np.lib.format.open_memmap(tmp / "feats.npy", mode="w+", dtype=np.float16, shape=(n, n_views, d))
    for s in range(0, n, batch):
        x_u8 = torch.from_numpy(np.asarray(images[indices[s : s + batch]]))
        for v in range(n_views):
            z, f = teacher.forward_features(normalizer(views.apply(x_u8, v)))
            logits[s : s + len(x_u8), v] = z.float().numpy().astype(np.float16)
            feats[s : s + len(x_u8), v] = f.float().numpy().astype(np.float16)
    logits.flush()
    feats.flush()
    return k, d


@torch.no_grad()
def build_teacher_cache(
    teacher: nn.Module,
    images: np.ndarray,
    indices: np.ndarray,
    normalizer: Normalizer,
    *,
    data_key: str,
    size: int,
    views: ViewSet,
    cache_root: Path,
    batch_size: int = 128,
    teacher_hash: str | None = None,
) -> TeacherCache:
    """Return the cache for these inputs, building it (atomically) if no valid one exists."""
    teacher_hash = teacher_hash or hash_state_dict(teacher)
    key = cache_key(teacher_hash, data_key, size, normalizer, views, indices)
    n_views = views.n_views
    final = Path(cache_root) / "teacher" / key
    found = _open(final)
    if found is not None:
        logger.debug(f"teacher cache hit: {final}")
        found.hit = True
        return found

    t0 = time.perf_counter()
    teacher = teacher.eval()
    tmp = final.with_name(f".{key}.tmp-{socket.gethostname()}-{os.getpid()}")  # unique across sweep shards
    shutil.rmtree(tmp, ignore_errors=True)
    tmp.mkdir(parents=True)
    try:
        n = len(indices)
        k, d = _fill(tmp, teacher, images, indices, normalizer, views, batch_size)
        rows = np.full(len(images), -1, dtype=np.int64)
        rows[indices] = np.arange(n)
        np.save(tmp / "rows.npy", rows)
        seconds = time.perf_counter() - t0
        (tmp / "meta.json").write_text(
            json.dumps({"key": key, "views": n_views, "n": n, "classes": k, "feature_dim": d, "build_seconds": seconds})
        )
        try:
            os.replace(tmp, final)
        except OSError:  # built concurrently by another process (rename onto a full folder fails)
            if _open(final) is None:
                raise
            shutil.rmtree(tmp, ignore_errors=True)
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        raise
    logger.info(f"teacher cache built in {seconds:.1f}s ({n} images x {n_views} views): {final}")
    return _open(final)
