"""ONNX -> OpenVINO IR (model.xml + model.bin) with a static input shape, for deployment
elsewhere; fp16 compresses the weights (OpenVINO still picks the inference precision at
compile time on each device)."""
from __future__ import annotations

from pathlib import Path

import torch

from . import INPUT_NAME, Artifact, ExportCache, export_onnx, source_key, weights_hash

PRECISIONS = ("fp32", "fp16")


def export_openvino(model: torch.nn.Module, batch: int, resolution: int, precision: str, opset: int,
                    cache: ExportCache, weights: str | None = None) -> Artifact:
    """A folder holding the IR (model.xml and model.bin) for input (batch, 3, resolution, resolution)."""
    import openvino as ov

    if precision not in PRECISIONS:
        raise ValueError(f"OpenVINO IR stores fp32 or fp16 weights, not {precision}")
    weights = weights or weights_hash(model)
    onnx = export_onnx(model, resolution, opset, cache, weights)
    shape = [batch, 3, resolution, resolution]
    key = {"format": "openvino-ir", **source_key(model.variant.name, model.form, weights, shape),
           "onnx_key": onnx.key, "precision": precision, "openvino": ov.get_version()}

    def create(path: Path) -> dict:
        converted = ov.convert_model(str(onnx.path))
        converted.reshape({INPUT_NAME: shape})
        path.mkdir()
        ov.save_model(converted, str(path / "model.xml"), compress_to_fp16=precision == "fp16")
        ops: dict[str, int] = {}
        for op in converted.get_ordered_ops():
            kind = op.get_type_name()
            if kind not in ("Parameter", "Result", "Constant"):
                ops[kind] = ops.get(kind, 0) + 1
        return {"weight_precision": precision, "op_counts": dict(sorted(ops.items(), key=lambda i: -i[1])),
                "ops_total": sum(ops.values()), "openvino": ov.get_version(),
                "files": ["model.xml", "model.bin"]}

    return cache.get_or_create("openvino-ir", key, "ir", create)
