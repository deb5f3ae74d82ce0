"""Ship a trained classifier: export (ONNX / TorchScript, preprocessing inside), int8, predict.

Every exported model takes uint8 N x C x size x size pixels and returns logits; see
``geodistill.deploy.runtime`` for the contract and the metadata stored in the files.
"""

from geodistill.deploy.export import export_onnx, export_torchscript
from geodistill.deploy.predict import find_images, predict, write_predictions
from geodistill.deploy.quantize import onnx_accuracy, quantize_onnx
from geodistill.deploy.runtime import INPUT_CONVENTION, Runner, load_runner
from geodistill.deploy.verified import describe_export, export
from geodistill.models.preprocess import with_preprocessing

__all__ = [
    "INPUT_CONVENTION",
    "Runner",
    "describe_export",
    "export",
    "export_onnx",
    "export_torchscript",
    "find_images",
    "load_runner",
    "onnx_accuracy",
    "predict",
    "quantize_onnx",
    "with_preprocessing",
    "write_predictions",
]
