"""PyTorch eager on an NVIDIA GPU: fp32 (TF32 off), fp16 or bf16 by casting the model or by
autocast, optional channels-last, torch.compile and CUDA graph replay.

Each run copies the input from pinned host memory to the GPU, computes, and copies the
logits back, on one non-default stream, then synchronises: the timing loop's host time is
that end-to-end call, and CUDA events around the compute alone give the GPU time apart.
Memory is ``torch.cuda.max_memory_allocated`` from before the model was moved to the GPU.
"""
from __future__ import annotations

import numpy as np

from ..cases import Case
from ..measure.cuda_events import DeviceTimer
from . import Availability, Backend, CaseSkipped, PrepareContext, Session
from .torch_cpu import dtype_of, prepare_module

CUDA_TORCH = "a CUDA build of torch (https://pytorch.org/get-started/locally/) on a machine with an NVIDIA GPU"


def cuda_problem() -> str | None:
    """Why torch cannot use a CUDA GPU here, or None."""
    import torch

    if torch.version.cuda is None:
        return f"torch {torch.__version__} is a CPU-only build"
    if not torch.cuda.is_available():
        return f"no CUDA device is visible (torch {torch.__version__}, built for CUDA {torch.version.cuda})"
    return None


def needs_cuda(found: Availability, install: str) -> Availability:
    """``found`` unless torch sees no CUDA GPU here; then unavailable, saying why."""
    problem = cuda_problem()
    if problem is None:
        return found
    return Availability(found.name, False, found.version, found.devices, reason=problem, install=install)


def gpu_facts(torch) -> dict:
    properties = torch.cuda.get_device_properties(0)
    return {"device_name": properties.name, "compute_capability": f"{properties.major}.{properties.minor}",
            "gpu_memory_mb": properties.total_memory // 2**20}


def gpu_memory(torch) -> dict:
    return {"gpu_peak_allocated_mb": torch.cuda.max_memory_allocated() / 2**20,
            "gpu_peak_reserved_mb": torch.cuda.max_memory_reserved() / 2**20}


def ampere_or_newer(torch) -> bool:
    """Compute capability 8.0 on: TF32 tensor cores and native bf16 (``is_bf16_supported``
    also says yes to emulation on older GPUs)."""
    return torch.cuda.get_device_capability()[0] >= 8


def effective_precision(torch, precision: str) -> str:
    """fp32 runs with TF32 off; ``auto`` keeps torch's defaults, in which cuDNN convolutions
    use TF32 on GPUs that have it."""
    if precision != "auto":
        return precision
    return "tf32" if torch.backends.cudnn.allow_tf32 and ampere_or_newer(torch) else "fp32"


class GpuSession(Session):
    """What the GPU sessions share: one non-default stream, pinned host buffers, and the timed
    call (host->device copy of the input, the compute between two CUDA events, device->host
    copy of the output, synchronise). A subclass sets ``self.x`` (the device input) and
    ``self._compute`` (runs the model, returns the device output)."""

    def __init__(self, torch, images: np.ndarray, num_classes: int) -> None:
        self._torch = torch
        torch.cuda.synchronize()  # whatever ran on the default stream (moving the model) is done
        self.stream = torch.cuda.Stream()
        torch.cuda.set_stream(self.stream)  # everything of this worker runs on one non-default stream
        self.device_timer = DeviceTimer(torch, self.stream)
        self.host_in = torch.from_numpy(images).pin_memory()
        self.host_out = torch.empty((images.shape[0], num_classes), dtype=torch.float32).pin_memory()

    def capture(self, compute):
        """``compute`` recorded once into a CUDA graph (warm it up first); returns a callable
        that replays it and returns its output buffer."""
        graph = self._torch.cuda.CUDAGraph()
        with self._torch.cuda.graph(graph, stream=self.stream):
            out = compute()
        replay = graph.replay

        def replayed():
            replay()
            return out

        return replayed

    def run(self) -> None:
        self.x.copy_(self.host_in, non_blocking=True)
        self.device_timer.start()
        out = self._compute()
        self.device_timer.stop()
        self.host_out.copy_(out, non_blocking=True)
        self.stream.synchronize()

    def output(self) -> np.ndarray:
        return self.host_out.numpy()


class CudaSession(GpuSession):
    def __init__(self, torch, model, x, images: np.ndarray, num_classes: int, precision: str,
                 options: dict) -> None:
        super().__init__(torch, images, num_classes)
        self.options = options
        self.precision = precision
        self.x = x
        self._contexts = [torch.inference_mode()]
        if options.get("autocast") and precision in ("fp16", "bf16"):  # with CUDA graphs the casts are captured too
            self._contexts.append(torch.autocast("cuda", dtype=dtype_of(precision),
                                                 cache_enabled=not options.get("cuda_graphs")))
        for context in self._contexts:  # held for the session's life, not entered per call
            context.__enter__()
        self._compute = lambda: model(self.x)
        if options.get("cuda_graphs"):
            for _ in range(3):  # warm up (cuDNN picks its algorithms) before capturing
                self._compute()
            self.stream.synchronize()
            self._compute = self.capture(self._compute)

    def describe(self) -> dict:
        torch = self._torch
        return {
            "precision_effective": effective_precision(torch, self.precision),
            "device": "cuda",
            **gpu_facts(torch),
            "cast": "autocast" if len(self._contexts) > 1 else "model",
            "channels_last": bool(self.options.get("channels_last")),
            "compiled": bool(self.options.get("compile")),
            "cuda_graphs": bool(self.options.get("cuda_graphs")),
            "timed_call": "host->device copy, forward, device->host copy, synchronize",
            "versions": {"torch": torch.__version__, "cuda": torch.version.cuda,
                         "cudnn": torch.backends.cudnn.version()},
            "gpu_memory": gpu_memory(torch),
        }

    def close(self) -> None:  # a second call does nothing
        contexts, self._contexts = self._contexts, []
        for context in reversed(contexts):
            context.__exit__(None, None, None)


class CudaBackend(Backend):
    name = "cuda"
    devices = ("cuda",)
    module = "torch"
    distribution = "torch"
    install = CUDA_TORCH
    precisions = ("fp32", "fp16", "bf16", "auto")
    run_options = ("channels_last", "compile", "autocast", "cuda_graphs")

    def check_devices(self, found: Availability) -> Availability:
        return needs_cuda(found, self.install)

    def prepare(self, model, case: Case, images: np.ndarray, context: PrepareContext) -> Session:
        import torch

        options = dict(case.options)
        if case.precision == "bf16" and not ampere_or_newer(torch):
            raise CaseSkipped(f"{torch.cuda.get_device_name()} has no bf16 support")
        torch.backends.cudnn.allow_tf32 = case.precision == "auto"  # fp32 means fp32
        torch.backends.cuda.matmul.allow_tf32 = False
        torch.backends.cudnn.benchmark = True  # fixed input shape: let cuDNN pick its fastest algorithms
        torch.cuda.reset_peak_memory_stats()
        num_classes = model.num_classes
        cast = torch.float32 if options.get("autocast") or case.precision == "auto" else dtype_of(case.precision)
        model, x = prepare_module(model, images, cast, options, device="cuda")
        return CudaSession(torch, model, x, images, num_classes, case.precision, options)
