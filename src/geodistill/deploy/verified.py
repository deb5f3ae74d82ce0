"""Export a checkpoint and verify what was written: the exported model against PyTorch on check
images, its accuracy on the test split the checkpoint trained with, and int8's agreement with it.
Nothing is written when the check fails."""

from __future__ import annotations

import os
import tempfile
import warnings
from pathlib import Path
from typing import Any

import numpy as np
import torch

from geodistill.config.run import DataConfig
from geodistill.core.errors import GeodistillError, GeodistillWarning
from geodistill.data.imageset import ImageSet
from geodistill.data.prepare import checkpoint_data_config, make_data_split, prepare_data
from geodistill.data.splits import Split, make_split, ratio_split
from geodistill.deploy.export import FORMATS, export_onnx, export_torchscript
from geodistill.deploy.quantize import onnx_predict_logits, quantize_onnx
from geodistill.deploy.runtime import Runner, load_runner, onnx_session
from geodistill.models.checkpoint import load_classifier
from geodistill.models.preprocess import with_preprocessing


def compare_outputs(reference: np.ndarray, other: np.ndarray) -> dict:
    """``max_abs_diff``, ``rel_diff`` = max_abs / max(1, max|reference|), ``top1_agreement``."""
    diff = float(np.abs(reference.astype(np.float64) - other.astype(np.float64)).max())
    scale = max(1.0, float(np.abs(reference).max()))
    agree = float((reference.argmax(1) == other.argmax(1)).mean())
    return {"max_abs_diff": diff, "rel_diff": diff / scale, "top1_agreement": agree}


def _default_out(ckpt: Path, fmt: str, int8: bool) -> Path:
    return ckpt.with_suffix(".int8.onnx" if int8 else FORMATS[fmt][0])


def _split_of_given(ds: Any, meta: dict, size: int, in_channels: int) -> Split:
    """The split of a dataset passed to ``export`` in memory: the checkpoint's split rule
    (its split files when ``ds`` is an ImageSet, else its fractions and seed)."""
    images = ds.images
    if tuple(images.shape[1:]) != (in_channels, size, size):
        raise GeodistillError(
            f"The dataset images are {images.shape[1]} x {images.shape[2]} x {images.shape[3]} but the export "
            f"needs {in_channels} x {size} x {size}; load the dataset with size={size}."
        )
    try:
        d = checkpoint_data_config(meta, size=size) or DataConfig()
    except GeodistillError:
        d = DataConfig()
    if isinstance(ds, ImageSet):
        return make_data_split(ds, d)
    if d.train_ratio is not None:
        return ratio_split(np.asarray(ds.labels), d.train_ratio, d.val_ratio, seed=d.split_seed)
    return make_split(np.asarray(ds.labels), fractions=d.fractions, seed=d.split_seed)


def _dataset(data: Any, root: Any, meta: dict, size: int, ckpt: Path) -> tuple[np.ndarray, np.ndarray, Split] | None:
    """``(images, labels, split)`` to check, calibrate and measure accuracy on, or ``None``.

    ``data``: an ImageSet, a dataset name, ``"random"`` (none) or ``None``: the data config the
    checkpoint trained with, through ``prepare_data``, so its split files, ``n_per_class``,
    fractions and split seed give exactly the trained split (``None`` with a warning when that
    data cannot be loaded any more). ``root`` moves the dataset folder.
    """
    c = int(meta["in_channels"])
    if isinstance(data, str) and data == "random":
        return None
    if data is not None and hasattr(data, "images"):
        return np.asarray(data.images), np.asarray(data.labels), _split_of_given(data, meta, size, c)
    from_config = data is None
    try:
        d = checkpoint_data_config(
            meta, dataset=None if data is None else str(data), root=root, size=size, where=f"the config saved in {ckpt}"
        )
        if d is None:
            return None
        prepared = prepare_data(d, normalizer=meta.get("normalizer"))
    except GeodistillError as e:
        if not from_config:
            raise
        warnings.warn(
            f"The training data of this checkpoint could not be loaded, so test accuracy is not measured: {e}",
            GeodistillWarning,
        )
        return None
    return np.asarray(prepared.images), np.asarray(prepared.labels), prepared.split


