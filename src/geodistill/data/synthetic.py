"""A built-in, deterministic, procedural land-use scene dataset (no files shipped).

Ten classes of top-down scenes are painted with vectorised numpy at a base resolution
(64 px) and resized to the run's size with antialiased bilinear interpolation:

    water, river, forest, meadow, farmland, bare_land, dense_residential,
    sparse_residential, highway, industrial

Every scene is drawn in coordinates rotated by a random angle, with random scale, colour,
texture and noise, and some scenes carry a patch of another land cover ("mixed textures").
Some pairs are confusable on purpose: dense vs sparse residential share a band of house
densities, farmland with faint stripes vs bare land with faint ploughing marks, meadow vs
forest tones, a wide river vs water with a shoreline, industrial vs dense residential block
sizes. So a modest CNN does not reach 100 % at once and a much smaller one does clearly worse:
there is room for distillation to show.

Determinism: class ``c`` is drawn from ``numpy.random.Generator(PCG64(SeedSequence([seed,
c])))``, so the same ``(n_per_class, seed, base_size, size)`` gives identical bytes.
"""

from __future__ import annotations

import hashlib
from collections.abc import Callable

import numpy as np
import torch
import torch.nn.functional as F

from geodistill.core.errors import GeodistillError
from geodistill.data.imageset import ImageSet
from geodistill.data.painting import (
    _TAU,
    _background,
    _colour,
    _coords,
    _fbm,
    _grass,
    _hash01,
    _maybe_patch,
    _paint,
    _patch_mask,
    _sand,
    _shade,
    _soft,
    _stripes,
    _trees,
    _u,
    _water_colour,
)

CLASSES = (
    "water", "river", "forest", "meadow", "farmland", "bare_land",
    "dense_residential", "sparse_residential", "highway", "industrial",
)  # fmt: skip
GENERATOR_VERSION = 1
BASE_SIZE = 64

Array = np.ndarray


def _water(rng, n, h):
    u, v = _coords(n, h, rng)
    col = _water_colour(rng, n)
    img = _shade(_fbm(rng, n, h, (2, 4, 8)), col, _u(rng, 0.2, 0.6, n))
    ripples = _stripes(u + 2 * _fbm(rng, n, h, (4,)), _u(rng, 2.5, 6, n), _u(rng, 0, 6.3, n))
    img = img * (1 + _u(rng, 0.0, 0.12, n)[..., None] * (ripples[..., None] - 0.5))
    # a shoreline on some images: land beyond a wavy line
    shore = (rng.random(n) < 0.5).astype(np.float32)[:, None, None]
    off = _u(rng, 0.1, 0.45, n) * h
    wav = _u(rng, 1, 4, n) * np.sin(_TAU * u / _u(rng, 20, 60, n))
    land = np.clip(v - off + wav, 0, 1) * shore
    return _paint(img, land, _background(rng, n, h))


def _river(rng, n, h):
    u, v = _coords(n, h, rng)
    img = _background(rng, n, h)
    centre = _u(rng, -0.2, 0.2, n) * h + _u(rng, 2, 10, n) * np.sin(_TAU * u / _u(rng, 30, 90, n) + _u(rng, 0, 6.3, n))
    half = _u(rng, 2.5, 13.0, n) * (1 + 0.25 * (_fbm(rng, n, h, (4,)) - 0.5))
    water = _shade(_fbm(rng, n, h, (4, 8)), _water_colour(rng, n), 0.3)
    bank = _soft(v - centre, half + 1.2)
    img = _paint(img, bank, _colour(rng, n, (0.55, 0.50, 0.40), 0.05))
    return _paint(img, _soft(v - centre, half), water)


def _forest(rng, n, h):
    img = _trees(rng, n, h)
    return _maybe_patch(rng, img, lambda r, k, s: _grass(r, k, s, (0.3, 1.0)), 0.35, (0.05, 0.2))


