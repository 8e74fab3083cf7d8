"""torch -> Core ML with coremltools: an ML program (iOS 16+, fp16 or fp32 compute) or a
neural network model (iOS 14, for older devices; fp32 weights). Conversion runs anywhere
coremltools installs; loading and predicting needs macOS.

The input (``images``) and output (``logits``) stay float32 at the model's interface in every
precision, so an app feeds the same arrays whatever the precision inside.
"""
from __future__ import annotations

import contextlib
import io
import logging
import warnings
from collections import Counter
from pathlib import Path
from typing import TYPE_CHECKING

from . import INPUT_NAME, OUTPUT_NAME, Artifact, ExportCache, source_key, weights_hash

FORMATS = ("mlprogram", "neuralnetwork")
PRECISIONS = {"mlprogram": ("fp16", "fp32"), "neuralnetwork": ("fp32",)}
TARGETS = {"mlprogram": "iOS16", "neuralnetwork": "iOS14"}
SUFFIXES = {"mlprogram": ".mlpackage", "neuralnetwork": ".mlmodel"}

if TYPE_CHECKING:
    import torch
# MIL DataType numbers (coremltools' MIL.proto) of the weights an ML program holds
_MIL_TYPES = {10: "fp16", 11: "fp32", 13: "bf16"}


def import_coremltools():
    """coremltools, without its notes about native libraries that exist only on macOS."""
    logging.getLogger("coremltools").setLevel(logging.ERROR)
    import coremltools

    return coremltools


def resolve_precision(model_format: str, precision: str) -> str:
    """The precision a case converts in: ``auto`` is coremltools' default (fp16 for ML programs)."""
    return PRECISIONS[model_format][0] if precision == "auto" else precision


def describe_spec(spec) -> dict:
    """What the converted model holds: its type, op counts and the precision of its weights."""
    kind = spec.WhichOneof("Type")
    if kind == "mlProgram":
        function = spec.mlProgram.functions["main"]
        operations = function.block_specializations[function.opset].operations
        ops = Counter(op.type for op in operations)
        weights = Counter(_MIL_TYPES.get(op.outputs[0].type.tensorType.dataType) for op in operations
                          if op.type == "const")
        weights.pop(None, None)
        precision = weights.most_common(1)[0][0] if weights else None
    else:
        layers = spec.neuralNetwork.layers
        ops = Counter(layer.WhichOneof("layer") for layer in layers)
        precision = "fp32"
        for layer in layers:
            if layer.WhichOneof("layer") == "convolution":
                precision = "fp16" if len(layer.convolution.weights.float16Value) else "fp32"
                break
    ops.pop("const", None)
    return {"model_type": kind, "specification_version": spec.specificationVersion,
            "op_counts": dict(ops.most_common()), "ops_total": sum(ops.values()), "weight_precision": precision}


def export_coreml(model: torch.nn.Module, batch: int, resolution: int, model_format: str, precision: str,
                  cache: ExportCache, weights: str | None = None) -> Artifact:
    """The model converted with a static input (batch, 3, resolution, resolution); ``precision``
    is fp16 or fp32 (ML program) or fp32 (neural network)."""
    if precision not in PRECISIONS[model_format]:
        raise ValueError(f"Core ML {model_format} converts in {', '.join(PRECISIONS[model_format])}, not {precision}")
    ct = import_coremltools()
    shape = [batch, 3, resolution, resolution]
    key = {"format": f"coreml-{model_format}", **source_key(model.variant.name, model.form,
                                                           weights or weights_hash(model), shape),
           "precision": precision, "target": TARGETS[model_format], "coremltools": ct.__version__}

    def create(path: Path) -> dict:
        import numpy as np
        import torch

        # its progress bars (on stderr) would interleave with the sweep's own progress
        with torch.no_grad(), warnings.catch_warnings(), contextlib.redirect_stderr(io.StringIO()):
            warnings.simplefilter("ignore")
            traced = torch.jit.trace(model.eval(), torch.zeros(shape))
            options = {"minimum_deployment_target": getattr(ct.target, TARGETS[model_format])}
            if model_format == "mlprogram":
                options["compute_precision"] = getattr(ct.precision, {"fp16": "FLOAT16", "fp32": "FLOAT32"}[precision])
            converted = ct.convert(traced, inputs=[ct.TensorType(name=INPUT_NAME, shape=shape, dtype=np.float32)],
                                   outputs=[ct.TensorType(name=OUTPUT_NAME, dtype=np.float32)],
                                   convert_to=model_format, **options)
        converted.short_description = f"RepNeXt-{model.variant.name} ({model.form}), input {'x'.join(map(str, shape))}"
        converted.save(str(path))
        return {"model_format": model_format, "compute_precision": precision, "target": TARGETS[model_format],
                "input": {"name": INPUT_NAME, "shape": shape, "dtype": "float32"},
                **describe_spec(converted.get_spec())}

    return cache.get_or_create(f"coreml-{model_format}", key, "model" + SUFFIXES[model_format], create)
