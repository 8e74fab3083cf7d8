"""PyTorch eager on the CPU: inference mode, optional channels-last and torch.compile."""
from __future__ import annotations

import numpy as np

from ..core.cases import Case
from . import Backend, Description, PrepareContext, Prepared, RuntimeProfile, Session

_DTYPES = {"fp32": "float32", "bf16": "bfloat16", "fp16": "float16", "auto": "float32"}
DTYPE_NAMES = {"float32": "fp32", "bfloat16": "bf16", "float16": "fp16"}


def dtype_of(precision: str):
    import torch

    return getattr(torch, _DTYPES[precision])


def prepare_module(model, images, dtype, options: dict, device: str = "cpu"):
    """(model, input) on ``device`` in ``dtype``, channels-last and compiled as ``options`` ask:
    what the torch and cuda backends share."""
    import torch

    model = model.to(device=device, dtype=dtype).eval()
    x = torch.from_numpy(images).to(device=device, dtype=dtype)
    if options.get("channels_last"):
        model = model.to(memory_format=torch.channels_last)
        x = x.contiguous(memory_format=torch.channels_last)
    if options.get("compile"):
        model = torch.compile(model)
    return model, x


class TorchSession(Session):
    def __init__(self, model, images, options: dict) -> None:
        import torch

        self._torch = torch
        self.model = model
        self.images = images
        self.options = options
        self._mode = torch.inference_mode()
        self._mode.__enter__()  # held for the session's life, not entered per call
        self._out = None

    def run(self) -> None:
        self._out = self.model(self.images)

    def threaded_run(self):
        """``run`` for another thread: inference mode is per thread, entered there on the first call."""
        import threading

        local = threading.local()

        def run() -> None:
            if not hasattr(local, "mode"):
                local.mode = self._torch.inference_mode()
                local.mode.__enter__()
            self._out = self.model(self.images)

        return run

    def output(self) -> np.ndarray:
        return self._out.float().numpy()

    def infer(self, images: np.ndarray) -> np.ndarray:
        torch = self._torch
        x = torch.from_numpy(images).to(device=self.images.device, dtype=self.images.dtype)
        if self.options.get("channels_last"):
            x = x.contiguous(memory_format=torch.channels_last)
        with torch.inference_mode():
            return self.model(x).float().cpu().numpy()

    def describe(self) -> Description:
        torch = self._torch
        dtype = next(self.model.parameters()).dtype
        return Description(DTYPE_NAMES[str(dtype).removeprefix("torch.")], "cpu", torch.get_num_threads(),
                           {"torch": torch.__version__},
                           {"channels_last": bool(self.options.get("channels_last")),
                            "compiled": bool(self.options.get("compile"))})

    def profile(self, iterations: int) -> RuntimeProfile:
        """torch.profiler over ``iterations`` forwards, each aten op placed in its module."""
        from ..profiling.torch_ops import profile_module

        return profile_module(self.model, self.run, iterations)

    def close(self) -> None:  # a second call does nothing
        if self._mode is not None:
            self._mode.__exit__(None, None, None)
            self._mode = None


class TorchBackend(Backend):
    name = "torch"
    module = "torch"
    distribution = "torch"
    # fp16 convolutions on the CPU fall back to slow reference kernels in PyTorch
    precisions = ("fp32", "bf16", "auto")
    run_options = ("channels_last", "compile")

    def prepare(self, model, case: Case, images: np.ndarray, context: PrepareContext) -> Prepared:
        import torch

        options = dict(case.options)
        torch.set_num_threads(case.threads)
        model, x = prepare_module(model, images, dtype_of(case.precision), options)
        return Prepared(TorchSession(model, x, options))  # nothing exported: it runs the model itself
