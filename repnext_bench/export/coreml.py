"""torch -> Core ML with coremltools: an ML program (iOS 16+, fp16 or fp32 compute) or a
neural network model (iOS 14, for older devices; fp32 weights). Conversion runs anywhere
coremltools installs; loading and predicting needs macOS.

``int8`` converts in fp32 and then compresses the weights to 8 bits: ``linear`` (symmetric,
per output channel) or ``palettize`` (a 256-entry k-means lookup table per tensor). Core ML
dequantizes them as it loads or computes, so activations stay float: this is weight
compression (a smaller model, less memory traffic), not integer arithmetic. Weights under
coremltools' size threshold stay float; how many were compressed is read back from the model.

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
PRECISIONS = {"mlprogram": ("fp16", "fp32", "int8"), "neuralnetwork": ("fp32", "int8")}
COMPRESSIONS = ("linear", "palettize")  # the int8 weight compressions (the run option coreml_weights)
TARGETS = {"mlprogram": "iOS16", "neuralnetwork": "iOS14"}
SUFFIXES = {"mlprogram": ".mlpackage", "neuralnetwork": ".mlmodel"}

if TYPE_CHECKING:
    import torch
# MIL DataType numbers (coremltools' MIL.proto) of the weights an ML program holds
_MIL_TYPES = {10: "fp16", 11: "fp32", 13: "bf16"}
# the ops of an ML program that hold compressed weights, and what each one holds
_COMPRESSED_OPS = {"constexpr_affine_dequantize": "int8", "constexpr_blockwise_shift_scale": "int8",
                   "constexpr_lut_to_dense": "palettized"}
_NN_COMPRESSED = {"linearQuantization": "int8", "lookupTableQuantization": "palettized"}
WEIGHT_THRESHOLD = 2048  # coremltools' default: weights of fewer elements stay float


def import_coremltools():
    """coremltools, without its notes about native libraries that exist only on macOS."""
    logging.getLogger("coremltools").setLevel(logging.ERROR)
    import coremltools

    return coremltools


def resolve_precision(model_format: str, precision: str) -> str:
    """The precision a case converts in: ``auto`` is coremltools' default (fp16 for ML programs)."""
    return PRECISIONS[model_format][0] if precision == "auto" else precision


def _nn_compression(layer) -> str | None:
    """What a neural network layer's quantized weights hold (int8, palettized), or None."""
    message = getattr(layer, layer.WhichOneof("layer"))
    for field, value in message.ListFields():
        if field.message_type is not None and field.message_type.name == "WeightParams" \
                and value.quantization.numberOfBits:
            return _NN_COMPRESSED.get(value.quantization.WhichOneof("QuantizationType"), "quantized")
    return None


def describe_spec(spec) -> dict:
    """What the converted model holds: its type, op counts, the precision of its weights and
    how many weight tensors (ML program) or layers (neural network) hold compressed weights."""
    kind = spec.WhichOneof("Type")
    if kind == "mlProgram":
        function = spec.mlProgram.functions["main"]
        operations = function.block_specializations[function.opset].operations
        ops = Counter(op.type for op in operations)
        weights = Counter(_MIL_TYPES.get(op.outputs[0].type.tensorType.dataType) for op in operations
                          if op.type == "const")
        weights.pop(None, None)
        compressed = Counter(_COMPRESSED_OPS[op] for op in ops.elements() if op in _COMPRESSED_OPS)
        for op in _COMPRESSED_OPS:  # weights, not computation (as const)
            ops.pop(op, None)
    else:
        layers = spec.neuralNetwork.layers
        ops = Counter(layer.WhichOneof("layer") for layer in layers)
        compressed = Counter(filter(None, (_nn_compression(layer) for layer in layers)))
        weights = Counter()
        for layer in layers:
            if layer.WhichOneof("layer") == "convolution":
                weights["fp16" if len(layer.convolution.weights.float16Value) else "fp32"] += 1
                break
    ops.pop("const", None)
    found = compressed or weights
    precision = found.most_common(1)[0][0] if found else ("fp32" if kind != "mlProgram" else None)
    return {"model_type": kind, "specification_version": spec.specificationVersion,
            "op_counts": dict(ops.most_common()), "ops_total": sum(ops.values()), "weight_precision": precision,
            "compressed_weights": sum(compressed.values())}


