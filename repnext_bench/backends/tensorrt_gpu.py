"""TensorRT on an NVIDIA GPU: an engine built from the cached ONNX export (backends/tensorrt_engine.py),
run with ``execute_async_v3`` on one non-default stream, optionally replayed as a CUDA graph.

Each run copies the input from pinned host memory to the GPU, runs the engine and copies the
logits back, then synchronises (the end-to-end host time); CUDA events around the engine alone
give the GPU compute time. Device buffers are torch tensors, so no other CUDA binding is needed.

INT8 (explicit quantization of the QDQ ONNX, tensorrt_engine.py): the layers that ran int8 are
read back from the engine inspector (the engine is built with detailed profiling verbosity),
each layer by the datatype of its inputs; a case where none did is skipped.
"""
from __future__ import annotations

import json
import re
from dataclasses import replace

import numpy as np

from ..core.cases import Case
from ..export import INPUT_NAME, OUTPUT_NAME, Artifact
from ..system.capabilities import ampere_or_newer, bf16_problem, cuda_problem, gpu_precision
from . import Availability, Backend, CaseSkipped, Description, GpuMemory, PrepareContext, Prepared
from .torch_cuda import GpuSession, gpu_facts, gpu_memory, needs_cuda

# the datatype words of the inspector's "Format/Datatype" (e.g. "Thirty-two wide channel
# vectorized row major Int8 format.", "Row major linear FP32", "Half"), in the order tried
_DATATYPES = (("int8", "int8"), ("fp16", "fp16"), ("half", "fp16"), ("bf16", "bf16"), ("fp8", "fp8"),
              ("int32", "int32"), ("int64", "int64"), ("bool", "bool"), ("fp32", "fp32"), ("float", "fp32"))
_NOT_LAYERS = {"NoOp", "Constant", "Shape"}  # no computation (quant.layers leaves "Constant" uncounted)
_MOVES = {"Reformat", "Shuffle"}  # layout and precision reorders, reshapes


def datatype(text: str) -> str | None:
    """The datatype named in an inspector's "Format/Datatype" text, or None."""
    words = set(re.findall(r"[a-z0-9]+", text.lower()))
    return next((name for word, name in _DATATYPES if word in words), None)


def engine_layers(information: str) -> list[tuple[str, str | None]]:
    """(op type, precision) of each layer of the engine inspector's JSON, for quant.layers:
    a layer made only of Q/DQ nodes is a QuantizeLinear, a Reformat or Shuffle a Reorder, and
    a computing layer runs int8 when one of its inputs is int8, else in its inputs' datatype
    (a Q/DQ fused into a computing layer is part of it)."""
    layers = json.loads(information).get("Layers", [])
    if any(not isinstance(layer, dict) for layer in layers):
        raise RuntimeError("the engine inspector gives layer names only: the engine was not built with "
                           "detailed profiling verbosity")
    found = []
    for layer in layers:
        kind = layer.get("LayerType", "")
        inputs, outputs = ([datatype(t.get("Format/Datatype", "")) for t in layer.get(side, [])]
                           for side in ("Inputs", "Outputs"))
        parts = [part.strip() for part in layer.get("Name", "").split(" + ")]
        if kind in _NOT_LAYERS:
            found.append(("Constant", None))
        elif kind in _MOVES:  # before the names: a reformat is named after the layer it feeds
            found.append(("Reorder", None))
        elif kind in ("Quantize", "Dequantize") or all("quantizelinear" in part.lower() for part in parts):
            found.append(("QuantizeLinear", None))  # DequantizeLinear too
        else:
            precision = "int8" if "int8" in inputs else next(filter(None, inputs + outputs), None)
            found.append((kind, precision))
    return found


def _torch_dtype(trt, torch, trt_dtype):
    """The torch dtype of a TensorRT tensor type (``trt.nptype`` has no bfloat16)."""
    pairs = {"float32": "float32", "float16": "float16", "bfloat16": "bfloat16", "int32": "int32", "int64": "int64",
             "int8": "int8", "bool": "bool"}
    for trt_name, torch_name in pairs.items():
        if hasattr(trt, trt_name) and trt_dtype == getattr(trt, trt_name):
            return getattr(torch, torch_name)
    raise RuntimeError(f"no torch type for TensorRT's {trt_dtype}")


