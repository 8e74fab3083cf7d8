"""OpenVINO on the CPU: LATENCY hint with one synchronous request, or THROUGHPUT hint with an
asynchronous request queue. The precision it really used is read back from the compiled model."""
from __future__ import annotations

import time

import numpy as np

from ..core.cases import Case
from ..export import export_onnx
from ..measure.timing import TimingPlan
from . import Backend, CaseSkipped, Description, PrepareContext, Prepared, RuntimeProfile, Session

_HINTS = {"fp32": "f32", "bf16": "bf16", "fp16": "f16"}
_NAMES = {"f32": "fp32", "bf16": "bf16", "f16": "fp16"}
_CAPABILITY = {"bf16": "BF16", "fp16": "FP16", "int8": "INT8"}


def cpu_capabilities() -> list[str]:
    """What OpenVINO's CPU plugin says this CPU can run (``OPTIMIZATION_CAPABILITIES``): BF16
    needs AVX512-BF16 or AMX, FP16 an Arm CPU with fp16 arithmetic or AVX512-FP16/AMX-FP16."""
    import openvino as ov

    return list(ov.Core().get_property("CPU", "OPTIMIZATION_CAPABILITIES"))


def precision_problem(precision: str, capabilities: list[str]) -> str | None:
    """Why OpenVINO cannot run ``precision`` on a CPU with ``capabilities``, or None."""
    if precision in _CAPABILITY and _CAPABILITY[precision] not in capabilities:
        return f"this CPU has no {precision} support in OpenVINO (capabilities: {', '.join(capabilities)})"
    return None


class OpenVinoSession(Session):
    quantization: dict | None = None  # INT8: how it was quantized and what ran INT8 (read_layers)

    def __init__(self, compiled, images: np.ndarray, hint: str, profiling: bool = False) -> None:
        import openvino as ov

        self._ov = ov
        self.compiled = compiled
        self.hint = hint
        self.profiling = profiling  # compiled with PERF_COUNT: the per-layer counters are kept
        self.images = np.ascontiguousarray(images, dtype=np.float32)
        self.request = compiled.create_infer_request()
        self.request.set_input_tensor(ov.Tensor(self.images, shared_memory=True))
        self._infer = self.request.infer
        self._requests: list = []  # one per stream (runners), made on first use

    def run(self) -> None:
        self._infer(share_outputs=True)

    def output(self) -> np.ndarray:
        return np.asarray(self.request.get_output_tensor().data, dtype=np.float32)

    def infer(self, images: np.ndarray) -> np.ndarray:
        return np.asarray(self.compiled(images)[0], dtype=np.float32)

    def read_layers(self, artifact) -> None:
        """How the INT8 model was quantized, and its layers of each kind in the compiled
        (runtime) model, by the precision each one runs in."""
        from ..quant.layers import count_kinds, openvino_layers

        info = artifact.info
        self.quantization = {"method": info.get("quantization"), "calibration": info.get("calibration"),
                             "layers": count_kinds(openvino_layers(self.compiled))}

    def describe(self) -> Description:
        get = self.compiled.get_property
        precision = get("INFERENCE_PRECISION_HINT").get_type_name()
        facts = {"device_name": self._ov.Core().get_property("CPU", "FULL_DEVICE_NAME"),
                 "streams": int(get("NUM_STREAMS")), "performance_hint": self.hint}
        if self.quantization:  # the hint is the precision of what stays float
            facts["float_precision"] = _NAMES.get(precision, precision)
        return Description("int8" if self.quantization else _NAMES.get(precision, precision), "cpu",
                           int(get("INFERENCE_NUM_THREADS")), {"openvino": self._ov.get_version()}, facts,
                           self.quantization)

    def profile(self, iterations: int) -> RuntimeProfile:
        """OpenVINO's per-layer performance counters over ``iterations`` inferences."""
        from ..profiling.ov_layers import profile_compiled

        if not self.profiling:
            raise RuntimeError("this session was not prepared for profiling (PrepareContext.profiling)")
        return profile_compiled(self.compiled, self.request, self.run, iterations)

    def runners(self, streams: int) -> list:
        """An inference request per stream, each with its own input and output; the compiled
        model runs as many at once as it has streams (NUM_STREAMS)."""
        if streams == 1:
            return [self.run]
        if len(self._requests) != streams:  # made once: a new request is cold
            self._requests = [self.compiled.create_infer_request() for _ in range(streams)]
            for request in self._requests:
                request.set_input_tensor(self._ov.Tensor(self.images, shared_memory=True))
        return [lambda request=request: request.infer(share_outputs=True) for request in self._requests]

    def throughput(self, plan: TimingPlan) -> tuple[int, float, dict]:
        """An asynchronous queue of the compiled model's optimal number of requests, kept full."""
        requests = int(self.compiled.get_property("OPTIMAL_NUMBER_OF_INFER_REQUESTS"))
        queue = self._ov.AsyncInferQueue(self.compiled, requests)
        for request in queue:
            request.set_input_tensor(self._ov.Tensor(self.images, shared_memory=True))

        def keep_full(min_s: float, min_count: int) -> tuple[int, float]:
            start, started = time.perf_counter(), 0
            while started < min_count or time.perf_counter() - start < min_s or started % requests:
                queue.start_async()
                started += 1
            queue.wait_all()
            return started, time.perf_counter() - start

        keep_full(plan.warmup_s, max(plan.warmup_iters, requests))
        completed, wall = keep_full(plan.min_duration_s, max(plan.min_iters, requests))
        return completed, wall, {"streams": int(self.compiled.get_property("NUM_STREAMS")), "requests": requests}


