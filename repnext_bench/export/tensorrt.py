"""ONNX -> TensorRT engine with the tensorrt Python API, cached like every artifact (the key
adds the TensorRT version, the precision, the static input shape and the GPU), with a
timing cache per TensorRT version and GPU so that later builds reuse measured tactics.

Precision, in the way the installed TensorRT supports it: fp32 with TF32 off; ``auto`` keeps
TensorRT's default (TF32 allowed); fp16 by builder flag before 10.12 (weak typing: TensorRT
picks fp16 or fp32 per layer) and from 10.12, where the flags are deprecated (gone in 11), as a
strongly typed network parsed from an fp16 ONNX export; bf16 by its builder flag wherever
there is one (a bf16 ONNX Conv needs opset 22, beyond the TorchScript exporter).
"""
from __future__ import annotations

import re
import time
from pathlib import Path

import torch

from ..backends.capabilities import tf32_allowed
from . import INPUT_NAME, Artifact, ExportCache, export_onnx, source_key, weights_hash

_FLAGS = {"fp16": "FP16", "bf16": "BF16"}


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
    # bf16 stays on its (deprecated) flag while there is one: a bf16-typed ONNX Conv needs
    # opset 22, beyond what the TorchScript exporter writes
    if flag is not None and (release(trt) < (10, 12) or precision == "bf16"):
        return explicit, [flag], "fp32", "weak"
    if precision == "bf16":
        raise ValueError(f"TensorRT {trt.__version__} builds bf16 only from a bf16-typed ONNX graph, whose Conv "
                         "needs opset 22, beyond the TorchScript exporter")
    strongly = getattr(creation, "STRONGLY_TYPED", None)
    if strongly is None and release(trt)[0] < 11:  # 11 is always strongly typed and has no such flag
        raise ValueError(f"TensorRT {trt.__version__} has no {precision} (no builder flag, no strong typing)")
    return explicit | (1 << int(strongly) if strongly is not None else 0), [], precision, "strong"


def _slug(text: str) -> str:
    return re.sub(r"[^A-Za-z0-9.]+", "-", text).strip("-")


def export_tensorrt(model: torch.nn.Module, batch: int, resolution: int, precision: str, opset: int,
                    cache: ExportCache, weights: str | None = None) -> Artifact:
    """A serialized engine for input (batch, 3, resolution, resolution) on GPU 0."""
    import tensorrt as trt

    creation_flags, builder_flags, onnx_dtype, typing = build_plan(trt, precision)
    weights = weights or weights_hash(model)
    onnx = export_onnx(model, resolution, opset, cache, weights, dtype=onnx_dtype)
    gpu = torch.cuda.get_device_properties(0)
    shape = (batch, 3, resolution, resolution)
    key = {"format": "tensorrt", **source_key(model.variant.name, model.form, weights, list(shape)),
           "onnx_key": onnx.key, "precision": precision, "tensorrt": trt.__version__, "gpu": gpu.name,
           "compute_capability": f"{gpu.major}.{gpu.minor}"}
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
        if not tf32_allowed(precision) and hasattr(trt.BuilderFlag, "TF32"):
            config.clear_flag(trt.BuilderFlag.TF32)  # fp32 means fp32, not TF32 tensor cores
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
        return {"precision": precision, "typing": typing, "onnx_dtype": onnx_dtype, "build_s": round(build_s, 3),
                "tensorrt": trt.__version__, "gpu": gpu.name, "timing_cache": str(timing_cache),
                "onnx": {"path": str(onnx.path), "cache_key": onnx.key, "size_bytes": onnx.size_bytes}}

    return cache.get_or_create("tensorrt", key, "model.engine", create)
