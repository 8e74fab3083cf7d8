"""Backends behind one small interface.

A backend module imports its runtime (onnxruntime, openvino, ...) only inside its methods,
so the command line starts fast and a missing runtime is a clear message, not an ImportError.
"""
from __future__ import annotations

import importlib
import importlib.util
from abc import ABC, abstractmethod
from collections.abc import Callable
from dataclasses import asdict, dataclass, field
from importlib.metadata import PackageNotFoundError, version

import numpy as np

from ..core.cases import Case
from ..export import Artifact, ExportCache
from ..measure.timing import TimingPlan, measure, warm_up
from ..profiling.records import RuntimeProfile
from ..quant.images import CalibrationSet

# name -> "module:Class"; the classes live in this package, one module per backend
BACKENDS = {
    "torch": "repnext_bench.backends.torch_cpu:TorchBackend",
    "onnxruntime": "repnext_bench.backends.ort:OnnxRuntimeBackend",
    "openvino": "repnext_bench.backends.openvino_cpu:OpenVinoBackend",
    "cuda": "repnext_bench.backends.torch_cuda:CudaBackend",
    "tensorrt": "repnext_bench.backends.tensorrt_gpu:TensorRTBackend",
    "coreml": "repnext_bench.backends.coreml:CoreMLBackend",
}


class CaseSkipped(Exception):
    """Raised by a backend that finds, once loaded, that it cannot run a case (e.g. no bf16 on this CPU).
    ``artifact`` is what the backend exported or reused before it found out (None if nothing);
    ``exported`` says that this artifact is a result of its own (a Core ML model converted where
    it cannot be run), to be reported with the case. ``model`` (params, MACs, form) is set by
    the lifecycle, which knows the model."""

    def __init__(self, reason: str, *, artifact: Artifact | None = None, exported: bool = False) -> None:
        super().__init__(reason)
        self.artifact = artifact
        self.exported = exported
        self.model: dict | None = None


@dataclass(frozen=True)
class Availability:
    name: str
    available: bool
    version: str | None
    devices: list[str] = field(default_factory=list)  # the devices it can run on here
    reason: str | None = None  # why it is not available
    install: str | None = None  # how to make it (or its missing devices) available
    unusable: dict[str, str] = field(default_factory=dict)  # device -> why it cannot be used here
    note: str | None = None  # what to know even when it is available

    def to_dict(self) -> dict:
        return asdict(self)


@dataclass(frozen=True)
class PrepareContext:
    """What a backend may need beyond the model: the export cache and export settings, and
    whether to set the runtime's own profiler up (for :meth:`Session.profile`)."""

    cache: ExportCache
    opset: int
    weights: str  # hash of the model's weights, part of every artifact's cache key
    profiling: bool = False
    calibration: CalibrationSet | None = None  # what INT8 cases calibrate on (None: synthetic, the default size)

    def calibration_set(self) -> CalibrationSet:
        return self.calibration or CalibrationSet(None)


@dataclass(frozen=True)
class Description:
    """What actually ran. ``facts`` holds what only this backend knows (providers, placement,
    streams, CUDA graphs, ...); ``threads`` is None where the runtime has no thread count."""

    precision_effective: str
    device: str
    threads: int | None = None
    versions: dict[str, object] = field(default_factory=dict)  # library -> version (cuDNN gives an int)
    facts: dict[str, object] = field(default_factory=dict)
    # INT8 cases: how the model was quantized (method, calibration) and the layers of each kind
    # that ran, counted from the runtime's execution graph (quant.layers); a result's ``quantization``
    quantization: dict | None = None

    def to_dict(self) -> dict:
        """The plain-JSON form that the case process replies with and reports keep."""
        threads = {} if self.threads is None else {"threads": self.threads}
        return {"precision_effective": self.precision_effective, "device": self.device, **threads,
                **self.facts, "versions": dict(self.versions)}


