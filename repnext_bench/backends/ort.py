"""ONNX Runtime, inputs and outputs bound once (I/O binding), on the CPU execution provider or,
with onnxruntime-gpu, on the CUDA or TensorRT execution provider (device ``cuda`` or
``tensorrt``), each with the CPU provider behind it for nodes the GPU provider does not take.

On a GPU device the first inference runs with ONNX Runtime's profiler on, which names the
provider that ran each node; the profiler is then ended (it records nothing after that), and
the placement and any CPU fallback go into the result instead of being hidden.
"""
from __future__ import annotations

import json
import os
import tempfile
from pathlib import Path

import numpy as np

from ..cases import Case
from ..export import INPUT_NAME, OUTPUT_NAME, export_onnx
from . import Availability, Backend, CaseSkipped, PrepareContext, Session

OPTIMIZATION_LEVEL = "ORT_ENABLE_ALL"
_ELEMENT_TYPES = {"tensor(float)": "fp32", "tensor(float16)": "fp16", "tensor(bfloat16)": "bf16"}
# device -> the provider it asks for (the CPU provider always comes last)
PROVIDERS = {"cpu": "CPUExecutionProvider", "cuda": "CUDAExecutionProvider", "tensorrt": "TensorrtExecutionProvider"}
# both wheels install the module onnxruntime: remove both, then install the GPU one alone
GPU_INSTALL = "pip uninstall -y onnxruntime onnxruntime-gpu && pip install onnxruntime-gpu"
_SUFFIX = "_kernel_time"


def node_placement(events: list[dict]) -> dict[str, list[str]]:
    """provider -> names of the nodes it ran, from an ONNX Runtime profile (each node once)."""
    placement: dict[str, list[str]] = {}
    seen = set()
    for event in events:
        name = event.get("name", "")
        if event.get("cat") == "Node" and name.endswith(_SUFFIX) and name not in seen:
            seen.add(name)
            placement.setdefault(event.get("args", {}).get("provider", "?"), []).append(name[: -len(_SUFFIX)])
    return placement


def _tf32_gpu() -> bool:
    """Whether GPU 0 has TF32 tensor cores, asked through torch when it is a CUDA build."""
    from .torch_cuda import ampere_or_newer, cuda_problem

    if cuda_problem():
        return False
    import torch

    return ampere_or_newer(torch)


def provider_list(device: str, precision: str, cache_root: Path) -> list:
    """What the session is created with: the device's provider (with its options), then the
    CUDA provider behind TensorRT, then the CPU provider."""
    providers: list = []
    if device == "tensorrt":
        engines = cache_root / "ort-tensorrt"
        engines.mkdir(parents=True, exist_ok=True)
        providers.append((PROVIDERS["tensorrt"], {
            "trt_fp16_enable": precision == "fp16", "trt_engine_cache_enable": True,
            "trt_engine_cache_path": str(engines), "trt_timing_cache_enable": True,
            "trt_timing_cache_path": str(engines)}))
    if device in ("cuda", "tensorrt"):  # fp32 means fp32: the CUDA provider allows TF32 unless told
        providers.append((PROVIDERS["cuda"], {"use_tf32": "0"} if precision == "fp32" else {}))
    return [*providers, PROVIDERS["cpu"]]


def record_placement(session: OnnxRuntimeSession) -> None:
    """One inference on a session created with the profiler on (it also builds what a provider
    builds lazily, such as TensorRT engines); then the profile's node placement is kept and the
    profiler ended, so that it records nothing more."""
    session.run()
    profile = session.session.end_profiling()
    session.placement = node_placement(json.loads(Path(profile).read_text()))
    os.remove(profile)