class TensorRTSession(GpuSession):
    quantization: dict | None = None  # INT8: how it was quantized and what ran INT8 (read_layers)

    def __init__(self, engine_bytes: bytes, images: np.ndarray, num_classes: int, options: dict,
                 artifact: Artifact) -> None:
        import tensorrt as trt
        import torch

        super().__init__(torch, images, num_classes)
        self._trt = trt
        self.options = options
        self.precision, self.typing = artifact.info["precision"], artifact.info["typing"]
        free_before = torch.cuda.mem_get_info()[0]
        self.runtime = trt.Runtime(trt.Logger(trt.Logger.WARNING))
        self.engine = self.runtime.deserialize_cuda_engine(engine_bytes)
        if self.engine is None:
            raise RuntimeError("TensorRT could not load the engine (see its log above)")
        self.context = self.engine.create_execution_context()
        # weights and context memory come from TensorRT's own allocations, which torch's
        # counters do not see: the drop in free device memory does
        self.load_added_mb = (free_before - torch.cuda.mem_get_info()[0]) / 2**20
        shape = tuple(images.shape)
        self.x = torch.empty(shape, dtype=_torch_dtype(trt, torch, self.engine.get_tensor_dtype(INPUT_NAME)),
                             device="cuda")
        self.out = torch.empty((shape[0], num_classes), device="cuda",
                               dtype=_torch_dtype(trt, torch, self.engine.get_tensor_dtype(OUTPUT_NAME)))
        self.context.set_input_shape(INPUT_NAME, shape)
        self.context.set_tensor_address(INPUT_NAME, self.x.data_ptr())
        self.context.set_tensor_address(OUTPUT_NAME, self.out.data_ptr())
        execute, handle = self.context.execute_async_v3, self.stream.cuda_stream
        if not execute(handle):  # once before any capture, as TensorRT asks
            raise RuntimeError("TensorRT's execute_async_v3 failed")
        self.stream.synchronize()

        def compute():
            execute(handle)
            return self.out

        self._compute = self.capture(compute) if options.get("cuda_graphs") else compute

    def infer(self, images: np.ndarray) -> np.ndarray:
        """Logits of other inputs (the bound input's shape), outside the timed path."""
        torch = self._torch
        with torch.cuda.stream(self.stream):
            self.x.copy_(torch.from_numpy(np.ascontiguousarray(images, dtype=np.float32)))
            if not self.context.execute_async_v3(self.stream.cuda_stream):
                raise RuntimeError("TensorRT's execute_async_v3 failed")
            logits = self.out.float().cpu()  # waits for the stream
        return logits.numpy()

    def read_layers(self, artifact: Artifact) -> None:
        """How the INT8 engine was quantized, and its layers of each kind, by the precision the
        engine inspector gives each one."""
        from ..quant.layers import count_kinds

        inspector = self.engine.create_engine_inspector()
        layers = engine_layers(inspector.get_engine_information(self._trt.LayerInformationFormat.JSON))
        info = artifact.info
        method = f"{info.get('quantization')}; TensorRT explicit quantization ({self.typing}ly typed)"
        self.quantization = {"method": method, "scheme": info.get("scheme"), "calibration": info.get("calibration"),
                             "layers": count_kinds(layers)}

    def describe(self) -> Description:
        torch, precision = self._torch, self.precision
        facts = {**gpu_facts(torch), "typing": self.typing, "cuda_graphs": bool(self.options.get("cuda_graphs")),
                 "timed_call": "host->device copy, execute_async_v3, device->host copy, synchronize"}
        if self.typing == "weak" and precision in ("fp16", "bf16"):
            facts["precision_note"] = f"{precision} enabled: TensorRT picks {precision} or fp32 per layer"
        if self.quantization:  # what the Q/DQ pairs leave float is fp32 (TF32 off)
            facts["float_precision"] = "fp32"
        effective = "int8" if self.quantization else gpu_precision(precision, ampere_or_newer(torch))
        return Description(effective, "cuda", None,
                           {"tensorrt": self._trt.__version__, "torch": torch.__version__, "cuda": torch.version.cuda},
                           facts, self.quantization)

    def gpu_memory(self) -> GpuMemory:
        engine = self.engine
        activation = (engine.device_memory_size_v2 if hasattr(engine, "device_memory_size_v2")
                      else engine.device_memory_size)
        return replace(gpu_memory(self._torch), trt_activation_mb=activation / 2**20,
                       trt_load_added_mb=self.load_added_mb)


class TensorRTBackend(Backend):
    name = "tensorrt"
    devices = ("cuda",)
    module = "tensorrt"
    distribution = "tensorrt"
    install = 'pip install "repnext-bench[tensorrt]" (Linux or Windows, with an NVIDIA GPU and a CUDA build of torch)'
    precisions = ("fp32", "fp16", "bf16", "int8", "auto")
    run_options = ("cuda_graphs",)

    def check_devices(self, found: Availability) -> Availability:
        return needs_cuda(found, self.install)

    def availability(self) -> Availability:
        found = super().availability()
        problem = None if found.available else cuda_problem()
        if problem and problem not in found.reason:  # say both: no GPU here, and no tensorrt either
            return replace(found, reason=f"{problem}; and {found.reason}")
        return found

    def prepare(self, model, case: Case, images: np.ndarray, context: PrepareContext) -> Prepared:
        import torch

        from .tensorrt_engine import export_tensorrt

        problem = bf16_problem(torch) if case.precision == "bf16" else None
        if problem:
            raise CaseSkipped(problem)
        torch.cuda.reset_peak_memory_stats()
        try:
            artifact = export_tensorrt(model, case.batch, case.resolution, case.precision, context.opset,
                                       context.cache, context.weights, context.calibration_set())
        except ValueError as exc:  # this TensorRT cannot build the precision
            raise CaseSkipped(str(exc)) from exc
        session = TensorRTSession(artifact.path.read_bytes(), images, model.num_classes, dict(case.options), artifact)
        if case.precision == "int8":
            from . import require_int8

            session.read_layers(artifact)
            require_int8("TensorRT", session, artifact)
        return Prepared(session, artifact)
