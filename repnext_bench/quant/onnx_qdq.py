"""ONNX Runtime's static post-training quantization: the fp32 ONNX export, calibrated on the
calibration set (min/max of each activation), written with QuantizeLinear/DequantizeLinear
pairs around each quantized operator (QDQ) and per-channel int8 weights. ONNX Runtime's CPU
provider fuses each DQ -> op -> Q into an integer kernel (QLinearConv, ...); TensorRT builds
INT8 layers from the same pairs when they are symmetric (``symmetric=True``: int8 activations
with zero point 0, as its explicit quantization requires)."""
from __future__ import annotations

import contextlib
import logging
import tempfile
from pathlib import Path

import numpy as np

from ..export import INPUT_NAME, Artifact, ExportCache, export_onnx, op_counts
from .images import CalibrationSet

METHOD = "onnxruntime.quantization.quantize_static (QDQ, per-channel int8 weights, min/max calibration)"
_CHUNK = 8  # calibration images per inference


class _Reader:
    """The calibration inputs in chunks, as ONNX Runtime's CalibrationDataReader reads them."""

    def __init__(self, images: np.ndarray) -> None:
        self.chunks = iter([{INPUT_NAME: images[i:i + _CHUNK]} for i in range(0, len(images), _CHUNK)])

    def get_next(self):
        return next(self.chunks, None)

    def rewind(self) -> None:  # not needed by min/max calibration, which reads once
        raise NotImplementedError


@contextlib.contextmanager
def _quiet_logging():
    """The quantizer logs a warning per 1-D weight it quantizes per tensor (BatchNorm's, in the
    train-time form) on the root logger: not the sweep's output."""
    logging.disable(logging.WARNING)
    try:
        yield
    finally:
        logging.disable(logging.NOTSET)


def scheme(symmetric: bool) -> str:
    return "s8s8 symmetric (TensorRT)" if symmetric else "u8s8 (activations uint8, weights int8)"


def quantized_onnx(model, resolution: int, opset: int, cache: ExportCache, weights: str,
                   calibration: CalibrationSet, symmetric: bool = False) -> Artifact:
    """The model's ONNX export quantized to INT8 (QDQ), cached under a key that holds the fp32
    export's key, the scheme, ONNX Runtime's version and the calibration set's source, size
    and hash."""
    import onnxruntime as ort

    source = export_onnx(model, resolution, opset, cache, weights)
    key = {"format": "onnx-int8", "onnx_key": source.key, "method": METHOD, "scheme": scheme(symmetric),
           "onnxruntime": ort.__version__, **calibration.identity()}

    def create(path: Path) -> dict:
        from onnxruntime.quantization import CalibrationMethod, QuantFormat, QuantType, quantize_static
        from onnxruntime.quantization.shape_inference import quant_pre_process

        images = calibration.arrays(resolution)
        with tempfile.TemporaryDirectory(prefix="repnext-quant-") as folder, _quiet_logging():
            prepared = Path(folder) / "prepared.onnx"  # shapes inferred and the graph simplified first
            quant_pre_process(str(source.path), str(prepared), skip_symbolic_shape=True)
            activations = QuantType.QInt8 if symmetric else QuantType.QUInt8
            quantize_static(str(prepared), str(path), _Reader(images), quant_format=QuantFormat.QDQ,
                            per_channel=True, activation_type=activations, weight_type=QuantType.QInt8,
                            calibrate_method=CalibrationMethod.MinMax,
                            # no CalibMaxIntermediateOutputs: min/max calibration keeps only each chunk's
                            # reduced ranges, and that option discards the chunks collected so far
                            extra_options={"ActivationSymmetric": symmetric, "WeightSymmetric": True})
        return {**op_counts(path), "quantization": METHOD, "scheme": scheme(symmetric),
                "calibration": calibration.describe()}

    return cache.get_or_create("onnx-int8", key, "model.onnx", create)
