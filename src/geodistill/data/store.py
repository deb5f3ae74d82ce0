"""ImageStore: decode every image once to uint8 at the run's size, cache it, memory-map it back.

One cache root per run (``default_cache_dir``: ``data.cache_dir``, else ``$GEODISTILL_CACHE``,
else ``~/.cache/geodistill``) and one folder of decoded images in it (``image_cache_dir`` =
``<root>/images``), used by training, evaluation, export and ``data info`` alike.
A cache entry is a folder ``<images>/<name>-<size>px-<channels>ch-<key[:20]>/`` holding
``images.npy`` (uint8, N x C x H x W) and ``meta.json`` (classes, relative paths, labels, skipped
files). The key is the SHA-256 of the cache format, the dataset name, the image size, the
channel count, the class list and every file's (relative path, label, byte size, SHA-256 of
its bytes) -- so a changed, added or removed file, another size or another channel count gives
another entry, and a dataset copied elsewhere keeps its key. An entry is built in a hidden
temporary folder next to it and renamed into place with one ``os.replace`` at the end, so an
interrupted build leaves nothing that a later load trusts.
"""

from __future__ import annotations

import hashlib
import json
import os
import shutil
import time
import uuid
import warnings
from pathlib import Path

import numpy as np

from geodistill.config.run import DataConfig, RunConfig
from geodistill.core.errors import GeodistillError, GeodistillWarning
from geodistill.data import imageio
from geodistill.data.fingerprint import fingerprint_files
from geodistill.data.folder import FileList, list_files
from geodistill.data.imageset import ImageSet
from geodistill.data.registry import DatasetSpec, get_spec
from geodistill.data.registry import download as download_dataset
from geodistill.data.synthetic import synthetic_imageset

CACHE_FORMAT = 1
IMAGES_DIR = "images"
_LIST_IN_WARNING = 8


def default_cache_dir(where: RunConfig | DataConfig | str | Path | None = None) -> Path:
    """The cache root: a config's ``data.cache_dir`` (or ``where`` itself when it is a path), else
    ``$GEODISTILL_CACHE``, else ``~/.cache/geodistill``; ``~`` is expanded in each."""
    if isinstance(where, RunConfig):
        where = where.data
    explicit = where.cache_dir if isinstance(where, DataConfig) else where
    if explicit:
        return Path(explicit).expanduser()
    env = os.environ.get("GEODISTILL_CACHE")
    return Path(env).expanduser() if env else Path.home() / ".cache" / "geodistill"


def image_cache_dir(where: RunConfig | DataConfig | str | Path | None = None) -> Path:
    """Where decoded images live: ``<cache root>/images`` (teacher caches go to ``<cache root>/teacher``)."""
    return default_cache_dir(where) / IMAGES_DIR


def _shown(paths: list[str]) -> str:
    head = ", ".join(paths[:_LIST_IN_WARNING])
    return head + (f" and {len(paths) - _LIST_IN_WARNING} more" if len(paths) > _LIST_IN_WARNING else "")


def _warn_conversions(notes: dict[str, list[str]], channels: int, root: Path | None) -> None:
    for note, files in sorted(notes.items()):
        if not files:
            continue
        what = {
            imageio.NOTE_GRAY: f"grayscale, replicated to {channels} channels",
            imageio.NOTE_ALPHA: "with an alpha channel, which was dropped",
            imageio.NOTE_16BIT: "not 8-bit, scaled to 8-bit",
        }.get(note, note)
        warnings.warn(
            f"{len(files)} image(s) under '{root}' were {what}: {_shown(files)}.",
            GeodistillWarning,
            stacklevel=3,
        )


def _warn_skipped(skipped: list[str], root: Path | None) -> None:
    if skipped:
        warnings.warn(
            f"Skipped {len(skipped)} unreadable (corrupt or truncated) image(s) under '{root}': "
            f"{_shown(skipped)}; replace or delete them, or set data.strict=true to stop on them.",
            GeodistillWarning,
            stacklevel=3,
        )


def cache_key(spec_name: str, files: FileList, digests: list[tuple[int, str]], size: int, channels: int) -> str:
    """SHA-256 over format, name, size, channels, classes and (path, label, bytes, sha256)."""
    h = hashlib.sha256()
    head = {"format": CACHE_FORMAT, "name": spec_name, "size": size, "channels": channels, "classes": files.classes}
    h.update(json.dumps(head, sort_keys=True).encode())
    for p, lab, (nbytes, digest) in zip(files.paths, files.labels.tolist(), digests):
        h.update(f"\n{p}\t{lab}\t{nbytes}\t{digest}".encode())
    return h.hexdigest()


