"""Find the class folders of a dataset on disk and list its images in a stable order."""

from __future__ import annotations

import os
import re
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from geodistill.core.errors import GeodistillError
from geodistill.data.registry import DatasetSpec

_SKIP_NAMES = {"__MACOSX", "Thumbs.db", "desktop.ini"}
_SEARCH_DEPTH = 4


@dataclass(frozen=True)
class FileList:
    """Images of a dataset: ``paths[i]`` (posix, relative to ``root``) has label ``labels[i]``."""

    root: Path
    paths: list[str]
    labels: np.ndarray
    classes: list[str]


def _norm(name: str) -> str:
    return re.sub(r"[^a-z0-9]", "", name.lower())


def _visible_dirs(folder: Path) -> list[Path]:
    try:
        entries = sorted(os.scandir(folder), key=lambda e: e.name)
    except OSError:
        return []
    return [Path(e.path) for e in entries if e.is_dir() and not e.name.startswith(".") and e.name not in _SKIP_NAMES]


def _class_map(spec: DatasetSpec, folder: Path) -> dict[str, Path]:
    """Map each class of ``spec`` to its sub-folder of ``folder`` (missing classes left out)."""
    wanted = {_norm(c): c for c in spec.classes or ()}
    aliases = {_norm(k): v for k, v in spec.aliases.items()}
    found: dict[str, Path] = {}
    for sub in _visible_dirs(folder):
        key = _norm(sub.name)
        cls = aliases.get(key) or wanted.get(key)
        if cls is not None and cls not in found:
            found[cls] = sub
    return found


def _find_class_root(spec: DatasetSpec, root: Path) -> tuple[Path, dict[str, Path]]:
    """The folder below ``root`` whose sub-folders are the classes of ``spec``."""
    assert spec.classes is not None
    candidates = [root] + [root / s for s in spec.subdirs]
    best: tuple[Path, dict[str, Path]] = (root, {})
    for cand in candidates:
        found = _class_map(spec, cand)
        if len(found) == len(spec.classes):
            return cand, found
        if len(found) > len(best[1]):
            best = (cand, found)
    frontier = [root]
    for _ in range(_SEARCH_DEPTH):
        nxt: list[Path] = []
        for folder in frontier:
            for sub in _visible_dirs(folder):
                found = _class_map(spec, sub)
                if len(found) == len(spec.classes):
                    return sub, found
                if len(found) > len(best[1]):
                    best = (sub, found)
                nxt.append(sub)
        frontier = nxt
    if not best[1]:
        raise GeodistillError(spec.where_to_get(root))
    missing = [c for c in spec.classes if c not in best[1]]
    shown = ", ".join(missing[:5]) + (", ..." if len(missing) > 5 else "")
    raise GeodistillError(
        f"Folder '{best[0]}' lacks {len(missing)} of the {len(spec.classes)} class folders of "
        f"'{spec.name}' ({shown}): lay it out as {spec.layout}."
    )


def _images_in(folder: Path, prefix: str, extensions: tuple[str, ...]) -> list[str]:
    """Relative posix paths (``prefix/...``) of the image files below ``folder``, recursively."""
    out: list[str] = []
    stack = [(os.fspath(folder), prefix)]
    while stack:
        path, rel = stack.pop()
        with os.scandir(path) as it:
            for e in it:
                name = e.name
                if name.startswith(".") or name in _SKIP_NAMES:
                    continue
                if e.is_dir():
                    stack.append((e.path, f"{rel}/{name}"))
                elif os.path.splitext(name)[1].lower() in extensions:
                    out.append(f"{rel}/{name}")
    return out


def list_files(spec: DatasetSpec, root: str | Path | None) -> FileList:
    """List the images of ``spec`` under ``root``, sorted by relative path.

    Files whose extension is not an image extension (``.txt``, ``.DS_Store``, ``Thumbs.db``,
    hidden files) are ignored. Raises a GeodistillError for a missing root, a class folder
    without images, or fewer than two classes.
    """
    if root is None:
        raise GeodistillError(spec.where_to_get(None))
    root = Path(root).expanduser()
    if not root.is_dir():
        if spec.classes is None:
            raise GeodistillError(
                f"Folder '{root}' does not exist: pass --root pointing to a folder with one "
                "sub-folder of images per class."
            )
        raise GeodistillError(spec.where_to_get(root))

    if spec.classes is None:
        class_root = root
        dirs = _visible_dirs(root)
        class_dirs = {d.name: d for d in dirs}
        classes = [d.name for d in dirs]
        if not classes:
            raise GeodistillError(
                f"Folder '{root}' has no class sub-folders: put each class's images in their "
                f"own sub-folder, e.g. '{root}/<class>/image.jpg'."
            )
    else:
        class_root, class_dirs = _find_class_root(spec, root)
        classes = list(spec.classes)

    if len(classes) < 2:
        raise GeodistillError(
            f"Folder '{class_root}' has only {len(classes)} class sub-folder "
            f"({', '.join(classes)}): a classifier needs at least 2, one sub-folder per class."
        )

    entries: list[tuple[str, int]] = []
    for label, cls in enumerate(classes):
        folder = class_dirs[cls]
        files = _images_in(folder, folder.relative_to(class_root).as_posix(), spec.extensions)
        if not files:
            raise GeodistillError(
                f"Class folder '{folder}' has no images ({'/'.join(spec.extensions)}): add "
                "images to it or remove the folder."
            )
        entries.extend((f, label) for f in files)
    entries.sort(key=lambda e: e[0])
    return FileList(
        root=class_root,
        paths=[p for p, _ in entries],
        labels=np.array([lab for _, lab in entries], dtype=np.int64),
        classes=classes,
    )
