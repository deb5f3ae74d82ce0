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

CLASSES = (
    "water", "river", "forest", "meadow", "farmland", "bare_land",
    "dense_residential", "sparse_residential", "highway", "industrial",
)  # fmt: skip
GENERATOR_VERSION = 1
BASE_SIZE = 64

Array = np.ndarray
_TAU = np.float32(2 * np.pi)


# ----------------------------------------------------------------------------- primitives
def _coords(n: int, h: int, rng: np.random.Generator) -> tuple[Array, Array]:
    """Pixel coordinates centred on the image, rotated by a random angle per image: (n, h, h)."""
    c = np.arange(h, dtype=np.float32) - (h - 1) / 2
    yy, xx = np.meshgrid(c, c, indexing="ij")
    theta = rng.uniform(0, 2 * np.pi, n).astype(np.float32)[:, None, None]
    cos, sin = np.cos(theta), np.sin(theta)
    return cos * xx + sin * yy, -sin * xx + cos * yy


def _value_noise(rng: np.random.Generator, n: int, h: int, cells: int) -> Array:
    """Smooth value noise in [0, 1]: a random (cells+1)^2 lattice, smoothstep-interpolated."""
    g = rng.random((n, cells + 1, cells + 1), dtype=np.float32)
    pos = (np.arange(h, dtype=np.float32) + 0.5) * (cells / h)
    i0 = np.minimum(pos.astype(np.int64), cells - 1)
    t = pos - i0
    t = (t * t * (3 - 2 * t)).astype(np.float32)
    rows = g[:, i0, :] * (1 - t)[None, :, None] + g[:, i0 + 1, :] * t[None, :, None]
    return rows[:, :, i0] * (1 - t) + rows[:, :, i0 + 1] * t


def _fbm(rng: np.random.Generator, n: int, h: int, octaves: tuple[int, ...] = (4, 8, 16)) -> Array:
    """Sum of value-noise octaves with halving weights, rescaled to [0, 1]."""
    total = np.zeros((n, h, h), dtype=np.float32)
    norm = 0.0
    for k, cells in enumerate(octaves):
        w = 0.5**k
        total += w * _value_noise(rng, n, h, cells)
        norm += w
    return total / norm


def _hash01(i: Array, j: Array, salt: Array) -> Array:
    """Deterministic pseudo-random value in [0, 1) per integer cell (i, j) and per-image salt."""
    x = (i.astype(np.int64) * 73856093) ^ (j.astype(np.int64) * 19349663) ^ (salt.astype(np.int64) * 83492791)
    x = x.astype(np.uint64)
    x ^= x >> np.uint64(16)
    x *= np.uint64(0x45D9F3B)
    x ^= x >> np.uint64(16)
    x *= np.uint64(0x45D9F3B)
    x ^= x >> np.uint64(16)
    return ((x & np.uint64(0xFFFFFF)).astype(np.float32)) / np.float32(1 << 24)


def _u(rng: np.random.Generator, lo: float, hi: float, n: int) -> Array:
    """Per-image uniform parameter, shaped (n, 1, 1) to broadcast over pixels."""
    return rng.uniform(lo, hi, n).astype(np.float32)[:, None, None]


def _colour(rng: np.random.Generator, n: int, base: tuple[float, float, float], jitter: float) -> Array:
    """Per-image RGB colour (n, 1, 1, 3) around ``base`` with Gaussian jitter."""
    c = np.asarray(base, dtype=np.float32) + rng.normal(0, jitter, (n, 3)).astype(np.float32)
    return np.clip(c, 0, 1)[:, None, None, :]


def _mix(rng: np.random.Generator, n: int, a: tuple, b: tuple, jitter: float) -> Array:
    """Per-image colour on the segment between ``a`` and ``b`` plus jitter: (n, 1, 1, 3)."""
    t = rng.random(n, dtype=np.float32)[:, None]
    c = (1 - t) * np.asarray(a, np.float32) + t * np.asarray(b, np.float32)
    c = c + rng.normal(0, jitter, (n, 3)).astype(np.float32)
    return np.clip(c, 0, 1)[:, None, None, :]


