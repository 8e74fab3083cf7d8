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

from ..core.cases import Case
from ..export import INPUT_NAME, OUTPUT_NAME, export_onnx
from ..measure.timing import timed_runs
from ..profiling import ort_events
from ..system.capabilities import gpu_precision, has_tf32_cores, tf32_allowed
from . import Availability, Backend, CaseSkipped, Description, PrepareContext, Prepared, RuntimeProfile, Session

OPTIMIZATION_LEVEL = "ORT_ENABLE_ALL"
_ELEMENT_TYPES = {"tensor(float)": "fp32", "tensor(float16)": "fp16", "tensor(bfloat16)": "bf16"}
# device -> the provider it asks for (the CPU provider always comes last)
PROVIDERS = {"cpu": "CPUExecutionProvider", "cuda": "CUDAExecutionProvider", "tensorrt": "TensorrtExecutionProvider"}
# both wheels install the module onnxruntime: remove both, then install the GPU one alone
GPU_INSTALL = "pip uninstall -y onnxruntime onnxruntime-gpu && pip install onnxruntime-gpu"


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
    if device in ("cuda", "tensorrt"):  # the CUDA provider uses TF32 unless told not to
        providers.append((PROVIDERS["cuda"], {} if tf32_allowed(precision) else {"use_tf32": "0"}))
    return [*providers, PROVIDERS["cpu"]]


def provider_problem(device: str, providers: list[str]) -> str | None:
    """Why a session created for ``device`` would not run there: ONNX Runtime falls back to the
    providers behind the one asked for (in the end the CPU) when it cannot create it."""
    wanted = PROVIDERS[device]
    if wanted in providers:
        return None
    return (f"ONNX Runtime could not create {wanted} here and would run everything on "
            f"{', '.join(providers)} (see its warning above)")


