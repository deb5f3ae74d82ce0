"""Seeded, stratified train/val/test splits, and splits read from split files.

Stratification: class ``c`` with ``n_c`` images gets ``n_c * f_s`` images in split ``s``
rounded by the largest-remainder method (so the counts add up to ``n_c`` and each is within
1 of its exact share); then every split with a positive fraction is given at least one image
of every class, taken from the largest split. Class ``c``'s images (in store order, which is
sorted by path) are permuted by ``numpy.random.Generator(PCG64(SeedSequence([seed, c])))``:
the same labels and seed give the same split on every machine, and one class's draw does not
depend on the others.

Protocol splits (`ratio_split`, ``data.train_ratio`` / ``data.protocol``): per class ``c`` with
``n_c`` images, permuted as above, the first ``k_c = round(r * n_c)`` (at least 2) form the
training part, of which the first ``round(v * k_c)`` (at least 1, ``data.val_ratio``) are
validation, so settings and best epochs are chosen without test images; the other ``n_c - k_c``
are the protocol's test set.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path, PurePosixPath

import numpy as np

from geodistill.core.errors import GeodistillError

SPLIT_NAMES = ("train", "val", "test")


@dataclass
class Split:
    """Index arrays (int64, sorted) into an ImageSet; disjoint."""

    train: np.ndarray
    val: np.ndarray
    test: np.ndarray

    def __getitem__(self, name: str) -> np.ndarray:
        if name not in SPLIT_NAMES:
            raise KeyError(name)
        return getattr(self, name)

    def sizes(self) -> dict[str, int]:
        return {s: int(len(self[s])) for s in SPLIT_NAMES}


def _allocate(n: int, fractions: np.ndarray) -> np.ndarray:
    """Largest-remainder counts of ``n`` items over ``fractions`` (sum 1)."""
    exact = n * fractions
    counts = np.floor(exact).astype(np.int64)
    order = np.argsort(-(exact - counts), kind="stable")
    counts[order[: n - counts.sum()]] += 1
    for s in np.flatnonzero((fractions > 0) & (counts == 0)):
        counts[int(np.argmax(counts))] -= 1
        counts[s] += 1
    return counts


def _check_fractions(fractions: Sequence[float]) -> np.ndarray:
    f = np.asarray(fractions, dtype=np.float64)
    if f.shape != (3,) or np.any(f < 0) or not np.isclose(f.sum(), 1.0, atol=1e-6) or f[0] <= 0:
        raise GeodistillError(
            f"Split fractions {tuple(fractions)} are invalid: give three non-negative numbers "
            "(train, val, test) that sum to 1 with train > 0, e.g. (0.6, 0.2, 0.2)."
        )
    return f / f.sum()


def make_split(
    labels: np.ndarray,
    fractions: Sequence[float] = (0.6, 0.2, 0.2),
    seed: int = 0,
    classes: Sequence[str] | None = None,
) -> Split:
    """Stratified, seeded train/val/test index arrays for ``labels`` (see module docstring).

    Raises a GeodistillError naming the class when it has fewer images than splits to fill.
    """
    f = _check_fractions(fractions)
    labels = np.asarray(labels, dtype=np.int64)
    needed = int((f > 0).sum())
    parts: list[list[np.ndarray]] = [[], [], []]
    for c in np.unique(labels):
        idx = np.flatnonzero(labels == c)
        if len(idx) < needed:
            name = classes[c] if classes is not None and c < len(classes) else f"label {c}"
            raise GeodistillError(
                f"Class '{name}' has only {len(idx)} image(s), too few to put at least one in "
                f"each of the {needed} splits: add images to it or change the split fractions."
            )
        rng = np.random.Generator(np.random.PCG64(np.random.SeedSequence([int(seed), int(c)])))
        idx = idx[rng.permutation(len(idx))]
        counts = _allocate(len(idx), f)
        bounds = np.concatenate([[0], np.cumsum(counts)])
        for s in range(3):
            parts[s].append(idx[bounds[s] : bounds[s + 1]])
    out = [np.sort(np.concatenate(p)) if p else np.zeros(0, np.int64) for p in parts]
    return Split(*(o.astype(np.int64) for o in out))


def _read_lines(path: Path) -> list[tuple[int, str]]:
    try:
        text = Path(path).read_text()
    except OSError as exc:
        raise GeodistillError(f"Split file '{path}' cannot be read ({exc.strerror}): check the path.") from None
    return [
        (i, line.strip())
        for i, line in enumerate(text.splitlines(), 1)
        if line.strip() and not line.strip().startswith("#")
    ]


def split_from_files(paths: Sequence[str], files: Mapping[str, str | Path]) -> Split:
    """A Split from split files with one image path per line (as torchgeo ships them).

    ``paths`` are an ImageSet's relative paths; ``files`` maps "train"/"val"/"test" to a file
    (a missing key gives an empty split). A line matches an image by its relative path, else
    by its file name, else by its file name without extension (torchgeo's EuroSAT lists
    ``.jpg`` names for the ``.tif`` files), each only if unique. Blank lines and lines
    starting with ``#`` are ignored.
    """
    unknown = set(files) - set(SPLIT_NAMES)
    if unknown:
        raise GeodistillError(f"Split name(s) {sorted(unknown)} are unknown: use train, val and test.")
    by_path = {p: i for i, p in enumerate(paths)}
    by_name: dict[str, list[int]] = {}
    by_stem: dict[str, list[int]] = {}
    for i, p in enumerate(paths):
        pp = PurePosixPath(p)
        by_name.setdefault(pp.name, []).append(i)
        by_stem.setdefault(pp.stem, []).append(i)
    owner: dict[int, str] = {}
    result: dict[str, np.ndarray] = {}
    for split in SPLIT_NAMES:
        if split not in files:
            result[split] = np.zeros(0, np.int64)
            continue
        chosen: list[int] = []
        for lineno, line in _read_lines(Path(files[split])):
            entry = line.replace("\\", "/")
            entry = entry[2:] if entry.startswith("./") else entry
            pp = PurePosixPath(entry)
            hit = by_path.get(entry)
            if hit is None and len(by_name.get(pp.name, [])) == 1:
                hit = by_name[pp.name][0]
            if hit is None and len(by_stem.get(pp.stem, [])) == 1:
                hit = by_stem[pp.stem][0]
            if hit is None:
                raise GeodistillError(
                    f"Split file '{files[split]}' line {lineno} names '{line}', which is not an "
                    "image of the dataset: fix or delete the line, or check the dataset root."
                )
            if hit in owner:
                raise GeodistillError(
                    f"Split file '{files[split]}' line {lineno} names '{line}', which is already "
                    f"in the {owner[hit]} split: each image may be in one split only."
                )
            owner[hit] = split
            chosen.append(hit)
        result[split] = np.sort(np.asarray(chosen, dtype=np.int64))
    return Split(result["train"], result["val"], result["test"])


def ratio_split(labels: np.ndarray, train_ratio: float, val_ratio: float = 0.2, seed: int = 0) -> Split:
    """The protocol split (module docstring): per class a ``train_ratio`` share for training
    (``val_ratio`` of it for validation), the rest for test."""
    if not 0 < train_ratio < 1 or not 0 < val_ratio < 1:
        raise GeodistillError(
            f"data.train_ratio ({train_ratio}) and data.val_ratio ({val_ratio}) must lie strictly between 0 and 1."
        )
    labels = np.asarray(labels, dtype=np.int64)
    parts: list[list[np.ndarray]] = [[], [], []]
    for c in np.unique(labels):
        idx = np.flatnonzero(labels == c)
        k = max(2, round(train_ratio * len(idx)))
        if len(idx) - k < 1:
            raise GeodistillError(
                f"Class {int(c)} has {len(idx)} images, too few for a training share of {train_ratio} "
                "with at least two training images and one test image; lower data.train_ratio."
            )
        idx = idx[
            np.random.Generator(np.random.PCG64(np.random.SeedSequence([int(seed), int(c)]))).permutation(len(idx))
        ]
        n_val = min(k - 1, max(1, round(val_ratio * k)))
        for part, chosen in zip(parts, (idx[n_val:k], idx[:n_val], idx[k:]), strict=True):
            part.append(chosen)
    return Split(*(np.sort(np.concatenate(p)).astype(np.int64) for p in parts))