def _paint(img: Array, mask: Array, colour: Array) -> Array:
    """Alpha-blend ``colour`` (broadcastable to img) into ``img`` where ``mask`` (n,h,w) is 1."""
    m = mask[..., None]
    return img * (1 - m) + colour * m


def _soft(d: Array, half_width: Array | float) -> Array:
    """1 inside a band of half-width ``half_width`` around d == 0, with a 1-pixel soft edge."""
    return np.clip(half_width - np.abs(d) + 0.5, 0, 1)


def _shade(tex: Array, colour: Array, amount: Array | float) -> Array:
    """Colour modulated by a [0,1] texture: colour * (1 + amount * (tex - 0.5))."""
    amount = np.asarray(amount, dtype=np.float32)
    if amount.ndim == 3:
        amount = amount[..., None]
    return colour * (1 + amount * (tex[..., None] - 0.5))


# ----------------------------------------------------------------------------- ground covers
def _grass(rng, n, h, dark: tuple[float, float] = (0.0, 1.0)) -> Array:
    lo, hi = dark
    t = rng.uniform(lo, hi, n).astype(np.float32)[:, None]
    base = (1 - t) * np.array([0.42, 0.55, 0.25], np.float32) + t * np.array([0.22, 0.36, 0.16], np.float32)
    base = np.clip(base + rng.normal(0, 0.04, (n, 3)).astype(np.float32), 0, 1)[:, None, None, :]
    return _shade(_fbm(rng, n, h, (4, 8, 16)), base, _u(rng, 0.2, 0.5, n))


def _trees(rng, n, h) -> Array:
    base = _mix(rng, n, (0.10, 0.25, 0.10), (0.20, 0.32, 0.15), 0.03)
    crowns = _value_noise(rng, n, h, int(rng.integers(10, 24)))
    tex = 0.6 * crowns + 0.4 * _fbm(rng, n, h, (4, 8))
    return _shade(tex, base, _u(rng, 0.35, 1.1, n))


def _sand(rng, n, h) -> Array:
    base = _mix(rng, n, (0.78, 0.66, 0.48), (0.58, 0.46, 0.34), 0.04)
    return _shade(_fbm(rng, n, h, (2, 4, 8)), base, _u(rng, 0.15, 0.4, n))


def _water_colour(rng, n) -> Array:
    return _mix(rng, n, (0.08, 0.20, 0.38), (0.18, 0.30, 0.26), 0.04)


def _background(rng, n, h) -> Array:
    """A random mixture of grass, trees and sand, as land around roads and rivers."""
    kind = rng.integers(0, 3, n)
    out = np.where((kind == 0)[:, None, None, None], _grass(rng, n, h), _sand(rng, n, h))
    return np.where((kind == 1)[:, None, None, None], _trees(rng, n, h), out)


def _patch_mask(rng, n, h, coverage: tuple[float, float]) -> Array:
    """A blobby mask covering about ``coverage`` of the image (thresholded value noise)."""
    noise = _fbm(rng, n, h, (2, 4))
    q = rng.uniform(coverage[0], coverage[1], n)
    ranked = np.sort(noise.reshape(n, -1), axis=1)
    pick = np.clip(((1 - q) * (h * h - 1)).astype(np.int64), 0, h * h - 1)
    thr = ranked[np.arange(n), pick]
    return np.clip((noise - thr[:, None, None]) * 12 + 0.5, 0, 1)


def _maybe_patch(rng, img: Array, cover: Callable, p: float, coverage=(0.08, 0.25)) -> Array:
    """With probability ``p`` per image, paint a blob of another ground cover."""
    n, h = img.shape[0], img.shape[1]
    use = (rng.random(n) < p).astype(np.float32)[:, None, None]
    return _paint(img, _patch_mask(rng, n, h, coverage) * use, cover(rng, n, h))


def _stripes(u: Array, period: Array, phase: Array) -> Array:
    return 0.5 + 0.5 * np.sin(_TAU * u / period + phase)


# ----------------------------------------------------------------------------- classes
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