def _compress(ct, converted, model_format: str, compression: str):
    """``converted`` with its weights compressed to 8 bits, and the method in words."""
    if model_format == "neuralnetwork":  # its own API: quantizes every layer's weights
        from coremltools.models.neural_network.quantization_utils import quantize_weights

        mode = {"linear": "linear_symmetric", "palettize": "kmeans_lut"}[compression]
        with contextlib.redirect_stdout(io.StringIO()):  # it prints what it does
            compressed = quantize_weights(converted, nbits=8, quantization_mode=mode)
        return compressed, f"coremltools quantize_weights (nbits=8, {mode})"
    from coremltools.optimize import coreml as optimize

    if compression == "linear":
        config = optimize.OpLinearQuantizerConfig(mode="linear_symmetric", dtype="int8", granularity="per_channel",
                                                  weight_threshold=WEIGHT_THRESHOLD)
        method, compress = "linear_quantize_weights (int8, symmetric, per channel)", optimize.linear_quantize_weights
    else:
        config = optimize.OpPalettizerConfig(nbits=8, mode="kmeans", weight_threshold=WEIGHT_THRESHOLD)
        method, compress = "palettize_weights (8-bit k-means lookup table)", optimize.palettize_weights
    return compress(converted, optimize.OptimizationConfig(global_config=config)), f"coremltools {method}"


def export_coreml(model: torch.nn.Module, batch: int, resolution: int, model_format: str, precision: str,
                  cache: ExportCache, weights: str | None = None, compression: str = "linear") -> Artifact:
    """The model converted with a static input (batch, 3, resolution, resolution); ``precision``
    is fp16, fp32 or int8 (ML program) or fp32 or int8 (neural network). ``compression`` is how
    int8 compresses the weights: ``linear`` or ``palettize``."""
    if precision not in PRECISIONS[model_format]:
        raise ValueError(f"Core ML {model_format} converts in {', '.join(PRECISIONS[model_format])}, not {precision}")
    if compression not in COMPRESSIONS:
        raise ValueError(f"Core ML weight compression is one of {', '.join(COMPRESSIONS)}, not {compression}")
    if compression != "linear" and precision != "int8":
        raise ValueError(f"Core ML weight compression {compression} applies to int8, not {precision}")
    ct = import_coremltools()
    shape = [batch, 3, resolution, resolution]
    key = {"format": f"coreml-{model_format}", **source_key(model.variant.name, model.form,
                                                           weights or weights_hash(model), shape),
           "precision": precision, "target": TARGETS[model_format], "coremltools": ct.__version__}
    threshold = {"weight_threshold": WEIGHT_THRESHOLD} if model_format == "mlprogram" else {}  # NN: every weight
    if precision == "int8":  # fp16 and fp32 keys stay as they were, so existing caches still hit
        key.update(compression=compression, **threshold)
    compute = "fp32" if precision == "int8" else precision

    def create(path: Path) -> dict:
        import numpy as np
        import torch

        # its progress bars (on stderr) would interleave with the sweep's own progress
        with torch.no_grad(), warnings.catch_warnings(), contextlib.redirect_stderr(io.StringIO()):
            warnings.simplefilter("ignore")
            traced = torch.jit.trace(model.eval(), torch.zeros(shape))
            options = {"minimum_deployment_target": getattr(ct.target, TARGETS[model_format])}
            if model_format == "mlprogram":
                options["compute_precision"] = getattr(ct.precision, {"fp16": "FLOAT16", "fp32": "FLOAT32"}[compute])
            converted = ct.convert(traced, inputs=[ct.TensorType(name=INPUT_NAME, shape=shape, dtype=np.float32)],
                                   outputs=[ct.TensorType(name=OUTPUT_NAME, dtype=np.float32)],
                                   convert_to=model_format, **options)
            compressed = {}
            if precision == "int8":
                converted, method = _compress(ct, converted, model_format, compression)
                compressed = {"weight_compression": compression, "compression_method": method, **threshold}
        converted.short_description = f"RepNeXt-{model.variant.name} ({model.form}), input {'x'.join(map(str, shape))}"
        converted.save(str(path))
        return {"model_format": model_format, "compute_precision": compute, "target": TARGETS[model_format],
                "input": {"name": INPUT_NAME, "shape": shape, "dtype": "float32"},
                **describe_spec(converted.get_spec()), **compressed}

    return cache.get_or_create(f"coreml-{model_format}", key, "model" + SUFFIXES[model_format], create)