def _meadow(rng, n, h):
    img = _grass(rng, n, h, (0.0, 0.95))
    u, _ = _coords(n, h, rng)
    tracks = _stripes(u, _u(rng, 3, 8, n), _u(rng, 0, 6.3, n))
    faint = _u(rng, 0.0, 0.08, n) * (rng.random(n) < 0.4)[:, None, None]
    img = img * (1 + faint[..., None] * (tracks[..., None] - 0.5))
    return _maybe_patch(rng, img, _trees, 0.4, (0.05, 0.22))


def _farmland(rng, n, h):
    u, v = _coords(n, h, rng)
    field = _u(rng, 14, 40, n)
    fi, fj = np.floor(u / field), np.floor(v / field)
    salt = rng.integers(0, 1 << 30, n)[:, None, None]
    r = _hash01(fi, fj, salt)
    crops = np.array(
        [
            [0.45, 0.58, 0.25],
            [0.70, 0.64, 0.38],
            [0.52, 0.40, 0.28],
            [0.35, 0.50, 0.22],
            [0.62, 0.55, 0.30],
            [0.66, 0.56, 0.42],
        ],
        np.float32,
    )
    col = crops[(r * len(crops)).astype(np.int64)]
    col = col * (0.85 + 0.3 * _hash01(fj, fi, salt + 7))[..., None]
    across = np.where(_hash01(fi, fj, salt + 3) < 0.5, u, v)
    contrast = _u(rng, 0.03, 0.45, n)
    stripes = _stripes(across, _u(rng, 2.2, 5.0, n), _u(rng, 0, 6.3, n))
    img = col * (1 + contrast[..., None] * (stripes[..., None] - 0.5))
    img = img * (1 + 0.25 * (_fbm(rng, n, h, (4, 8))[..., None] - 0.5))
    border = np.minimum(np.abs(u / field - np.round(u / field)), np.abs(v / field - np.round(v / field))) * field
    img = _paint(img, np.clip(1.2 - border, 0, 1) * _u(rng, 0, 0.8, n), _colour(rng, n, (0.4, 0.42, 0.3), 0.05))
    return img


def _bare_land(rng, n, h):
    u, _ = _coords(n, h, rng)
    img = _sand(rng, n, h)
    warp = 3 * _fbm(rng, n, h, (3,))
    dunes = _stripes(u + warp * _u(rng, 1, 4, n), _u(rng, 5, 14, n), _u(rng, 0, 6.3, n))
    img = img * (1 + _u(rng, 0.0, 0.25, n)[..., None] * (dunes[..., None] - 0.5))
    plough = _stripes(u, _u(rng, 2.2, 5.0, n), _u(rng, 0, 6.3, n))
    faint = _u(rng, 0.02, 0.18, n) * (rng.random(n) < 0.5)[:, None, None]
    img = img * (1 + faint[..., None] * (plough[..., None] - 0.5))
    return _maybe_patch(rng, img, lambda r, k, s: _grass(r, k, s, (0.0, 0.5)), 0.25, (0.05, 0.15))


_ROOFS = np.array(
    [
        [0.62, 0.30, 0.25],
        [0.55, 0.55, 0.55],
        [0.42, 0.30, 0.25],
        [0.70, 0.68, 0.64],
        [0.35, 0.35, 0.40],
        [0.72, 0.45, 0.32],
    ],
    np.float32,
)


def _houses(rng, n, h, u, v, cell, fill, occupancy, palette=_ROOFS) -> tuple[Array, Array]:
    """Rectangles on a rotated grid: mask (n,h,w) and per-pixel roof colour (n,h,w,3)."""
    ci, cj = np.floor(u / cell), np.floor(v / cell)
    fu, fv = u / cell - ci, v / cell - cj
    salt = rng.integers(0, 1 << 30, n)[:, None, None]
    present = _hash01(ci, cj, salt) < occupancy
    fu_w = fill * (0.8 + 0.4 * _hash01(cj, ci, salt + 1))
    inside = (fu < fu_w) & (fv < fill) & present
    col = palette[(_hash01(ci, cj, salt + 2) * len(palette)).astype(np.int64)]
    col = col * (0.8 + 0.4 * _hash01(ci, cj, salt + 5))[..., None]
    return inside.astype(np.float32), col