@dataclass(frozen=True)
class GpuMemory:
    """Peak GPU memory of the case (MiB), from torch's allocator counters; TensorRT adds what its
    own allocations took, which those counters do not see."""

    peak_allocated_mb: float
    peak_reserved_mb: float
    trt_activation_mb: float | None = None
    trt_load_added_mb: float | None = None

    def to_dict(self) -> dict:
        """The plain-JSON form that goes into a result's ``memory``."""
        found = {"gpu_peak_allocated_mb": self.peak_allocated_mb, "gpu_peak_reserved_mb": self.peak_reserved_mb,
                 "trt_activation_mb": self.trt_activation_mb, "trt_load_added_mb": self.trt_load_added_mb}
        return {key: value for key, value in found.items() if value is not None}


class Session(ABC):
    """A model loaded into a runtime, with its input and output bound once."""

    device_timer = None  # a measure.cuda_events.DeviceTimer on GPU backends: the GPU time of each run

    @abstractmethod
    def run(self) -> None:
        """One inference on the bound input. This is the timed call: nothing else happens in it."""

    @abstractmethod
    def output(self) -> np.ndarray:
        """The output of the last run, as float32 logits."""

    @abstractmethod
    def describe(self) -> Description:
        """What actually ran: effective precision, device, threads, versions, and the backend's own facts."""

    def gpu_memory(self) -> GpuMemory | None:
        """Peak GPU memory so far, on backends that run on a GPU; None elsewhere."""
        return None

    def infer(self, images: np.ndarray) -> np.ndarray:
        """Float32 logits of ``images`` (as many as the bound input holds), outside the timed
        path: what the evaluation of INT8 parity and top-1 accuracy runs on other inputs."""
        raise NotImplementedError(f"{type(self).__name__} cannot run inputs other than its bound one")

    def predict(self, images: np.ndarray, batch: int) -> np.ndarray:
        """Logits of any number of images, in chunks of ``batch`` (the bound input's batch; the
        last chunk padded by repeating its last image)."""
        outputs = []
        for start in range(0, len(images), batch):
            chunk = images[start:start + batch]
            count = len(chunk)
            if count < batch:
                chunk = np.concatenate([chunk, np.repeat(chunk[-1:], batch - count, axis=0)])
            outputs.append(np.asarray(self.infer(np.ascontiguousarray(chunk)), dtype=np.float32)[:count])
        return np.concatenate(outputs)

    def throughput(self, plan: TimingPlan) -> tuple[int, float, dict]:
        """(completed inferences, wall seconds, concurrency). One request in flight unless a
        runtime overrides this with a real concurrent queue."""
        warm_up(self.run, plan)
        samples, wall = measure(self.run, plan)
        return len(samples), wall, {"streams": 1, "requests": 1}

    def runners(self, streams: int) -> list[Callable[[], None]]:
        """``streams`` ways to run one inference at the same time, each with its own input and
        output: what the throughput and server modes call from that many threads. One session
        is one stream; a runtime with streams of its own (OpenVINO) overrides this, and the
        others get a session per stream (:func:`repnext_bench.run.lifecycle.open_case`)."""
        if streams != 1:
            raise NotImplementedError(f"{type(self).__name__} runs one stream per session")
        return [self.threaded_run()]

    def make_current(self) -> None:  # noqa: B027 (optional: only GPU sessions have a current stream)
        """Make this session the one the calling thread runs (a GPU session: its CUDA stream, after
        further sessions of the case were prepared in this thread and made theirs current)."""

    def threaded_run(self) -> Callable[[], None]:
        """:meth:`run`, to be called from another thread (a stream of the throughput or server
        mode); a runtime with per-thread state (torch's inference mode) sets it up there."""
        return self.run

    def profile(self, iterations: int) -> RuntimeProfile:
        """``iterations`` inferences (after a few unprofiled ones) under the runtime's own
        profiler, on a session prepared with ``PrepareContext(profiling=True)``."""
        raise NotImplementedError(f"{type(self).__name__} has no profiler")

    def close(self) -> None:  # noqa: B027 (optional: most runtimes free their resources with the session)
        """Release the runtime's resources; closing twice must be harmless."""