def _predictions(run: Any, images: np.ndarray, batch_size: int = 64) -> np.ndarray:
    """Top-1 class of each uint8 image under a numpy-in, logits-out model."""
    return np.concatenate([run(images[i : i + batch_size]).argmax(1) for i in range(0, len(images), batch_size)])


def export(
    ckpt: str | Path,
    format: str = "onnx",
    *,
    int8: bool = False,
    size: int | None = None,
    out: str | Path | None = None,
    data: Any = None,
    root: str | Path | None = None,
    calib_count: int = 256,
    check_count: int = 8,
    tolerance: float = 1e-3,
) -> dict:
    """Export checkpoint ``ckpt`` to ONNX or TorchScript and verify the result.

    ``size``: the input size baked into the graph (default: the checkpoint's training size);
    ``out``: destination (default next to the checkpoint: ``.onnx``, ``.int8.onnx`` or ``.pt``).
    ``data``: an ImageSet or a dataset name (with ``root``); ``None`` = the checkpoint's own data
    config through ``prepare_data`` (its split files, ``n_per_class``, fractions and split seed,
    so the test split is exactly the trained one; ``root`` moves its folder); ``"random"`` or
    unloadable = no data (random check pixels, with a warning). With data, ``acc_fp32`` is the
    exported model's accuracy on the test split (``test_images`` images). ``int8`` (ONNX only):
    static int8 quantisation calibrated on up to ``calib_count`` training-split images (random
    pixels without data, with a warning), and, on the same test split, ``acc_int8`` and the int8
    model's top-1 agreement with the exported fp32 model (``int8_test_agreement``).
    Raises ``GeodistillError`` if the exported fp32 model's logits differ from PyTorch's by more
    than ``tolerance`` (relative to the logit scale) on the ``check_count`` check images (the first
    test images, else random pixels). Returns a JSON-able dict: ``path, format, int8, size,
    size_bytes, classes, max_abs_diff, rel_diff, top1_agreement, check_images, check_count,
    calibration, acc_fp32, acc_int8`` (with data ``test_split``, ``test_images``; int8 also
    ``int8_max_abs_diff, int8_top1_agreement`` on the check images, ``int8_test_agreement``,
    ``fp32_size_bytes``; accuracies and agreements are fractions in [0, 1]).
    """
    ckpt = Path(ckpt)
    out = _checked_out(ckpt, format, int8, out)
    model, meta = load_classifier(ckpt)
    c, trained = int(meta["in_channels"]), int(meta["size"])
    size = int(size or trained)
    if size != trained:
        warnings.warn(
            f"{ckpt} was trained at {trained} px but is exported at {size} px; its accuracy at {size} px is untested.",
            GeodistillWarning,
        )
    metrics = {k: v for k, v in (meta.get("metrics") or {}).items() if isinstance(v, (int, float, str))}
    extra = {"arch": meta["arch"], "trained_size": trained, "source": ckpt.name, "metrics": metrics}
    kw = dict(size=size, in_channels=c, normalizer=meta.get("normalizer"), classes=list(meta["classes"]), meta=extra)
    found = _dataset(data, root, meta, size, ckpt)
    rng = np.random.default_rng(0)
    test = np.sort(found[2].test) if found is not None else np.zeros(0, np.int64)
    check, ref = _check_images(model, meta, found, test, check_count, size, rng)

    result: dict = {"format": format, "int8": int8, "size": size, "classes": list(meta["classes"])}
    result.update(check_images="test split" if len(test) else "random pixels", check_count=len(check))
    result.update(calibration=None, acc_fp32=None, acc_int8=None)
    _write_verified(model, ckpt, out, kw, (check, ref, tolerance), found, test, (int8, calib_count, rng), result)
    result["path"] = str(out)
    result["size_bytes"] = out.stat().st_size
    return result


