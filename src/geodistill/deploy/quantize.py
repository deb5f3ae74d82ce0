"""Post-training int8 quantisation of an exported ONNX model with ONNX Runtime.

Static quantisation (``onnxruntime.quantization.quantize_static``): weights int8 per output
channel, activations uint8 per tensor, scales from the min/max of the activations seen on
calibration images (MinMax calibration), stored in QDQ format (QuantizeLinear/DequantizeLinear
pairs that ORT fuses into integer kernels). The model keeps its uint8-pixel input contract, so
calibration images are plain uint8 N x C x H x W batches, ideally from the training split.
"""

from __future__ import annotations

import os
import tempfile
from pathlib import Path

import numpy as np

from geodistill.core.errors import GeodistillError
from geodistill.deploy.runtime import INPUT_NAME, get_metadata, import_optional, onnx_runner, onnx_session, set_metadata

QUANTIZATION = "int8 static, QDQ, per-channel weights (onnxruntime quantize_static, MinMax calibration)"


def quantize_onnx(
    fp32_path: str | Path, out: str | Path, calib_images: np.ndarray, *, batch_size: int = 16, per_channel: bool = True
) -> Path:
    """Write an int8 copy of the fp32 ONNX model ``fp32_path`` to ``out`` (atomically).

    ``calib_images``: uint8 N x C x H x W calibration images. The geodistill metadata of the
    fp32 model is carried over with ``quantization`` set.
    """
    onnx = import_optional("onnx")
    import_optional("onnxruntime")
    from onnxruntime.quantization import CalibrationDataReader, QuantFormat, QuantType, quantize_static

    images = np.ascontiguousarray(calib_images, dtype=np.uint8)
    if images.ndim != 4 or len(images) == 0:
        raise GeodistillError(
            "Calibration images must be a non-empty uint8 N x C x H x W array; pass the training split images."
        )

    class Reader(CalibrationDataReader):
        """Feeds the calibration images in batches under the model's input name."""

        def __init__(self) -> None:
            self.batches = iter([images[i : i + batch_size] for i in range(0, len(images), batch_size)])

        def get_next(self) -> dict | None:
            batch = next(self.batches, None)
            return None if batch is None else {INPUT_NAME: batch}

    out = Path(out)
    out.parent.mkdir(parents=True, exist_ok=True)
    with tempfile.TemporaryDirectory(prefix=".geodistill-quant-", dir=out.parent) as tmp:
        src = Path(tmp) / "pre.onnx"
        try:  # shape inference + graph optimisation, recommended before quantising
            from onnxruntime.quantization.shape_inference import quant_pre_process

            quant_pre_process(str(fp32_path), str(src), skip_symbolic_shape=False)
        except Exception:
            src = Path(fp32_path)
        q_path = Path(tmp) / "int8.onnx"
        quantize_static(
            str(src),
            str(q_path),
            Reader(),
            quant_format=QuantFormat.QDQ,
            per_channel=per_channel,
            activation_type=QuantType.QUInt8,
            weight_type=QuantType.QInt8,
        )
        meta = get_metadata(onnx.load(str(fp32_path), load_external_data=False))
        model = onnx.load(str(q_path))
        if meta:
            meta["quantization"] = QUANTIZATION
            set_metadata(model, meta)
        final = Path(tmp) / "final.onnx"
        onnx.save(model, str(final))
        os.replace(final, out)
    return out


def onnx_predict_logits(session_or_path, images: np.ndarray, batch_size: int = 64) -> np.ndarray:
    """Logits of an ONNX model on uint8 images, in batches."""
    session = session_or_path if hasattr(session_or_path, "run") else onnx_session(session_or_path)
    run = onnx_runner(session)
    images = np.ascontiguousarray(images, dtype=np.uint8)
    return np.concatenate([run(images[i : i + batch_size]) for i in range(0, len(images), batch_size)])


def onnx_accuracy(session_or_path, images: np.ndarray, labels: np.ndarray, batch_size: int = 64) -> float:
    """Top-1 accuracy (fraction in [0, 1]) of an ONNX model on uint8 images with int labels."""
    if len(images) == 0:
        return float("nan")
    pred = onnx_predict_logits(session_or_path, images, batch_size).argmax(axis=1)
    return float((pred == np.asarray(labels)).mean())