def _open_entry(entry: Path, key: str) -> tuple[np.ndarray, dict] | None:
    """The cached images and meta of ``entry`` if it is complete and matches ``key``."""
    try:
        meta = json.loads((entry / "meta.json").read_text())
        if meta.get("format") != CACHE_FORMAT or meta.get("key") != key:
            return None
        images = np.load(entry / "images.npy", mmap_mode="r")
    except (OSError, ValueError, json.JSONDecodeError):
        return None
    shape = (len(meta["paths"]), meta["channels"], meta["size"], meta["size"])
    if images.dtype != np.uint8 or images.shape != shape:
        return None
    return images, meta


def _decode_all(
    files: FileList,
    size: int,
    channels: int,
    rgb_bands: tuple[int, int, int],
    out: np.ndarray,
    strict: bool,
) -> tuple[list[int], dict[str, list[str]]]:
    """Decode every file into ``out``; return indices of unreadable files and conversion notes."""
    bad: list[int] = []
    notes: dict[str, list[str]] = {}
    for i, rel in enumerate(files.paths):
        try:
            arr, used = imageio.read_image(files.root / rel, size, channels, rgb_bands)
        except imageio.UnreadableImage as exc:
            if strict:
                raise GeodistillError(
                    f"Image '{files.root / rel}' cannot be read ({exc}): replace or delete it "
                    "(or leave data.strict false to skip unreadable images with a warning)."
                ) from None
            bad.append(i)
            continue
        out[i] = arr
        for note in used:
            notes.setdefault(note, []).append(rel)
    return bad, notes


def _commit(tmp: Path, final: Path) -> None:
    """Atomically move a finished entry folder into place (the last step of a build)."""
    os.replace(tmp, final)


def _remove_stale_temps(entry: Path, max_age_s: float = 6 * 3600) -> None:
    """Delete temp folders of ``entry`` left by builds killed hours ago (never trusted anyway)."""
    now = time.time()
    for old in entry.parent.glob(f".tmp-{entry.name}-*"):
        try:
            if now - old.stat().st_mtime > max_age_s:
                shutil.rmtree(old, ignore_errors=True)
        except OSError:
            pass


def _check_readable(files: FileList, labels: np.ndarray) -> None:
    """One sentence when a class lost every image to decoding errors."""
    empty = [c for c, k in zip(files.classes, np.bincount(labels, minlength=len(files.classes))) if k == 0]
    if empty:
        raise GeodistillError(
            f"Every image of class '{empty[0]}' under '{files.root}' is unreadable: replace "
            "the files or remove the class folder."
        )


def _keep_only(tmp: Path, images: np.ndarray, keep: np.ndarray, shape: tuple) -> None:
    """Rewrite ``tmp/images.npy`` with the readable images ``keep`` only."""
    kept = np.lib.format.open_memmap(tmp / "images.kept.npy", mode="w+", dtype=np.uint8, shape=(len(keep), *shape[1:]))
    for start in range(0, len(keep), 1024):
        kept[start : start + 1024] = images[keep[start : start + 1024]]
    kept.flush()
    del kept
    os.replace(tmp / "images.kept.npy", tmp / "images.npy")


def _build_entry(
    entry: Path,
    key: str,
    spec: DatasetSpec,
    files: FileList,
    size: int,
    channels: int,
    strict: bool,
) -> None:
    _remove_stale_temps(entry)
    tmp = entry.parent / f".tmp-{entry.name}-{uuid.uuid4().hex[:8]}"
    tmp.mkdir(parents=True)
    try:
        n = len(files.paths)
        shape = (n, channels, size, size)
        images = np.lib.format.open_memmap(tmp / "images.npy", mode="w+", dtype=np.uint8, shape=shape)
        bad, notes = _decode_all(files, size, channels, spec.rgb_bands, images, strict)
        keep = np.setdiff1d(np.arange(n), np.array(bad, dtype=np.int64))
        labels = files.labels[keep]
        if len(keep) == 0:
            raise GeodistillError(
                f"No image under '{files.root}' could be read: check that the files are JPEG/PNG/TIFF images."
            )
        _check_readable(files, labels)
        if bad:
            _keep_only(tmp, images, keep, shape)
        else:
            images.flush()
        del images
        meta = {
            "format": CACHE_FORMAT,
            "key": key,
            "name": spec.name,
            "size": size,
            "channels": channels,
            "classes": files.classes,
            "root": str(files.root),
            "paths": [files.paths[i] for i in keep],
            "labels": labels.tolist(),
            "skipped": [files.paths[i] for i in bad],
            "notes": notes,
        }
        (tmp / "meta.json").write_text(json.dumps(meta))
        if entry.exists():  # a stale or broken entry under the same name: replace it
            shutil.rmtree(entry, ignore_errors=True)
        try:
            _commit(tmp, entry)
        except OSError:
            if _open_entry(entry, key) is None:  # not a concurrent build of the same data
                raise
    finally:
        if tmp.exists():
            shutil.rmtree(tmp, ignore_errors=True)


