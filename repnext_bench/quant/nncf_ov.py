"""NNCF's post-training quantization of the OpenVINO model read from the fp32 ONNX export:
FakeQuantize operations calibrated on the calibration set, saved as IR in the export cache.
OpenVINO's CPU plugin then runs the quantized operations with its integer kernels."""
from __future__ import annotations

import contextlib
import io
from pathlib import Path

from ..export import INPUT_NAME, Artifact, ExportCache, export_onnx
from .images import CalibrationSet

METHOD = "nncf.quantize (post-training, mixed preset, fast bias correction)"
INSTALL = "pip install 'repnext-bench[int8]'"


def nncf_missing() -> str | None:
    """Why OpenVINO INT8 cannot be made here (NNCF is not installed), or None."""
    import importlib.util

    if importlib.util.find_spec("nncf") is None:
        return f"OpenVINO INT8 is quantized with NNCF, which is not installed ({INSTALL})"
    return None


def quantized_ir(model, resolution: int, opset: int, cache: ExportCache, weights: str,
                 calibration: CalibrationSet, batch: int = 1) -> Artifact:
    """A folder with the quantized IR (model.xml, model.bin) for input (batch, 3, resolution,
    resolution): one quantization serves every batch (a run reshapes it at load; ``export``
    asks for its static batch). The cache key holds the fp32 export's key, NNCF's and
    OpenVINO's versions and the calibration set's source, size and hash."""
    if nncf_missing():
        raise ValueError(nncf_missing())
    from importlib.metadata import version

    import openvino as ov

    source = export_onnx(model, resolution, opset, cache, weights)
    shape = [batch, 3, resolution, resolution]
    key = {"format": "openvino-ir-int8", "onnx_key": source.key, "method": METHOD, "nncf": version("nncf"),
           "openvino": ov.get_version(), **calibration.identity()}
    if batch != 1:  # the batch-1 quantization, reshaped: the model a run measures, with a static batch
        base = quantized_ir(model, resolution, opset, cache, weights, calibration)

        def reshaped(path: Path) -> dict:
            network = ov.Core().read_model(str(base.path / "model.xml"))
            network.reshape({network.inputs[0]: shape})
            path.mkdir()
            ov.save_model(network, str(path / "model.xml"), compress_to_fp16=False)
            return {**base.info, "input_shape": shape}

        return cache.get_or_create("openvino-ir-int8", {**key, "batch_1_key": base.key, "input_shape": shape}, "ir",
                                   reshaped)

    def create(path: Path) -> dict:
        import nncf

        network = ov.Core().read_model(str(source.path))
        network.reshape({network.inputs[0]: [1, 3, resolution, resolution]})
        images = calibration.arrays(resolution)
        dataset = nncf.Dataset([images[i:i + 1] for i in range(len(images))])
        with contextlib.redirect_stdout(io.StringIO()):  # NNCF's progress bars, not the sweep's output
            quantized = nncf.quantize(network, dataset, preset=nncf.QuantizationPreset.MIXED,
                                      subset_size=len(images))
        quantized.reshape({quantized.inputs[0]: shape})
        path.mkdir()
        ov.save_model(quantized, str(path / "model.xml"), compress_to_fp16=False)
        fake = sum(op.get_type_name() == "FakeQuantize" for op in quantized.get_ordered_ops())
        return {"quantization": METHOD, "fake_quantize_ops": fake, "calibration": calibration.describe(),
                "input": INPUT_NAME, "files": ["model.xml", "model.bin"]}

    return cache.get_or_create("openvino-ir-int8", key, "ir", create)