class OnnxRuntimeSession(Session):
    def __init__(self, session, images: np.ndarray, num_classes: int, device: str = "cpu",
                 precision: str = "fp32") -> None:
        import onnxruntime as ort

        self.session = session
        self.device = device
        self.precision = precision
        self.placement: dict[str, list[str]] | None = None
        self._version = ort.__version__
        self.images = np.ascontiguousarray(images, dtype=np.float32)
        self._out = np.empty((images.shape[0], num_classes), dtype=np.float32)
        self.binding = session.io_binding()
        self.binding.bind_cpu_input(INPUT_NAME, self.images)
        self.binding.bind_ortvalue_output(OUTPUT_NAME, ort.OrtValue.ortvalue_from_numpy(self._out))
        self._run = session.run_with_iobinding

    def run(self) -> None:
        self._run(self.binding)

    def output(self) -> np.ndarray:
        return self._out

    def describe(self) -> dict:
        options = self.session.get_session_options()
        element = self.session.get_outputs()[0].type  # e.g. "tensor(float)": what the graph computes in
        description = {
            "precision_effective": _ELEMENT_TYPES.get(element, element),
            "device": self.device,
            "threads": options.intra_op_num_threads,
            "providers": self.session.get_providers(),
            "graph_optimization_level": OPTIMIZATION_LEVEL,
            "versions": {"onnxruntime": self._version},
        }
        if self.device == "tensorrt" and self.precision == "fp16":
            description["precision_effective"] = "fp16"
            description["precision_note"] = "fp16 enabled: TensorRT picks fp16 or fp32 kernels layer by layer"
        elif self.device != "cpu" and (self.device == "tensorrt" or self.precision == "auto") and _tf32_gpu():
            # TensorRT (which has no switch for it here) and the CUDA provider's default use TF32
            description["precision_effective"] = "tf32"
        if self.placement is not None:
            description["placement"] = {provider: len(nodes) for provider, nodes in self.placement.items()}
            description["cpu_fallback_nodes"] = self.placement.get(PROVIDERS["cpu"], [])
        return description


class OnnxRuntimeBackend(Backend):
    name = "onnxruntime"
    devices = tuple(PROVIDERS)
    module = "onnxruntime"
    distribution = "onnxruntime"
    precisions = ("fp32", "auto")

    def check_devices(self, found: Availability) -> Availability:
        import onnxruntime as ort

        present = ort.get_available_providers()
        unusable = {device: f"this onnxruntime ({ort.__version__}) has no {provider}"
                    for device, provider in PROVIDERS.items() if provider not in present}
        return Availability(self.name, True, ort.__version__, [d for d in self.devices if d not in unusable],
                            unusable=unusable, install=GPU_INSTALL if unusable else None)

    def precisions_for(self, case: Case) -> tuple[str, ...]:
        return ("fp32", "fp16", "auto") if case.device == "tensorrt" else self.precisions

    def prepare(self, model, case: Case, images: np.ndarray, context: PrepareContext) -> Session:
        artifact = export_onnx(model, case.resolution, context.opset, context.cache, context.weights)
        context.artifact = artifact.describe()
        if case.device == "cpu":
            return self.load(str(artifact.path), case.threads, images, model.num_classes)
        providers = provider_list(case.device, case.precision, context.cache.root)
        with tempfile.TemporaryDirectory(prefix="repnext-ort-placement-") as folder:
            session = self.load(str(artifact.path), case.threads, images, model.num_classes,
                                profile_prefix=str(Path(folder) / "ort"), providers=providers,
                                device=case.device, precision=case.precision)
            record_placement(session)
        wanted = PROVIDERS[case.device]
        if wanted not in session.session.get_providers():
            raise CaseSkipped(f"ONNX Runtime could not create {wanted} here and would run everything on "
                              f"{', '.join(session.session.get_providers())} (see its warning above)")
        return session

    @staticmethod
    def load(path: str, threads: int, images: np.ndarray, num_classes: int,
             profile_prefix: str | None = None, optimized_path: str | None = None,
             providers: list | None = None, device: str = "cpu", precision: str = "fp32") -> OnnxRuntimeSession:
        """A session on an ONNX file, set up as every case is (optionally with ORT's profiler on,
        and saving the graph as optimized)."""
        import onnxruntime as ort

        options = ort.SessionOptions()
        options.intra_op_num_threads = threads
        options.inter_op_num_threads = 1
        options.execution_mode = ort.ExecutionMode.ORT_SEQUENTIAL
        options.graph_optimization_level = getattr(ort.GraphOptimizationLevel, OPTIMIZATION_LEVEL)
        if profile_prefix:
            options.enable_profiling = True
            options.profile_file_prefix = profile_prefix
        if optimized_path:
            options.optimized_model_filepath = optimized_path
            options.log_severity_level = 3  # not the warning that the saved graph is hardware-specific
        session = ort.InferenceSession(path, options, providers=providers or [PROVIDERS["cpu"]])
        return OnnxRuntimeSession(session, images, num_classes, device, precision)
