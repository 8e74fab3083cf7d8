"""PyTorch eager on an NVIDIA GPU: fp32 (TF32 off), fp16 or bf16 by casting the model or by
autocast, optional channels-last, torch.compile and CUDA graph replay.

Each run copies the input from pinned host memory to the GPU, computes, and copies the
logits back, on one non-default stream, then synchronises: the timing loop's host time is
that end-to-end call, and CUDA events around the compute alone give the GPU time apart.
Memory is ``torch.cuda.max_memory_allocated`` from before the model was moved to the GPU.
"""
from __future__ import annotations

import numpy as np

from ..core.cases import Case
from ..measure.cuda_events import DeviceTimer
from ..system.capabilities import ampere_or_newer, bf16_problem, cuda_problem, gpu_precision, tf32_allowed
from . import Availability, Backend, CaseSkipped, Description, GpuMemory, PrepareContext, Prepared, Session
from .torch_cpu import dtype_of, prepare_module

CUDA_TORCH = "a CUDA build of torch (https://pytorch.org/get-started/locally/) on a machine with an NVIDIA GPU"


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


def gpu_memory(torch) -> GpuMemory:
    """Peak memory of torch's CUDA allocator (reset when the case began preparing)."""
    return GpuMemory(torch.cuda.max_memory_allocated() / 2**20, torch.cuda.max_memory_reserved() / 2**20)


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

    def make_current(self) -> None:
        self._torch.cuda.set_stream(self.stream)

    def thread_contexts(self) -> list:
        """The thread-local settings a thread that runs this session enters first (torch's
        inference mode and autocast are per thread)."""
        return []

    def threaded_run(self):
        """``run`` for another thread (a stream of the throughput or server mode): on its first
        call, the thread makes this session's CUDA stream its current one and enters the
        session's thread-local settings; each session has a stream of its own, so N sessions
        run on N CUDA streams."""
        import threading

        local = threading.local()

        def run() -> None:
            if not hasattr(local, "contexts"):
                self._torch.cuda.set_stream(self.stream)
                local.contexts = self.thread_contexts()
                for context in local.contexts:
                    context.__enter__()
            self.run()

        return run

    def output(self) -> np.ndarray:
        return self.host_out.numpy()

    def infer(self, images: np.ndarray) -> np.ndarray:
        """The timed call on other inputs, copied into the pinned input buffer (restored after)."""
        bound, last = self.host_in.clone(), self.host_out.clone()
        self.host_in.copy_(self._torch.from_numpy(images))
        try:
            self.run()
            return self.output().copy()
        finally:
            self.host_in.copy_(bound)
            self.host_out.copy_(last)

    def gpu_memory(self) -> GpuMemory:
        return gpu_memory(self._torch)


class CudaSession(GpuSession):
    def __init__(self, torch, model, x, images: np.ndarray, num_classes: int, precision: str,
                 options: dict) -> None:
        super().__init__(torch, images, num_classes)
        self.options = options
        self.precision = precision
        self.x = x
        self._contexts = self.thread_contexts()
        for context in self._contexts:  # held for the session's life, not entered per call
            context.__enter__()
        self._compute = lambda: model(self.x)
        if options.get("cuda_graphs"):
            for _ in range(3):  # warm up (cuDNN picks its algorithms) before capturing
                self._compute()
            self.stream.synchronize()
            self._compute = self.capture(self._compute)

    def thread_contexts(self) -> list:
        torch, contexts = self._torch, [self._torch.inference_mode()]
        if self.options.get("autocast") and self.precision in ("fp16", "bf16"):  # with CUDA graphs the casts are
            contexts.append(torch.autocast("cuda", dtype=dtype_of(self.precision),  # captured too
                                           cache_enabled=not self.options.get("cuda_graphs")))
        return contexts

    def describe(self) -> Description:
        torch = self._torch
        return Description(
            gpu_precision(self.precision, ampere_or_newer(torch)), "cuda", None,
            {"torch": torch.__version__, "cuda": torch.version.cuda, "cudnn": torch.backends.cudnn.version()},
            {**gpu_facts(torch),
             "cast": "autocast" if len(self._contexts) > 1 else "model",
             "channels_last": bool(self.options.get("channels_last")),
             "compiled": bool(self.options.get("compile")),
             "cuda_graphs": bool(self.options.get("cuda_graphs")),
             "timed_call": "host->device copy, forward, device->host copy, synchronize"})

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

    def prepare(self, model, case: Case, images: np.ndarray, context: PrepareContext) -> Prepared:
        import torch

        options = dict(case.options)
        problem = bf16_problem(torch) if case.precision == "bf16" else None
        if problem:
            raise CaseSkipped(problem)
        torch.backends.cudnn.allow_tf32 = tf32_allowed(case.precision)  # cuDNN convolutions
        torch.backends.cuda.matmul.allow_tf32 = False  # torch's default for matmuls, whatever the precision
        torch.backends.cudnn.benchmark = True  # fixed input shape: let cuDNN pick its fastest algorithms
        torch.cuda.reset_peak_memory_stats()
        num_classes = model.num_classes
        cast = torch.float32 if options.get("autocast") or case.precision == "auto" else dtype_of(case.precision)
        model, x = prepare_module(model, images, cast, options, device="cuda")
        return Prepared(CudaSession(torch, model, x, images, num_classes, case.precision, options))