def _write_verified(model, ckpt: Path, out: Path, kw: dict, checks: tuple, found, test, quant: tuple, result: dict):
    """Export to a temp folder beside ``out``, verify it against PyTorch (``checks``: images,
    logits, tolerance), measure it on the test split, quantise it when asked, then move it into
    place; nothing is left behind when a check fails."""
    check, ref, tolerance = checks
    int8, calib_count, rng = quant
    fmt, c, size = result["format"], kw["in_channels"], kw["size"]
    out.parent.mkdir(parents=True, exist_ok=True)
    with tempfile.TemporaryDirectory(prefix=f".{out.name}.", dir=out.parent) as tmp:
        fp32 = Path(tmp) / ("fp32.onnx" if fmt == "onnx" else "model.pt")
        (export_onnx if fmt == "onnx" else export_torchscript)(model, fp32, **kw)
        runner = _verified_runner(fp32, ckpt, fmt, check, ref, tolerance, result)
        fp32_pred = None
        if len(test):  # the exported fp32 model on exactly the test split the checkpoint trained with
            fp32_pred = _predictions(runner, np.ascontiguousarray(found[0][test], dtype=np.uint8))
            result.update(acc_fp32=float((fp32_pred == found[1][test]).mean()), test_split="test")
            result["test_images"] = int(len(test))
        if int8:
            _quantize_and_evaluate(fp32, out, result, found, calib_count, c, size, rng, ref, check, fp32_pred)
        else:
            os.replace(fp32, out)


def _check_images(model, meta: dict, found, test: np.ndarray, count: int, size: int, rng) -> tuple:
    """The check images (the first test images, else random pixels) and PyTorch's logits on them."""
    c = int(meta["in_channels"])
    shape = (count, c, size, size)
    check = found[0][test[:count]] if len(test) else rng.integers(0, 256, shape, dtype=np.uint8)
    check = np.ascontiguousarray(check, dtype=np.uint8)
    with torch.inference_mode():
        ref = with_preprocessing(model, meta.get("normalizer"), c).eval()(torch.from_numpy(check)).float().numpy()
    return check, ref


def _checked_out(ckpt: Path, format: str, int8: bool, out: str | Path | None) -> Path:
    """The output path of an export request, after checking the format, int8 and suffix."""
    if format not in FORMATS:
        raise GeodistillError(f"Unknown export format {format!r}: choose onnx or torchscript.")
    if int8 and format != "onnx":
        raise GeodistillError("--int8 needs --format onnx (int8 quantisation runs in ONNX Runtime).")
    out = Path(out) if out is not None else _default_out(ckpt, format, int8)
    if out.suffix.lower() not in FORMATS[format]:
        raise GeodistillError(
            f"Output {out} must end in {' or '.join(FORMATS[format])} for format {format}, so predict can recognise it."
        )
    return out


def _verified_runner(
    path: Path, ckpt: Path, format: str, check: np.ndarray, ref: np.ndarray, tolerance: float, result: dict
) -> Runner:
    """Reload the exported file, run it at batch 1 and batch n (which checks the dynamic batch
    axis too), record its agreement with PyTorch in ``result`` and raise past ``tolerance``."""
    try:
        runner = load_runner(path)
        got = np.concatenate([runner(check[:1]), runner(check[1:])]) if len(check) > 1 else runner(check)
    except GeodistillError:
        raise
    except Exception as e:
        raise GeodistillError(
            f"The exported {format} model of {ckpt} fails to run ({type(e).__name__}: "
            f"{str(e).splitlines()[0][:150]}); nothing was written, try the other format."
        ) from None
    result.update(compare_outputs(ref, got))
    if result["rel_diff"] > tolerance:
        raise GeodistillError(
            f"The exported {format} model of {ckpt} differs from PyTorch by {result['max_abs_diff']:.3g} "
            f"(relative {result['rel_diff']:.3g} > tolerance {tolerance}); nothing was written, try the other format."
        )
    return runner