def _infer_channels(spec: DatasetSpec, files: FileList) -> int:
    if spec.channels is not None:
        return spec.channels
    bands = imageio.band_count(files.root / files.paths[0])
    return bands if bands > 4 else 3


def _check_size(size: int) -> None:
    if not isinstance(size, (int, np.integer)) or isinstance(size, bool) or size < 1:
        raise GeodistillError(f"Image size {size!r} is invalid: pass a positive integer such as 32, 64 or 224.")


def load_folder_dataset(
    spec: DatasetSpec,
    root: str | Path | None,
    *,
    size: int,
    channels: int | None,
    cache_dir: Path | None,
    strict: bool,
) -> ImageSet:
    """Load a folder-per-class dataset through the on-disk cache (see module docstring)."""
    files = list_files(spec, root)
    if channels is None:
        channels = _infer_channels(spec, files)
    if channels < 1:
        raise GeodistillError(f"channels={channels} is invalid: pass a positive band count or leave it unset.")
    cache_dir = Path(cache_dir).expanduser() if cache_dir is not None else image_cache_dir()
    digests = fingerprint_files(files.root, files.paths, memo_dir=cache_dir / "fingerprints")
    key = cache_key(spec.name, files, digests, size, channels)
    entry = cache_dir / f"{spec.name}-{size}px-{channels}ch-{key[:20]}"
    opened = _open_entry(entry, key)
    if opened is None:
        try:
            entry.parent.mkdir(parents=True, exist_ok=True)
        except OSError as exc:
            raise GeodistillError(
                f"Cache folder '{entry.parent}' cannot be created ({exc}): set GEODISTILL_CACHE "
                "or pass cache_dir to a writable folder."
            ) from None
        _build_entry(entry, key, spec, files, size, channels, strict)
        opened = _open_entry(entry, key)
        if opened is None:
            raise GeodistillError(f"Cache entry '{entry}' could not be read back: delete it and run again.")
    images, meta = opened
    if strict and meta["skipped"]:
        raise GeodistillError(
            f"Image '{files.root / meta['skipped'][0]}' cannot be read: replace or delete it "
            "(or leave data.strict false to skip unreadable images with a warning)."
        )
    _warn_conversions(meta["notes"], channels, files.root)
    _warn_skipped(meta["skipped"], files.root)
    return ImageSet(
        images=images,
        labels=np.asarray(meta["labels"], dtype=np.int64),
        classes=list(meta["classes"]),
        paths=list(meta["paths"]),
        key=key,
        name=spec.name,
        cache_path=entry,
        root=files.root,
        skipped=list(meta["skipped"]),
    )


def load_dataset(
    name: str,
    root: str | Path | None = None,
    *,
    size: int = 32,
    channels: int | None = None,
    cache_dir: Path | None = None,
    strict: bool = False,
    download: bool = False,
    n_per_class: int | None = None,
    seed: int = 0,
) -> ImageSet:
    """Load dataset ``name`` as uint8 N x C x size x size, decoding each image at most once.

    ``root`` is the dataset folder (not needed for ``synthetic``). ``channels`` defaults to the
    dataset's native band count (3 for RGB sets, 13 for ``eurosat-ms``; for ``folder`` 3 unless
    the first image is a multi-band TIFF). ``strict=True`` raises on an unreadable image
    instead of skipping it with a warning. ``download=True`` fetches a missing dataset where the
    registry knows a source. ``n_per_class`` and ``seed`` configure ``synthetic`` only.
    ``cache_dir`` is the folder of decoded-image entries (default ``image_cache_dir()``).
    """
    spec = get_spec(name)
    _check_size(size)
    if spec.name == "synthetic":
        return synthetic_imageset(
            n_per_class=200 if n_per_class is None else n_per_class,
            seed=seed,
            size=size,
            channels=3 if channels is None else channels,
        )
    if download and root is not None and spec.downloader is not None:
        try:
            list_files(spec, root)
        except GeodistillError:
            download_dataset(spec.name, root)
    return load_folder_dataset(spec, root, size=size, channels=channels, cache_dir=cache_dir, strict=strict)