class OpenVinoBackend(Backend):
    name = "openvino"
    module = "openvino"
    distribution = "openvino"
    precisions = ("fp32", "bf16", "fp16", "int8", "auto")
    native_streams = True  # NUM_STREAMS: one compiled model runs that many requests at once

    def unsupported(self, case: Case) -> str | None:
        if case.precision == "int8":
            from ..quant.nncf_ov import nncf_missing

            if nncf_missing():
                return nncf_missing()
        return super().unsupported(case)

    def prepare(self, model, case: Case, images: np.ndarray, context: PrepareContext) -> Prepared:
        """Compile for the case (with the per-layer counters on, PERF_COUNT, for profiling)."""
        import openvino as ov

        core = ov.Core()
        problem = precision_problem(case.precision, cpu_capabilities())
        if problem:
            raise CaseSkipped(problem)
        if case.precision == "int8":  # NNCF's quantized IR
            from ..quant.nncf_ov import quantized_ir

            artifact = quantized_ir(model, case.resolution, context.opset, context.cache, context.weights,
                                    context.calibration_set())
            network = core.read_model(str(artifact.path / "model.xml"))
            network.reshape({network.inputs[0]: list(images.shape)})  # quantized at batch 1
        else:
            artifact = export_onnx(model, case.resolution, context.opset, context.cache, context.weights)
            network = core.read_model(str(artifact.path))
            network.reshape({network.inputs[0]: list(images.shape)})  # static shape, as benchmark_app -shape
        config = compile_config(case)
        profiling = {"PERF_COUNT": True} if context.profiling else {}
        compiled = core.compile_model(network, "CPU", {**config, **profiling})
        session = OpenVinoSession(compiled, images, config["PERFORMANCE_HINT"], context.profiling)
        if case.precision == "int8":
            from . import require_int8

            session.read_layers(artifact)
            require_int8("OpenVINO", session, artifact)
        return Prepared(session, artifact)


def compile_config(case: Case) -> dict[str, str]:
    """The CPU properties a case compiles with (also what benchmark_app is given to compare)."""
    config = {"PERFORMANCE_HINT": "LATENCY" if case.mode == "latency" else "THROUGHPUT",
              "INFERENCE_NUM_THREADS": str(case.threads)}
    if case.mode != "latency":  # the case's streams, in place of the ones the hint would choose
        config["NUM_STREAMS"] = str(case.streams)
    if case.precision in _HINTS:
        config["INFERENCE_PRECISION_HINT"] = _HINTS[case.precision]
    elif case.precision == "int8":  # what is not quantized runs in fp32, as in the fp32 case it is set against
        config["INFERENCE_PRECISION_HINT"] = "f32"
    return config
