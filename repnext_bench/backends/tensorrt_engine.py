"""ONNX -> TensorRT engine with the tensorrt Python API, cached like every artifact (the key
adds the TensorRT version, the precision, the static input shape and the GPU), with a
timing cache per TensorRT version and GPU so that later builds reuse measured tactics.

Precision, in the way the installed TensorRT supports it: fp32 with TF32 off; ``auto`` keeps
TensorRT's default (TF32 allowed); fp16 by builder flag before 10.12 (weak typing: TensorRT
picks fp16 or fp32 per layer) and from 10.12, where the flags are deprecated (gone in 11), as a
strongly typed network parsed from an fp16 ONNX export; bf16 by its builder flag wherever
there is one (a bf16 ONNX Conv needs opset 22, beyond the TorchScript exporter).

INT8 is TensorRT's explicit quantization: the network is parsed from the symmetric QDQ ONNX
(quant/onnx_qdq.py, calibrated on the calibration set), so the Q/DQ pairs say where int8 runs.
Before 10.12 the network is weakly typed with the INT8 builder flag (FP16 left off: what the
pairs do not cover stays fp32, TF32 off, as in the fp32 case); from 10.12, where the precision
flags are deprecated, it is strongly typed, as TensorRT's documentation advises for Q/DQ
networks (no precision flag). The engine is built with detailed profiling verbosity, so that
its inspector says the precision of each layer.
"""
from __future__ import annotations

import re
import time
from pathlib import Path

import torch

from ..export import INPUT_NAME, Artifact, ExportCache, export_onnx, source_key, weights_hash
from ..quant.images import CalibrationSet
from ..system.capabilities import tf32_allowed

_FLAGS = {"fp16": "FP16", "bf16": "BF16", "int8": "INT8"}
QDQ = "int8-qdq"  # the ONNX an int8 build parses: the symmetric QDQ export


def release(trt) -> tuple[int, int]:
    major, minor = (int(part) for part in trt.__version__.split(".")[:2])
    return major, minor


def build_plan(trt, precision: str) -> tuple[int, list, str, str]:
    """(network creation flags, builder flags, dtype of the ONNX to parse, typing) for
    ``precision`` on this TensorRT; ValueError when this release cannot build it."""
    creation = trt.NetworkDefinitionCreationFlag
    explicit = 1 << int(creation.EXPLICIT_BATCH) if release(trt)[0] < 10 else 0  # always explicit from 10
    if precision not in _FLAGS:
        return explicit, [], "fp32", "weak"
    flag = getattr(trt.BuilderFlag, _FLAGS[precision], None)
    source = QDQ if precision == "int8" else "fp32"  # what a weakly typed build parses
    # bf16 stays on its (deprecated) flag while there is one: a bf16-typed ONNX Conv needs
    # opset 22, beyond what the TorchScript exporter writes
    if flag is not None and (release(trt) < (10, 12) or precision == "bf16"):
        return explicit, [flag], source, "weak"
    if precision == "bf16":
        raise ValueError(f"TensorRT {trt.__version__} builds bf16 only from a bf16-typed ONNX graph, whose Conv "
                         "needs opset 22, beyond the TorchScript exporter")
    strongly = getattr(creation, "STRONGLY_TYPED", None)
    if strongly is None and release(trt)[0] < 11:  # 11 is always strongly typed and has no such flag
        raise ValueError(f"TensorRT {trt.__version__} has no {precision} (no builder flag, no strong typing)")
    typed = QDQ if precision == "int8" else precision
    return explicit | (1 << int(strongly) if strongly is not None else 0), [], typed, "strong"


def _slug(text: str) -> str:
    return re.sub(r"[^A-Za-z0-9.]+", "-", text).strip("-")


def source_onnx(model: torch.nn.Module, resolution: int, opset: int, cache: ExportCache, weights: str,
                onnx_dtype: str, calibration: CalibrationSet | None = None) -> Artifact:
    """The ONNX an engine is built from: the export of ``onnx_dtype``, or for int8 the symmetric
    QDQ export calibrated on ``calibration`` (None: the default synthetic set)."""
    if onnx_dtype != QDQ:
        return export_onnx(model, resolution, opset, cache, weights, dtype=onnx_dtype)
    from ..quant.onnx_qdq import quantized_onnx

    return quantized_onnx(model, resolution, opset, cache, weights, calibration or CalibrationSet(None),
                          symmetric=True)


