"""Decode one image file to a uint8 C x size x size array.

Rules (every image of a dataset comes out with the same channel count ``channels``):

* JPEG/PNG/BMP/WebP/GIF and 8-bit TIFF are read with Pillow. JPEGs are decoded with Pillow's
  draft mode (DCT scaling to the smallest power-of-two reduction still >= ``size``), which makes
  decoding a 150 px JPEG for a 64 px run about 1.3x faster with no visible loss.
* TIFFs are read with tifffile when it is installed (optional extra ``geo``); multi-band TIFFs
  (e.g. 13-band EuroSAT) need it, and a clear error says so when it is missing.
* Resizing is bilinear with antialiasing (Pillow's resampling filter widens with the scale
  factor), straight to ``size x size``: off-size images (e.g. UC Merced's 44 images that are
  not 256 x 256) are stretched, never cropped.
* Grayscale -> replicated to ``channels``; RGBA/LA -> alpha dropped; RGB -> 1 channel uses
  ITU-R 601 luma ``L = 0.299 R + 0.587 G + 0.114 B``; a band count that cannot be mapped raises.
* 16-bit photos (Pillow modes ``I;16``/``I``, TIFFs with <= 4 bands): ``v8 = round(v16 / 257)``,
  i.e. the full 0..65535 range maps to 0..255.
* Multispectral integer TIFFs (> 4 bands, e.g. Sentinel-2 L1C where DN = 10000 x reflectance):
  ``v8 = clip(round(v * 255 / MS_INTEGER_SCALE), 0, 255)`` with ``MS_INTEGER_SCALE = 4000``,
  i.e. reflectance 0.4 maps to 255 (brighter pixels such as cloud and snow saturate).
  Float images are taken as reflectance in [0, 1]: ``clip(round(v * 255), 0, 255)``.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
from PIL import Image

from geodistill.core.errors import GeodistillError

MS_INTEGER_SCALE = 4000.0
TIFF_EXTENSIONS = (".tif", ".tiff")

NOTE_GRAY = "grayscale"
NOTE_ALPHA = "alpha channel dropped"
NOTE_16BIT = "16-bit scaled to 8-bit"


class UnreadableImage(Exception):
    """Internal: the file is corrupt, truncated or not an image (the store decides what to do)."""


def _tifffile():
    try:
        import tifffile
    except ImportError:
        return None
    return tifffile


def _scale_16(a: np.ndarray) -> np.ndarray:
    return np.clip(np.rint(a.astype(np.float32) / 257.0), 0, 255).astype(np.uint8)


def _to_uint8(a: np.ndarray, multispectral: bool, notes: set[str]) -> np.ndarray:
    """Scale a raster of any dtype to uint8 (see the module docstring for the rules)."""
    if a.dtype == np.uint8:
        return a
    if a.dtype == np.bool_:
        return a.astype(np.uint8) * 255
    if not multispectral:
        notes.add(NOTE_16BIT)  # worth a warning in a photo folder; the rule for multispectral sets
    if np.issubdtype(a.dtype, np.floating):
        return np.clip(np.rint(np.nan_to_num(a.astype(np.float32)) * 255.0), 0, 255).astype(np.uint8)
    if multispectral:
        scaled = np.rint(a.astype(np.float32) * (255.0 / MS_INTEGER_SCALE))
        return np.clip(scaled, 0, 255).astype(np.uint8)
    return _scale_16(a)


def _read_tiff(path: Path, tifffile) -> np.ndarray:
    """H x W x B raster from a TIFF (any band order tifffile reports), original dtype."""
    with tifffile.TiffFile(path) as tf:
        series = tf.series[0]
        axes = series.axes
        a = series.asarray()
    if a.ndim == 2:
        return a[:, :, None]
    if "Y" in axes and "X" in axes and a.ndim == len(axes):
        keep = [i for i, ax in enumerate(axes) if ax not in "YX" and a.shape[i] > 1]
        if len(keep) > 1:
            raise UnreadableImage(f"unsupported TIFF axes {axes}")
        order = [axes.index("Y"), axes.index("X")] + keep
        rest = [i for i in range(a.ndim) if i not in order]
        a = np.transpose(a, order + rest).reshape(a.shape[order[0]], a.shape[order[1]], -1)
        return a
    raise UnreadableImage(f"unsupported TIFF layout {axes} {a.shape}")


def _pil_to_array(im: Image.Image, size: int, notes: set[str]) -> np.ndarray:
    """Resize a Pillow image to ``size`` and return H x W x B uint8 with B in {1, 3}."""
    mode = im.mode
    if mode in ("RGBA", "RGBa", "LA", "La", "PA") or (mode == "P" and "transparency" in im.info):
        notes.add(NOTE_ALPHA)
        im = im.convert("L") if mode in ("LA", "La") else im.convert("RGBA").convert("RGB")
    elif mode in ("1", "L"):
        im = im.convert("L")
    elif mode.startswith("I") or mode == "F":
        a = np.asarray(im)
        if mode == "F" and np.nanmax(a) > 1.0:  # float photo already on a 0..255 scale
            a = a / 255.0
        im = Image.fromarray(_to_uint8(a, multispectral=False, notes=notes))
    elif mode != "RGB":
        im = im.convert("RGB")
    if im.size != (size, size):
        im = im.resize((size, size), Image.Resampling.BILINEAR)
    a = np.asarray(im)
    if im.mode == "L":
        notes.add(NOTE_GRAY)
        a = a[:, :, None]
    return a


def _resize_bands(a: np.ndarray, size: int) -> np.ndarray:
    """Bilinear antialiased resize of an H x W x B uint8 raster, band by band."""
    if a.shape[0] == size and a.shape[1] == size:
        return a
    out = np.empty((size, size, a.shape[2]), dtype=np.uint8)
    for b in range(a.shape[2]):
        band = Image.fromarray(np.ascontiguousarray(a[:, :, b]))
        out[:, :, b] = np.asarray(band.resize((size, size), Image.Resampling.BILINEAR))
    return out


def _decode(path: Path, size: int, notes: set[str]) -> np.ndarray:
    """H x W x B uint8 at ``size`` (B as stored, alpha dropped)."""
    tifffile = _tifffile() if path.suffix.lower() in TIFF_EXTENSIONS else None
    if tifffile is not None:
        try:
            raw = _read_tiff(path, tifffile)
        except UnreadableImage:
            raise
        except Exception:
            raw = None
        if raw is not None:
            multispectral = raw.shape[2] > 4
            if raw.shape[2] in (2, 4) and not multispectral:
                notes.add(NOTE_ALPHA)
                raw = raw[:, :, : raw.shape[2] - 1]
            a = _to_uint8(raw, multispectral, notes)
            if a.shape[2] == 1:
                notes.add(NOTE_GRAY)
            return _resize_bands(a, size)
    try:
        im = Image.open(path)
    except Exception:
        if path.suffix.lower() in TIFF_EXTENSIONS and tifffile is None:
            raise GeodistillError(
                f"TIFF '{path}' cannot be read by Pillow (multi-band and 16-bit GeoTIFFs need "
                "tifffile): run pip install 'geodistill[geo]', or delete the file if it is corrupt."
            ) from None
        raise
    with im:
        if im.format == "JPEG":
            im.draft(im.mode, (size, size))
        im.load()
        return _pil_to_array(im, size, notes)


def _match_channels(a: np.ndarray, channels: int, rgb_bands: tuple[int, int, int], path: Path) -> np.ndarray:
    bands = a.shape[2]
    if bands == channels:
        return a
    if bands == 1:
        return np.repeat(a, channels, axis=2)
    if channels == 1 and bands == 3:
        luma = a.astype(np.float32) @ np.array([0.299, 0.587, 0.114], dtype=np.float32)
        return np.clip(np.rint(luma), 0, 255).astype(np.uint8)[:, :, None]
    if channels == 3 and bands > 3 and max(rgb_bands) < bands:
        return a[:, :, list(rgb_bands)]
    raise GeodistillError(
        f"Image '{path}' has {bands} bands but the dataset is read with {channels} channels: "
        "remove the image or pass channels to match it."
    )


def read_image(
    path: str | Path,
    size: int,
    channels: int,
    rgb_bands: tuple[int, int, int] = (0, 1, 2),
) -> tuple[np.ndarray, frozenset[str]]:
    """Decode ``path`` to a uint8 array of shape (channels, size, size).

    Returns the array and the set of conversions applied (grayscale, alpha, 16-bit) so that
    the caller can warn once per dataset. Raises ``UnreadableImage`` for a corrupt, truncated
    or non-image file and ``GeodistillError`` for a file that cannot be mapped to ``channels``.
    """
    path = Path(path)
    notes: set[str] = set()
    try:
        a = _decode(path, size, notes)
    except (GeodistillError, UnreadableImage):
        raise
    except Exception as exc:
        raise UnreadableImage(f"{type(exc).__name__}: {exc}") from None
    a = _match_channels(a, channels, rgb_bands, path)
    if channels == 1:
        notes.discard(NOTE_GRAY)
    return np.ascontiguousarray(a.transpose(2, 0, 1)), frozenset(notes)


def band_count(path: str | Path) -> int:
    """Number of bands of an image file without decoding pixels (alpha not counted)."""
    path = Path(path)
    tifffile = _tifffile() if path.suffix.lower() in TIFF_EXTENSIONS else None
    try:
        if tifffile is not None:
            with tifffile.TiffFile(path) as tf:
                series = tf.series[0]
                shape = dict(zip(series.axes, series.shape))
                bands = int(np.prod([n for ax, n in shape.items() if ax not in "YX"] or [1]))
                return bands if bands > 4 else (3 if bands >= 3 else 1)
        with Image.open(path) as im:
            spp = im.tag_v2.get(277, 1) if hasattr(im, "tag_v2") else 1
            if spp > 4:
                return int(spp)
            return 1 if im.mode in ("1", "L", "LA", "I", "I;16", "I;16B", "I;16L", "F") else 3
    except Exception:
        return 3
