"""Backends behind one small interface.

A backend module imports its runtime (onnxruntime, openvino, ...) only inside its methods,
so the command line starts fast and a missing runtime is a clear message, not an ImportError.
"""
from __future__ import annotations

import importlib
import importlib.util
from abc import ABC, abstractmethod
from dataclasses import asdict, dataclass, field
from importlib.metadata import PackageNotFoundError, version

import numpy as np

from ..cases import Case
from ..export import ExportCache
from ..measure.timing import TimingPlan, measure, warm_up

# name -> "module:Class"; the classes live in this package, one module per backend
BACKENDS = {
    "torch": "repnext_bench.backends.torch_cpu:TorchBackend",
    "onnxruntime": "repnext_bench.backends.onnxruntime_cpu:OnnxRuntimeBackend",
    "openvino": "repnext_bench.backends.openvino_cpu:OpenVinoBackend",
}
# names taken by the GPU/Apple backends, which are not built yet: name -> (what it is, device)
RESERVED = {
    "cuda": ("PyTorch on an NVIDIA GPU", "cuda"),
    "tensorrt": ("TensorRT on an NVIDIA GPU", "cuda"),
    "coreml": ("Core ML on Apple devices", "apple"),
}


class CaseSkipped(Exception):
    """Raised by a backend that finds, once loaded, that it cannot run a case (e.g. no bf16 on this CPU)."""


@dataclass(frozen=True)
class Availability:
    name: str
    available: bool
    version: str | None
    devices: list[str] = field(default_factory=list)
    reason: str | None = None  # why it is not available
    install: str | None = None  # how to make it available

    def to_dict(self) -> dict:
        return asdict(self)


@dataclass
class PrepareContext:
    """What a backend may need beyond the model: the export cache and export settings."""

    cache: ExportCache
    opset: int
    weights: str  # hash of the model's weights, part of every artifact's cache key
    artifact: dict | None = None  # filled by backends that export: path, size, cache hit, export time


class Session(ABC):
    """A model loaded into a runtime, with its input and output bound once."""

    @abstractmethod
    def run(self) -> None:
        """One inference on the bound input. This is the timed call: nothing else happens in it."""

    @abstractmethod
    def output(self) -> np.ndarray:
        """The output of the last run, as float32 logits."""

    @abstractmethod
    def describe(self) -> dict:
        """What actually ran: ``precision_effective``, threads, provider or device, and so on."""

    def throughput(self, plan: TimingPlan) -> tuple[int, float, dict]:
        """(completed inferences, wall seconds, concurrency). One request in flight unless a
        runtime overrides this with a real concurrent queue."""
        warm_up(self.run, plan)
        samples, wall = measure(self.run, plan)
        return len(samples), wall, {"streams": 1, "requests": 1}

    def close(self) -> None:
        """Release the runtime's resources."""


class Backend(ABC):
    name: str
    device: str = "cpu"
    module: str  # the Python module that must be importable
    distribution: str  # the pip distribution that provides it
    precisions: tuple[str, ...] = ("fp32", "auto")

    def availability(self) -> Availability:
        if importlib.util.find_spec(self.module) is None:
            return Availability(self.name, False, None, reason=f"the Python module '{self.module}' is not installed",
                                install=f"pip install {self.distribution}")
        try:
            found = version(self.distribution)
        except PackageNotFoundError:
            found = None
        return Availability(self.name, True, found, devices=[self.device])

    def unsupported(self, case: Case) -> str | None:
        """Why this backend cannot run ``case`` (a reason to skip it), or None."""
        if case.precision not in self.precisions:
            return (f"{self.name} on {self.device} does not run {case.precision}; "
                    f"it supports {', '.join(self.precisions)}")
        return None

    @abstractmethod
    def prepare(self, model, case: Case, images: np.ndarray, context: PrepareContext) -> Session:
        """Load ``model`` (a RepNeXt in the case's form, fp32) and bind ``images`` as its input."""


def get_backend(name: str) -> Backend:
    if name not in BACKENDS:
        raise KeyError(name)
    module, _, cls = BACKENDS[name].partition(":")
    return getattr(importlib.import_module(module), cls)()


def backend_names() -> list[str]:
    return [*BACKENDS, *RESERVED]


def backend_device(name: str) -> str:
    return RESERVED[name][1] if name in RESERVED else get_backend(name).device


def availability(name: str) -> Availability:
    if name in RESERVED:
        what, device = RESERVED[name]
        return Availability(name, False, None, devices=[device],
                            reason=f"{what}: reserved, not in this version (it measures torch, onnxruntime and "
                                   "openvino on the CPU)")
    return get_backend(name).availability()