def _dense_residential(rng, n, h):
    u, v = _coords(n, h, rng)
    img = _shade(_fbm(rng, n, h), _colour(rng, n, (0.50, 0.50, 0.48), 0.05), 0.3)
    img = _paint(img, _patch_mask(rng, n, h, (0.05, 0.6)), _grass(rng, n, h))
    mask, col = _houses(rng, n, h, u, v, _u(rng, 4.5, 9.0, n), _u(rng, 0.45, 0.8, n), _u(rng, 0.4, 0.95, n))
    return _paint(img, mask, col)


def _sparse_residential(rng, n, h):
    u, v = _coords(n, h, rng)
    img = _grass(rng, n, h, (0.0, 0.7))
    img = _maybe_patch(rng, img, _trees, 0.5, (0.1, 0.3))
    paved = lambda r, k, s: _shade(_fbm(r, k, s), _colour(r, k, (0.50, 0.50, 0.48), 0.05), 0.3)  # noqa: E731
    img = _maybe_patch(rng, img, paved, 0.35, (0.2, 0.6))
    mask, col = _houses(rng, n, h, u, v, _u(rng, 5.5, 11.0, n), _u(rng, 0.35, 0.65, n), _u(rng, 0.2, 0.58, n))
    img = _paint(img, mask, col)
    road = _soft(v - _u(rng, -0.4, 0.4, n) * h, _u(rng, 0.8, 1.8, n)) * (rng.random(n) < 0.5)[:, None, None]
    return _paint(img, road, _colour(rng, n, (0.45, 0.45, 0.45), 0.04))


def _highway(rng, n, h):
    u, v = _coords(n, h, rng)
    img = _background(rng, n, h)
    off = _u(rng, -0.3, 0.3, n) * h
    half = _u(rng, 3.0, 7.5, n)
    asphalt = _shade(_fbm(rng, n, h, (8, 16)), _colour(rng, n, (0.38, 0.38, 0.40), 0.05), 0.2)
    img = _paint(img, _soft(v - off, half + 1.0), _colour(rng, n, (0.55, 0.53, 0.50), 0.05))
    img = _paint(img, _soft(v - off, half), asphalt)
    dashes = (_stripes(u, _u(rng, 5, 9, n), 0) > 0.5).astype(np.float32)
    lanes = _soft(v - off, 0.35) * dashes * _u(rng, 0.3, 1.0, n)
    img = _paint(img, lanes, np.float32(0.9))
    cross = (rng.random(n) < 0.35)[:, None, None]
    off2 = _u(rng, -0.3, 0.3, n) * h
    img = _paint(img, _soft(u - off2, half * 0.6) * cross, asphalt)
    return img


def _industrial(rng, n, h):
    u, v = _coords(n, h, rng)
    img = _shade(_fbm(rng, n, h), _colour(rng, n, (0.55, 0.54, 0.52), 0.05), 0.25)
    palette = np.array(
        [[0.80, 0.80, 0.80], [0.62, 0.64, 0.66], [0.45, 0.55, 0.68], [0.70, 0.66, 0.60], [0.40, 0.40, 0.42]], np.float32
    )
    mask, col = _houses(rng, n, h, u, v, _u(rng, 9.0, 22.0, n), _u(rng, 0.6, 0.9, n), _u(rng, 0.55, 0.95, n), palette)
    img = _paint(img, mask, col)
    lots = _stripes(u, _u(rng, 1.6, 2.4, n), 0) * _patch_mask(rng, n, h, (0.0, 0.15))
    img = img * (1 - 0.2 * lots[..., None])
    return _maybe_patch(rng, img, _grass, 0.25, (0.05, 0.15))


_RENDERERS: dict[str, Callable[[np.random.Generator, int, int], Array]] = {
    "water": _water, "river": _river, "forest": _forest, "meadow": _meadow, "farmland": _farmland,
    "bare_land": _bare_land, "dense_residential": _dense_residential,
    "sparse_residential": _sparse_residential, "highway": _highway, "industrial": _industrial,
}  # fmt: skip


