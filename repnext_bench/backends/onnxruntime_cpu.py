"""ONNX Runtime with the CPU execution provider, inputs and outputs bound once (I/O binding)."""
from __future__ import annotations

import numpy as np

from ..cases import Case
from ..export import INPUT_NAME, OUTPUT_NAME, export_onnx
from . import Backend, PrepareContext, Session

OPTIMIZATION_LEVEL = "ORT_ENABLE_ALL"
_ELEMENT_TYPES = {"tensor(float)": "fp32", "tensor(float16)": "fp16", "tensor(bfloat16)": "bf16"}


class OnnxRuntimeSession(Session):
    def __init__(self, session, images: np.ndarray, num_classes: int) -> None:
        import onnxruntime as ort

        self.session = session
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
        return {
            "precision_effective": _ELEMENT_TYPES.get(element, element),
            "device": "cpu",
            "threads": options.intra_op_num_threads,
            "providers": self.session.get_providers(),
            "graph_optimization_level": OPTIMIZATION_LEVEL,
            "versions": {"onnxruntime": self._version},
        }


class OnnxRuntimeBackend(Backend):
    name = "onnxruntime"
    module = "onnxruntime"
    distribution = "onnxruntime"
    precisions = ("fp32", "auto")

    def prepare(self, model, case: Case, images: np.ndarray, context: PrepareContext) -> Session:
        artifact = export_onnx(model, case.resolution, context.opset, context.cache, context.weights)
        context.artifact = artifact.describe()
        return self.load(str(artifact.path), case.threads, images, model.num_classes)

    @staticmethod
    def load(path: str, threads: int, images: np.ndarray, num_classes: int,
             profile_prefix: str | None = None, optimized_path: str | None = None) -> OnnxRuntimeSession:
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
        session = ort.InferenceSession(path, options, providers=["CPUExecutionProvider"])
        return OnnxRuntimeSession(session, images, num_classes)