def _quantize_and_evaluate(
    fp32: Path,
    out: Path,
    result: dict,
    found,
    calib_count: int,
    c: int,
    size: int,
    rng,
    ref: np.ndarray,
    check: np.ndarray,
    fp32_pred: np.ndarray | None,
) -> None:
    """Quantise ``fp32`` into ``out`` and record in ``result`` the int8 model's agreement with
    PyTorch on the check images and, on the test split, its agreement with the exported fp32
    model (``int8_test_agreement``) and its accuracy, both over the same ``test_images``."""
    if found is not None:
        images, labels, split = found
        calib = images[np.sort(split.train[:calib_count])]
        result["calibration"] = f"{len(calib)} training-split images"
    else:
        calib = rng.integers(0, 256, (min(calib_count, 32), c, size, size), dtype=np.uint8)
        result["calibration"] = "random pixels"
        warnings.warn(
            "int8 was calibrated on random pixels (no dataset given or found): "
            "pass the training data for representative int8 accuracy.",
            GeodistillWarning,
        )
    quantize_onnx(fp32, out, calib)
    q_session = onnx_session(out)
    q = onnx_predict_logits(q_session, check)
    cmp = compare_outputs(ref, q)
    result.update(
        {
            "int8_max_abs_diff": cmp["max_abs_diff"],
            "int8_top1_agreement": cmp["top1_agreement"],
            "fp32_size_bytes": fp32.stat().st_size,
        }
    )
    if found is not None and fp32_pred is not None:
        test = np.sort(split.test)
        q_pred = onnx_predict_logits(q_session, np.ascontiguousarray(images[test], dtype=np.uint8)).argmax(1)
        result["acc_int8"] = float((q_pred == labels[test]).mean())
        result["int8_test_agreement"] = float((q_pred == fp32_pred).mean())
        if result["acc_fp32"] - result["acc_int8"] > 0.05:
            warnings.warn(
                f"int8 loses {100 * (result['acc_fp32'] - result['acc_int8']):.1f} accuracy points on the test split; "
                "ship the fp32 model or calibrate on more images.",
                GeodistillWarning,
            )


def describe_export(result: dict) -> str:
    """Human-readable summary lines of an ``export`` result (what the CLI prints): each line
    names the images its figures were measured on and how many."""
    check = f"{result.get('check_count', 8)} {_images_named(result['check_images'])}"
    lines = [
        f"wrote {result['path']} ({result['format']}{', int8' if result['int8'] else ''}, "
        f"{result['size_bytes'] / 1e6:.2f} MB, input uint8 N x C x {result['size']} x {result['size']}, "
        f"{len(result['classes'])} classes)",
        f"fp32 check on {check}: max |exported - torch| = {result['max_abs_diff']:.2e} "
        f"(relative {result['rel_diff']:.2e}), top-1 agreement {100 * result['top1_agreement']:.2f}%",
    ]
    if result["int8"]:
        smaller = result["fp32_size_bytes"] / max(result["size_bytes"], 1)
        lines.append(
            f"int8 calibrated on {result['calibration']}, {smaller:.1f}x smaller than fp32; "
            f"on the same {check}: max |int8 - torch| = {result['int8_max_abs_diff']:.3g}, "
            f"top-1 agreement {100 * result['int8_top1_agreement']:.2f}%"
        )
    where = f"on the {result.get('test_split', 'test')} split ({result.get('test_images')} images)"
    if result["int8"] and result.get("acc_int8") is not None:
        lines.append(
            f"{where}: int8 top-1 agreement with fp32 {100 * result['int8_test_agreement']:.2f}%, accuracy fp32 "
            f"{100 * result['acc_fp32']:.2f}% -> int8 {100 * result['acc_int8']:.2f}% "
            f"({100 * (result['acc_int8'] - result['acc_fp32']):+.2f} points)"
        )
    elif result.get("acc_fp32") is not None:
        lines.append(f"{where}: accuracy {100 * result['acc_fp32']:.2f}%")
    return "\n".join(lines)


def _images_named(source: str) -> str:
    """'test split' -> 'test-split images'; 'random pixels' -> 'random-pixel inputs'."""
    return {"test split": "test-split images", "random pixels": "random-pixel inputs"}.get(source, source)