def engine_key(model: torch.nn.Module, weights: str, shape: tuple, onnx: Artifact, precision: str, version: str,
               gpu) -> dict:
    """The engine's cache key: the model and input, the ONNX it was parsed from (whose key holds,
    for int8, the calibration set's hash), the precision, TensorRT and the GPU."""
    key = {"format": "tensorrt", **source_key(model.variant.name, model.form, weights, list(shape)),
           "onnx_key": onnx.key, "precision": precision, "tensorrt": version, "gpu": gpu.name,
           "compute_capability": f"{gpu.major}.{gpu.minor}"}
    if precision == "int8":  # the other keys stay as they were, so existing caches still hit
        key["profiling_verbosity"] = "detailed"
    return key


def export_tensorrt(model: torch.nn.Module, batch: int, resolution: int, precision: str, opset: int,
                    cache: ExportCache, weights: str | None = None,
                    calibration: CalibrationSet | None = None) -> Artifact:
    """A serialized engine for input (batch, 3, resolution, resolution) on GPU 0; int8 is
    calibrated on ``calibration`` (None: the default synthetic set)."""
    import tensorrt as trt

    creation_flags, builder_flags, onnx_dtype, typing = build_plan(trt, precision)
    weights = weights or weights_hash(model)
    onnx = source_onnx(model, resolution, opset, cache, weights, onnx_dtype, calibration)
    gpu = torch.cuda.get_device_properties(0)
    shape = (batch, 3, resolution, resolution)
    key = engine_key(model, weights, shape, onnx, precision, trt.__version__, gpu)
    timing_cache = cache.root / "tensorrt-timing" / f"{_slug(trt.__version__)}-{_slug(gpu.name)}.cache"

    def create(path: Path) -> dict:
        logger = trt.Logger(trt.Logger.WARNING)
        builder = trt.Builder(logger)
        network = builder.create_network(creation_flags)
        parser = trt.OnnxParser(network, logger)
        if not parser.parse(onnx.path.read_bytes()):
            errors = "; ".join(str(parser.get_error(i)) for i in range(parser.num_errors))
            raise RuntimeError(f"TensorRT could not parse the ONNX export: {errors}")
        config = builder.create_builder_config()
        for flag in builder_flags:
            config.set_flag(flag)
        # fp32 means fp32, not TF32 tensor cores; so does what int8 leaves float
        if (not tf32_allowed(precision) or precision == "int8") and hasattr(trt.BuilderFlag, "TF32"):
            config.clear_flag(trt.BuilderFlag.TF32)
        if precision == "int8":  # the inspector then gives each layer's precision
            config.profiling_verbosity = trt.ProfilingVerbosity.DETAILED
        profile = builder.create_optimization_profile()
        profile.set_shape(INPUT_NAME, shape, shape, shape)
        config.add_optimization_profile(profile)
        timings = config.create_timing_cache(timing_cache.read_bytes() if timing_cache.is_file() else b"")
        config.set_timing_cache(timings, False)
        start = time.perf_counter()
        serialized = builder.build_serialized_network(network, config)
        build_s = time.perf_counter() - start
        if serialized is None:
            raise RuntimeError("TensorRT could not build an engine (see its log above)")
        path.write_bytes(bytes(serialized))
        timing_cache.parent.mkdir(parents=True, exist_ok=True)
        staged = timing_cache.with_suffix(f".{path.parent.name}")
        staged.write_bytes(bytes(config.get_timing_cache().serialize()))
        staged.replace(timing_cache)
        quantized = {k: onnx.info[k] for k in ("quantization", "scheme", "calibration") if k in onnx.info}
        return {"precision": precision, "typing": typing, "onnx_dtype": onnx_dtype, "build_s": round(build_s, 3),
                "tensorrt": trt.__version__, "gpu": gpu.name, "timing_cache": str(timing_cache),
                "onnx": {"path": str(onnx.path), "cache_key": onnx.key, "size_bytes": onnx.size_bytes}, **quantized}

    return cache.get_or_create("tensorrt", key, "model.engine", create)