@dataclass(frozen=True)
class Prepared:
    """What :meth:`Backend.prepare` gives back: the loaded session, and the artifact it exported
    or reused from the cache (None for a backend that runs the PyTorch model itself)."""

    session: Session
    artifact: Artifact | None = None


class Backend(ABC):
    name: str
    devices: tuple[str, ...] = ("cpu",)  # what it can target; the first is the default
    module: str  # the Python module that must be importable
    distribution: str  # the pip distribution that provides it
    install: str | None = None  # how to install it, when not plain ``pip install <distribution>``
    precisions: tuple[str, ...] = ("fp32", "auto")
    # the ``run`` options it takes (their Case.options keys); the command line offers each
    # option to the backends that declare it, and no others
    run_options: tuple[str, ...] = ()
    # whether one session serves several streams itself (Session.runners); otherwise a case of
    # N streams gets N sessions, each with its share of the threads
    native_streams: bool = False

    @property
    def device(self) -> str:
        return self.devices[0]

    def availability(self) -> Availability:
        if importlib.util.find_spec(self.module) is None:
            return Availability(self.name, False, None, list(self.devices),
                                reason=f"the Python module '{self.module}' is not installed",
                                install=self.install or f"pip install {self.distribution}")
        try:
            found = version(self.distribution)
        except PackageNotFoundError:
            found = None
        return self.check_devices(Availability(self.name, True, found, devices=list(self.devices)))

    def check_devices(self, found: Availability) -> Availability:
        """``found`` narrowed to the devices usable on this machine (backends with devices that
        may be absent override this)."""
        return found

    def precisions_for(self, case: Case) -> tuple[str, ...]:
        """The precisions it runs for ``case`` (backends where they depend on the device or an
        option override this)."""
        return self.precisions

    def unsupported(self, case: Case) -> str | None:
        """Why this backend cannot run ``case`` (a reason to skip it), or None."""
        precisions = self.precisions_for(case)
        if case.precision not in precisions:
            extra = "".join(f" {word}" for word in case.option_words)
            return (f"{self.name}{extra} on {case.device} does not run {case.precision}; "
                    f"it supports {', '.join(precisions)}")
        return None

    @abstractmethod
    def prepare(self, model, case: Case, images: np.ndarray, context: PrepareContext) -> Prepared:
        """Load ``model`` (a RepNeXt in the case's form, fp32) and bind ``images`` as its input;
        raise :class:`CaseSkipped` (with the artifact made so far) where it cannot run the case."""


def get_backend(name: str) -> Backend:
    if name not in BACKENDS:
        raise KeyError(name)
    module, _, cls = BACKENDS[name].partition(":")
    return getattr(importlib.import_module(module), cls)()


def backend_names() -> list[str]:
    return list(BACKENDS)


def availability(name: str) -> Availability:
    return get_backend(name).availability()


def case_problem(case: Case, found: Availability) -> tuple[str, str] | None:
    """(status, reason) for a case that cannot run here: its backend or device is not
    available, or the backend does not run its precision; None when it can run."""
    if not found.available:
        return "unavailable", f"{case.backend} is not available: {found.reason}" + (
            f" ({found.install})" if found.install else "")
    if case.device not in found.devices:
        why = found.unusable.get(case.device, "not a device it supports")
        return "unavailable", f"{case.backend} cannot use {case.device} here: {why}" + (
            f" ({found.install})" if found.install else "")
    reason = get_backend(case.backend).unsupported(case)
    return ("skipped", reason) if reason else None


def require_int8(runtime: str, session, artifact) -> None:
    """Skip the case (CaseSkipped, with its artifact) when ``session.quantization`` counts no
    layer that ran INT8: what every INT8 backend checks after reading its layers back."""
    from ..quant.layers import no_int8_reason

    reason = no_int8_reason(runtime, session.quantization["layers"])
    if reason:
        session.close()
        raise CaseSkipped(reason, artifact=artifact)