class OnnxRuntimeSession(Session):
    quantization: dict | None = None  # INT8: how it was quantized and what ran INT8 (read_layers)

    def __init__(self, session, images: np.ndarray, num_classes: int, device: str = "cpu",
                 precision: str = "fp32", profiling: bool = False, optimized_path: str | None = None) -> None:
        import onnxruntime as ort

        self.session = session  # the onnxruntime.InferenceSession
        self.device = device
        self.precision = precision
        self.placement: dict[str, list[str]] | None = None
        self.optimized_path = optimized_path  # where the graph as optimized was saved, if asked
        self.profiling = profiling  # ORT's profiler is recording
        self.folder: tempfile.TemporaryDirectory | None = None  # the profile's and graph's, removed at close
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

    def infer(self, images: np.ndarray) -> np.ndarray:
        return self.session.run([OUTPUT_NAME], {INPUT_NAME: images})[0]

    def read_layers(self, artifact) -> None:
        """How the INT8 model was quantized, and its layers of each kind in the graph as ONNX
        Runtime optimized it (where DQ -> op -> Q became integer kernels such as QLinearConv)."""
        from ..quant.layers import count_kinds, onnx_layers

        self.quantization = {"method": artifact.info.get("quantization"), "scheme": artifact.info.get("scheme"),
                             "calibration": artifact.info.get("calibration"),
                             "layers": count_kinds(onnx_layers(self.optimized_path))}

    def end_profiling(self) -> list[dict]:
        """Stop ORT's profiler (it records nothing after this) and return its events; the
        profile file is removed."""
        if not self.profiling:
            raise RuntimeError("this session was created without ONNX Runtime's profiler")
        self.profiling = False
        path = self.session.end_profiling()
        events = json.loads(Path(path).read_text())
        os.remove(path)
        return events

    def record_placement(self) -> None:
        """One inference with the profiler on (it also builds what a provider builds lazily,
        such as TensorRT engines); then the profile's node placement is kept and the profiler
        ended, so that it records nothing more."""
        self.run()
        self.placement = ort_events.node_placement(self.end_profiling())

    def profile(self, iterations: int) -> RuntimeProfile:
        """Per-node kernel time, op type and provider from ORT's profiler over ``iterations``
        inferences; the graph as optimized places the nodes ORT adds (layout reorders)."""
        from ..profiling.ort_nodes import graph_of, node_records

        if not self.profiling or not self.optimized_path:
            raise RuntimeError("this session was not prepared for profiling (PrepareContext.profiling)")
        wall_ms = timed_runs(self.run, iterations)
        nodes, runtime_ms = node_records(ort_events.parse_profile(self.end_profiling()), iterations)
        return RuntimeProfile(nodes, wall_ms, runtime_ms, "ONNX Runtime's own model_run time per inference",
                              graph_of(Path(self.optimized_path)))

    def describe(self) -> Description:
        options = self.session.get_session_options()
        element = self.session.get_outputs()[0].type  # e.g. "tensor(float)": what the graph computes in
        precision = "int8" if self.quantization else _ELEMENT_TYPES.get(element, element)
        facts: dict = {"providers": self.session.get_providers(), "graph_optimization_level": OPTIMIZATION_LEVEL}
        if self.device != "cpu":  # TensorRT has no switch for TF32 here; the CUDA provider has
            on_gpu = gpu_precision(self.precision, has_tf32_cores(), tf32_switchable=self.device != "tensorrt")
            if on_gpu != "fp32":
                precision = on_gpu
            if self.device == "tensorrt" and self.precision == "fp16":
                facts["precision_note"] = "fp16 enabled: TensorRT picks fp16 or fp32 kernels layer by layer"
        if self.placement is not None:
            facts["placement"] = {provider: len(nodes) for provider, nodes in self.placement.items()}
            facts["cpu_fallback_nodes"] = self.placement.get(PROVIDERS["cpu"], [])
        return Description(precision, self.device, options.intra_op_num_threads, {"onnxruntime": self._version},
                           facts, self.quantization)

    def close(self) -> None:  # a second call does nothing
        folder, self.folder = self.folder, None
        if folder is not None:
            folder.cleanup()


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
        if case.device == "tensorrt":
            return ("fp32", "fp16", "auto")
        return ("fp32", "int8", "auto") if case.device == "cpu" else self.precisions

    @staticmethod
    def artifact(model, case: Case, context: PrepareContext):
        """The fp32 ONNX export, or for INT8 its static QDQ quantization (quant.onnx_qdq)."""
        if case.precision == "int8":
            from ..quant.onnx_qdq import quantized_onnx

            return quantized_onnx(model, case.resolution, context.opset, context.cache, context.weights,
                                  context.calibration_set())
        return export_onnx(model, case.resolution, context.opset, context.cache, context.weights)

    def prepare(self, model, case: Case, images: np.ndarray, context: PrepareContext) -> Prepared:
        """On a GPU device the first inference runs with the profiler on, to record the node
        placement. With ``context.profiling`` the profiler stays on for :meth:`Session.profile`
        instead, and the graph as optimized is saved beside its profile."""
        artifact = self.artifact(model, case, context)
        settings = {"providers": provider_list(case.device, case.precision, context.cache.root),
                    "device": case.device, "precision": case.precision}
        args = (str(artifact.path), case.threads, images, model.num_classes)
        if context.profiling:
            folder = tempfile.TemporaryDirectory(prefix="repnext-ort-profile-")
            try:
                session = self.load(*args, profile_prefix=str(Path(folder.name) / "ort"),
                                    optimized_path=str(Path(folder.name) / "optimized.onnx"), **settings)
            except BaseException:
                folder.cleanup()
                raise
            session.folder = folder
        elif case.precision == "int8":  # the graph as optimized says which nodes run INT8
            with tempfile.TemporaryDirectory(prefix="repnext-ort-int8-") as folder:
                session = self.load(*args, optimized_path=str(Path(folder) / "optimized.onnx"), **settings)
                session.read_layers(artifact)
        elif case.device == "cpu":
            session = self.load(*args, **settings)
        else:
            with tempfile.TemporaryDirectory(prefix="repnext-ort-placement-") as folder:
                session = self.load(*args, profile_prefix=str(Path(folder) / "ort"), **settings)
                session.record_placement()
        if context.profiling and case.precision == "int8":
            session.read_layers(artifact)
        if session.quantization:
            from . import require_int8

            require_int8("ONNX Runtime", session, artifact)
        problem = provider_problem(case.device, session.session.get_providers())
        if problem:
            session.close()
            raise CaseSkipped(problem, artifact=artifact)
        return Prepared(session, artifact)

    @staticmethod
    def load(path: str, threads: int, images: np.ndarray, num_classes: int, *,
             profile_prefix: str | None = None, optimized_path: str | None = None,
             providers: list | None = None, device: str = "cpu", precision: str = "fp32") -> OnnxRuntimeSession:
        """A session on an ONNX file, set up as every case is (optionally with ORT's profiler on,
        and saving the graph as optimized): what :meth:`prepare` creates, for a file of one's own."""
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
        return OnnxRuntimeSession(session, images, num_classes, device, precision, bool(profile_prefix),
                                  optimized_path)