def _camera(rng: np.random.Generator, img: Array) -> Array:
    """Per-image brightness, contrast, colour cast, haze and sensor noise."""
    n, h = img.shape[0], img.shape[1]
    gain = _u(rng, 0.8, 1.2, n)[..., None]
    cast = (1 + rng.normal(0, 0.05, (n, 3)).astype(np.float32))[:, None, None, :]
    img = img * gain * cast
    mean = img.mean(axis=(1, 2, 3), keepdims=True)
    img = mean + (img - mean) * _u(rng, 0.75, 1.25, n)[..., None]
    haze = _u(rng, 0.0, 0.3, n)[..., None]
    img = img * (1 - haze) + 0.75 * haze
    sigma = _u(rng, 0.01, 0.06, n)[..., None]
    return img + sigma * rng.standard_normal((n, h, h, 3), dtype=np.float32)


# ----------------------------------------------------------------------------- public
def generate(
    n_per_class: int = 200, seed: int = 0, size: int = BASE_SIZE, base_size: int = BASE_SIZE
) -> tuple[Array, Array, list[str]]:
    """Render ``n_per_class`` scenes of each class: (uint8 N x 3 x size x size, int64 labels, classes).

    Images are grouped by class (label 0 first). Rendering happens at ``base_size`` and is
    resized to ``size`` with antialiased bilinear interpolation.
    """
    if not isinstance(n_per_class, (int, np.integer)) or n_per_class < 1:
        raise GeodistillError(f"n_per_class={n_per_class!r} is invalid: pass a positive integer.")
    if base_size < 8:
        raise GeodistillError(f"base_size={base_size!r} is invalid: pass at least 8 (64 is the default).")
    chunks = []
    for c, name in enumerate(CLASSES):
        rng = np.random.Generator(np.random.PCG64(np.random.SeedSequence([int(seed), c])))
        img = _camera(rng, _RENDERERS[name](rng, n_per_class, base_size).astype(np.float32))
        chunks.append(np.clip(np.rint(img * 255), 0, 255).astype(np.uint8).transpose(0, 3, 1, 2))
    images = np.ascontiguousarray(np.concatenate(chunks))
    if size != base_size:
        images = resize_batch(images, size)
    labels = np.repeat(np.arange(len(CLASSES), dtype=np.int64), n_per_class)
    return images, labels, list(CLASSES)


def resize_batch(images: Array, size: int) -> Array:
    """Bilinear antialiased resize of a uint8 N x C x H x W batch (torch) to size x size."""
    out = np.empty((images.shape[0], images.shape[1], size, size), dtype=np.uint8)
    for start in range(0, images.shape[0], 512):
        x = torch.from_numpy(images[start : start + 512]).float()
        y = F.interpolate(x, size=(size, size), mode="bilinear", antialias=True, align_corners=False)
        out[start : start + 512] = y.round_().clamp_(0, 255).to(torch.uint8).numpy()
    return out


def synthetic_imageset(
    n_per_class: int = 200, seed: int = 0, size: int = 32, channels: int = 3, base_size: int = BASE_SIZE
) -> ImageSet:
    """The synthetic dataset as an ImageSet (in memory, ``cache_path`` None)."""
    images, labels, classes = generate(n_per_class, seed, size, base_size)
    if channels == 1:
        luma = np.tensordot(np.array([0.299, 0.587, 0.114], np.float32), images.astype(np.float32), axes=([0], [1]))
        images = np.clip(np.rint(luma), 0, 255).astype(np.uint8)[:, None]
    elif channels != 3:
        raise GeodistillError(f"channels={channels} is invalid for 'synthetic': it renders 3 (RGB) or 1 (gray).")
    counts = [f"{i:05d}" for i in range(n_per_class)]
    paths = [f"{c}/{i}" for c in classes for i in counts]
    tag = f"synthetic|v{GENERATOR_VERSION}|n={n_per_class}|seed={seed}|base={base_size}|size={size}|ch={channels}"
    key = hashlib.sha256(tag.encode()).hexdigest()
    return ImageSet(
        images=images, labels=labels, classes=classes, paths=paths, key=key, name="synthetic", cache_path=None
    )
