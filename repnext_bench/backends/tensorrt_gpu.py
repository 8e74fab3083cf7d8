"""TensorRT on an NVIDIA GPU: an engine built from the cached ONNX export (export/tensorrt.py),
run with ``execute_async_v3`` on one non-default stream, optionally replayed as a CUDA graph.

Each run copies the input from pinned host memory to the GPU, runs the engine and copies the
logits back, then synchronises (the end-to-end host time); CUDA events around the engine alone
give the GPU compute time. Device buffers are torch tensors, so no other CUDA binding is needed.
"""
from __future__ import annotations

from dataclasses import replace

import numpy as np

from ..cases import Case
from ..export import INPUT_NAME, OUTPUT_NAME, Artifact
from . import Availability, Backend, CaseSkipped, Description, GpuMemory, PrepareContext, Prepared
from .capabilities import ampere_or_newer, bf16_problem, cuda_problem, gpu_precision
from .torch_cuda import GpuSession, gpu_facts, gpu_memory, needs_cuda


def _torch_dtype(trt, torch, trt_dtype):
    """The torch dtype of a TensorRT tensor type (``trt.nptype`` has no bfloat16)."""
    pairs = {"float32": "float32", "float16": "float16", "bfloat16": "bfloat16", "int32": "int32", "int64": "int64",
             "int8": "int8", "bool": "bool"}
    for trt_name, torch_name in pairs.items():
        if hasattr(trt, trt_name) and trt_dtype == getattr(trt, trt_name):
            return getattr(torch, torch_name)
    raise RuntimeError(f"no torch type for TensorRT's {trt_dtype}")


class TensorRTSession(GpuSession):
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

    def describe(self) -> Description:
        torch, precision = self._torch, self.precision
        facts = {**gpu_facts(torch), "typing": self.typing, "cuda_graphs": bool(self.options.get("cuda_graphs")),
                 "timed_call": "host->device copy, execute_async_v3, device->host copy, synchronize"}
        if self.typing == "weak" and precision in ("fp16", "bf16"):
            facts["precision_note"] = f"{precision} enabled: TensorRT picks {precision} or fp32 per layer"
        return Description(gpu_precision(precision, ampere_or_newer(torch)), "cuda", None,
                           {"tensorrt": self._trt.__version__, "torch": torch.__version__, "cuda": torch.version.cuda},
                           facts)

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
    precisions = ("fp32", "fp16", "bf16", "auto")
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

        from ..export.tensorrt import export_tensorrt

        problem = bf16_problem(torch) if case.precision == "bf16" else None
        if problem:
            raise CaseSkipped(problem)
        torch.cuda.reset_peak_memory_stats()
        try:
            artifact = export_tensorrt(model, case.batch, case.resolution, case.precision, context.opset,
                                       context.cache, context.weights)
        except ValueError as exc:  # this TensorRT cannot build the precision
            raise CaseSkipped(str(exc)) from exc
        session = TensorRTSession(artifact.path.read_bytes(), images, model.num_classes, dict(case.options), artifact)
        return Prepared(session, artifact)
