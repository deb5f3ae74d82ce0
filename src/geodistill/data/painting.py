"""Painting primitives of the synthetic land-use scenes (`data.synthetic`): coordinates, value
noise, colours, textures and soft masks, vectorised over a batch of ``n`` scenes of ``h x h``
pixels. Private to the data package."""

from __future__ import annotations

from collections.abc import Callable

import numpy as np

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
