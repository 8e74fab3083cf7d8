"""The backend interface stays sealed: ``prepare`` returns what it made (no mutated context),
``describe`` and ``gpu_memory`` are typed and reach the case process's replies in the plain
shapes the sweep reads, profilers come through ``Session.profile``, and each capability
decision (TF32, bf16, ORT profile events) is made in one place."""
import dataclasses
import re
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

from repnext_bench import backends
from repnext_bench.backends import (
    CaseSkipped,
    Description,
    GpuMemory,
    PrepareContext,
    Prepared,
    RuntimeProfile,
    Session,
    get_backend,
)
from repnext_bench.backends import ort as ort_backend
from repnext_bench.backends.ort import PROVIDERS, provider_list
from repnext_bench.core.cases import Case
from repnext_bench.export import Artifact, ExportCache, weights_hash
from repnext_bench.measure.timing import TimingPlan
from repnext_bench.models import convert, create_model
from repnext_bench.profiling import ort_events
from repnext_bench.profiling.ort_events import node_placement, parse_profile
from repnext_bench.profiling.ort_nodes import node_records
from repnext_bench.run.case_process import CaseWorker
from repnext_bench.run.lifecycle import Settings
from repnext_bench.system.capabilities import gpu_precision, tf32_allowed

PACKAGE = Path(backends.__file__).resolve().parent.parent
RESOLUTION = 64


def case_of(backend: str, device: str = "cpu", precision: str = "fp32") -> Case:
    return Case("M0", "fused", backend, device, precision, 1, RESOLUTION, 1, "latency")


@pytest.fixture(scope="module")
def model():
    return convert(create_model("M0", "train"), "fused").eval()


@pytest.fixture
def images():
    return np.random.default_rng(0).standard_normal((1, 3, RESOLUTION, RESOLUTION), dtype=np.float32)


@pytest.fixture
def context(model, tmp_path):
    cache = ExportCache(tmp_path / "cache")
    yield PrepareContext(cache=cache, opset=17, weights=weights_hash(model))
    cache.close()


# ---- prepare returns what it made ------------------------------------------------------------

def test_the_context_is_input_only():
    assert [f.name for f in dataclasses.fields(PrepareContext)] == ["cache", "opset", "weights", "profiling",
                                                                    "calibration"]
    context = PrepareContext(cache=None, opset=17, weights="w")
    with pytest.raises(dataclasses.FrozenInstanceError):
        context.artifact = {}


def test_prepare_returns_the_artifact_of_an_exporting_backend(model, images, context):
    prepared = get_backend("onnxruntime").prepare(model, case_of("onnxruntime"), images, context)
    try:
        assert isinstance(prepared, Prepared) and isinstance(prepared.session, Session)
        assert isinstance(prepared.artifact, Artifact) and prepared.artifact.path.is_file()
        assert prepared.artifact.path.suffix == ".onnx" and not prepared.artifact.cache_hit
    finally:
        prepared.session.close()
    again = get_backend("onnxruntime").prepare(model, case_of("onnxruntime"), images, context)
    again.session.close()
    assert again.artifact.cache_hit and again.artifact.key == prepared.artifact.key


def test_prepare_returns_no_artifact_for_torch(model, images, context):
    prepared = get_backend("torch").prepare(model, case_of("torch"), images, context)
    try:
        assert isinstance(prepared, Prepared) and prepared.artifact is None
    finally:
        prepared.session.close()


def test_a_skip_carries_the_artifact_made_before_it(model, images, context, monkeypatch):
    assert CaseSkipped("no").artifact is None and not CaseSkipped("no").exported and CaseSkipped("no").model is None
    monkeypatch.setattr(ort_backend, "provider_problem", lambda device, providers: "no such provider here")
    with pytest.raises(CaseSkipped, match="no such provider here") as caught:
        get_backend("onnxruntime").prepare(model, case_of("onnxruntime"), images, context)
    assert isinstance(caught.value.artifact, Artifact) and caught.value.artifact.path.is_file()
    assert not caught.value.exported  # the ONNX file is not a result of its own


def test_provider_fallback_is_one_check():
    assert ort_backend.provider_problem("cpu", ["CPUExecutionProvider"]) is None
    assert ort_backend.provider_problem("cuda", ["CUDAExecutionProvider", "CPUExecutionProvider"]) is None
    problem = ort_backend.provider_problem("tensorrt", ["CUDAExecutionProvider", "CPUExecutionProvider"])
    assert problem.startswith("ONNX Runtime could not create TensorrtExecutionProvider here and would run "
                              "everything on CUDAExecutionProvider, CPUExecutionProvider")


# ---- describe() and gpu_memory() are typed; the replies keep their plain shapes --------------

DESCRIBED_KEYS = {
    "torch": {"precision_effective", "device", "threads", "channels_last", "compiled", "versions"},
    "onnxruntime": {"precision_effective", "device", "threads", "providers", "graph_optimization_level", "versions"},
    "openvino": {"precision_effective", "device", "device_name", "threads", "streams", "performance_hint",
                 "versions"},
}


@pytest.mark.parametrize("backend", list(DESCRIBED_KEYS))
def test_describe_is_typed_and_its_dict_keeps_the_keys(backend, model, images, context):
    session = get_backend(backend).prepare(model, case_of(backend), images, context).session
    try:
        session.run()
        described = session.describe()
        assert isinstance(described, Description)
        assert described.precision_effective == "fp32" and described.device == "cpu" and described.threads == 1
        plain = described.to_dict()
        assert set(plain) == DESCRIBED_KEYS[backend]
        assert plain["precision_effective"] == "fp32" and plain["threads"] == 1 and plain["versions"][backend]
        assert session.gpu_memory() is None
    finally:
        session.close()


def test_description_dict_leaves_out_what_a_runtime_does_not_have():
    described = Description("fp16", "cuda", None, {"torch": "2.x"}, {"cuda_graphs": True})
    assert described.to_dict() == {"precision_effective": "fp16", "device": "cuda", "cuda_graphs": True,
                                   "versions": {"torch": "2.x"}}
    assert GpuMemory(10.0, 12.0).to_dict() == {"gpu_peak_allocated_mb": 10.0, "gpu_peak_reserved_mb": 12.0}
    assert GpuMemory(10.0, 12.0, 3.0, 4.0).to_dict() == {"gpu_peak_allocated_mb": 10.0, "gpu_peak_reserved_mb": 12.0,
                                                         "trt_activation_mb": 3.0, "trt_load_added_mb": 4.0}


class FakeGpuSession(Session):
    """A session as a GPU backend's looks from the outside."""

    def __init__(self, batch: int, num_classes: int) -> None:
        self.out = np.zeros((batch, num_classes), np.float32)
        self.closed = 0

    def run(self) -> None:
        pass

    def output(self) -> np.ndarray:
        return self.out

    def describe(self) -> Description:
        return Description("tf32", "cuda", None, {"torch": "x"}, {"device_name": "Fake GPU", "cuda_graphs": False})

    def gpu_memory(self) -> GpuMemory:
        return GpuMemory(100.0, 128.0, trt_activation_mb=8.0, trt_load_added_mb=40.0)

    def close(self) -> None:
        self.closed += 1


class FakeGpuBackend(backends.Backend):
    """Exports an artifact (or, with ``skip``, skips after exporting it) and runs on a fake GPU."""

    name, devices, module, distribution = "fakegpu", ("cuda",), "numpy", "numpy"

    def __init__(self, artifact: Artifact, skip: bool = False) -> None:
        self.artifact, self.skip, self.sessions = artifact, skip, []

    def prepare(self, model, case, images, context) -> Prepared:
        if self.skip:
            raise CaseSkipped("converted, cannot run here", artifact=self.artifact, exported=True)
        self.sessions.append(FakeGpuSession(images.shape[0], model.num_classes))
        return Prepared(self.sessions[-1], self.artifact)


@pytest.fixture
def fake_artifact(tmp_path):
    path = tmp_path / "model.engine"
    path.write_bytes(b"engine")
    return Artifact(path, 6, "key", False, 0.123456, {"precision": "auto", "typing": "weak"})


def worker_with(backend, monkeypatch, tmp_path) -> CaseWorker:
    monkeypatch.setattr(backends, "get_backend", lambda name: backend)
    settings = Settings(TimingPlan(warmup_s=0, warmup_iters=1, min_duration_s=0, min_iters=1),
                        cache_dir=str(tmp_path / "cache"))
    return CaseWorker(Case("M0", "fused", "fakegpu", "cuda", "auto", 2, RESOLUTION, 1, "latency"), settings)


LOAD_KEYS = {"block_n", "inference_s", "cold_start", "model", "artifact", "rss_before_load_mb", "rss_after_load_mb",
             "peak_reset", "backend", "precision_effective", "parity", "peak_rss_mb", "gpu_memory", "state_reused"}


def test_gpu_memory_reaches_the_reply_and_not_the_description(monkeypatch, tmp_path, fake_artifact):
    backend = FakeGpuBackend(fake_artifact)
    worker = worker_with(backend, monkeypatch, tmp_path)
    try:
        loaded = worker.load(block_s=0.001)
        finished = worker.finish()
    finally:
        worker.close()
    assert backend.sessions[0].closed == 1
    assert set(loaded) == LOAD_KEYS
    for reply in (loaded, finished):
        assert reply["gpu_memory"] == {"gpu_peak_allocated_mb": 100.0, "gpu_peak_reserved_mb": 128.0,
                                       "trt_activation_mb": 8.0, "trt_load_added_mb": 40.0}
        assert reply["backend"] == {"precision_effective": "tf32", "device": "cuda", "device_name": "Fake GPU",
                                    "cuda_graphs": False, "versions": {"torch": "x"}}
        assert reply["precision_effective"] == "tf32" and set(reply["parity"]) == {"rel_l2", "max_abs", "top1_agree"}
    assert set(finished) == {"backend", "precision_effective", "parity", "peak_rss_mb", "gpu_memory"}
    assert loaded["artifact"] == fake_artifact.describe()  # the plain dict, as before
    cold = loaded["cold_start"]
    assert set(cold) == {"export_s", "export_cache_hit", "load_s", "first_inference_ms"}
    assert cold["export_s"] == 0.1235 and cold["export_cache_hit"] is False
    assert loaded["model"]["form"] == "fused" and loaded["model"]["params"] > 0


def test_a_skip_reply_carries_the_artifact_and_the_model(monkeypatch, tmp_path, fake_artifact):
    worker = worker_with(FakeGpuBackend(fake_artifact, skip=True), monkeypatch, tmp_path)
    try:
        reply = worker.load(block_s=0.001)
    finally:
        worker.close()
    assert set(reply) == {"skipped", "exported", "artifact", "model"}
    assert reply["skipped"] == "converted, cannot run here" and reply["exported"] is True
    assert reply["artifact"] == fake_artifact.describe()
    assert reply["model"]["form"] == "fused" and reply["model"]["macs"] > 0


def test_a_prepare_that_returns_a_bare_session_is_refused(monkeypatch, tmp_path, fake_artifact):
    class Leaky(FakeGpuBackend):
        def prepare(self, model, case, images, context):
            return FakeGpuSession(images.shape[0], model.num_classes)

    worker = worker_with(Leaky(fake_artifact), monkeypatch, tmp_path)
    try:
        with pytest.raises(TypeError, match="not Prepared"):
            worker.load(block_s=0.001)
    finally:
        worker.close()


# ---- capability decisions, each made once ----------------------------------------------------

@pytest.mark.parametrize("precision,allowed", [("fp32", False), ("auto", True), ("fp16", True), ("bf16", True)])
def test_tf32_rule(precision, allowed):
    assert tf32_allowed(precision) is allowed
    (cuda, cuda_options), cpu = provider_list("cuda", precision, Path("/nonexistent"))
    assert (cuda, cpu) == (PROVIDERS["cuda"], PROVIDERS["cpu"])
    assert cuda_options == ({} if allowed else {"use_tf32": "0"})  # ONNX Runtime's CUDA provider follows it


@pytest.mark.parametrize("where,precision,tf32_cores,expected", [
    ("cuda", "fp32", True, "fp32"),       # torch, TensorRT, ORT's CUDA provider: fp32 means fp32
    ("cuda", "auto", True, "tf32"),       # the runtime's default on an Ampere GPU
    ("cuda", "auto", False, "fp32"),      # ... and on a GPU without TF32 cores
    ("cuda", "fp16", True, "fp16"),
    ("cuda", "bf16", True, "bf16"),
    ("tensorrt", "fp32", True, "tf32"),   # ORT's TensorRT provider has no switch for TF32
    ("tensorrt", "fp32", False, "fp32"),
    ("tensorrt", "fp16", True, "fp16"),
])
def test_effective_gpu_precision(where, precision, tf32_cores, expected):
    assert gpu_precision(precision, tf32_cores, tf32_switchable=where != "tensorrt") == expected


def _sources(*folders: str) -> dict[str, str]:
    found = {}
    for folder in folders:
        for path in sorted((PACKAGE / folder).rglob("*.py")):
            found[str(path.relative_to(PACKAGE))] = path.read_text()
    return found


def test_each_capability_is_decided_in_one_module():
    sources = _sources("backends", "profiling", "export", "measure", "system")
    sources.update({name: (PACKAGE / name).read_text() for name in ("run/lifecycle.py", "run/case_process.py")})

    def where(pattern: str) -> list[str]:
        return [name for name, text in sources.items() if re.search(pattern, text)]

    assert where(r"get_device_capability|has no bf16 support") == ["system/capabilities.py"]
    assert where(r"_kernel_time") == ["profiling/ort_events.py"]  # the one ORT event reader
    assert where(r"end_profiling\(\)") == ["backends/ort.py"]  # and the one session that ends ORT's profiler
    assert where(r"def tf32_allowed") == ["system/capabilities.py"]
    # every place that switches TF32 asks the one rule
    for name in where(r"allow_tf32 =|use_tf32|BuilderFlag\.TF32"):
        assert "tf32_allowed(" in sources[name], name


def test_profilers_use_the_interface_only():
    for name, text in _sources("profiling").items():
        leaks = r"\w+Backend\b|\.load\(str\(artifact|session\.(session|request|model|compiled)\b"
        assert not re.search(leaks, text), name


# ---- the ORT profile-event reader, shared by the placement and the profiler -------------------

EVENTS = [
    {"cat": "Session", "name": "model_run", "ts": 0, "dur": 50},
    {"cat": "Node", "name": "Conv_1_kernel_time", "ts": 10, "dur": 20,
     "args": {"provider": "CPUExecutionProvider", "op_name": "Conv", "output_type_shape": [{"float": [1, 8]}],
              "input_type_shape": [{"float": [1, 3]}, {"float": [8, 3]}]}},
    {"cat": "Session", "name": "model_run", "ts": 100, "dur": 40},
    {"cat": "Node", "name": "Conv_1_fence_before", "ts": 101, "dur": 0, "args": {}},
    {"cat": "Node", "name": "Conv_1_kernel_time", "ts": 110, "dur": 30,
     "args": {"provider": "CPUExecutionProvider", "op_name": "Conv", "output_type_shape": [{"float": [1, 8]}],
              "input_type_shape": [{"float": [1, 3]}, {"float": [8, 3]}]}},
    {"cat": "Node", "name": "Gelu_2_kernel_time", "ts": 130, "dur": 5,
     "args": {"provider": "CUDAExecutionProvider", "op_name": "Gelu", "output_type_shape": [{"float16": [1, 8]}]}},
    {"cat": "Session", "name": "model_run", "ts": 200, "dur": 30},
    {"cat": "Node", "name": "Conv_1_kernel_time", "ts": 210, "dur": 25,
     "args": {"provider": "CPUExecutionProvider", "op_name": "Conv", "output_type_shape": [{"float": [1, 8]}],
              "input_type_shape": [{"float": [1, 3]}, {"float": [8, 3]}]}},
]


def test_parse_profile_reads_kernels_and_runs():
    parsed = parse_profile(EVENTS)
    assert [(k.node, k.provider, k.start_us, k.duration_us) for k in parsed.kernels] == [
        ("Conv_1", "CPUExecutionProvider", 10, 20), ("Conv_1", "CPUExecutionProvider", 110, 30),
        ("Gelu_2", "CUDAExecutionProvider", 130, 5), ("Conv_1", "CPUExecutionProvider", 210, 25)]
    assert parsed.runs == [(0, 50), (100, 40), (200, 30)]


def test_both_readers_of_ort_events_go_through_the_one_parser(monkeypatch):
    calls = []
    original = parse_profile

    def spy(events):
        calls.append(len(events))
        return original(events)

    monkeypatch.setattr(ort_events, "parse_profile", spy)
    assert node_placement(EVENTS) == {"CPUExecutionProvider": ["Conv_1"], "CUDAExecutionProvider": ["Gelu_2"]}
    assert calls == [len(EVENTS)]
    nodes, runtime_ms = node_records(original(EVENTS), iterations=2)  # the last two inferences only
    assert runtime_ms == [0.04, 0.03]
    assert nodes == [
        {"name": "Conv_1", "op_type": "Conv", "kernel": "CPUExecutionProvider", "precision": "fp32",
         "shapes": "[[1, 3], [8, 3]]", "time_ms": pytest.approx(0.055), "calls": 2},
        {"name": "Gelu_2", "op_type": "Gelu", "kernel": "CUDAExecutionProvider", "precision": "fp16",
         "shapes": "[]", "time_ms": pytest.approx(0.005), "calls": 1}]


def test_the_ort_profiler_comes_through_the_session(model, images, context, monkeypatch):
    calls = []
    original = parse_profile
    monkeypatch.setattr(ort_events, "parse_profile", lambda events: calls.append(1) or original(events))
    session = get_backend("onnxruntime").prepare(model, case_of("onnxruntime"), images,
                                                 dataclasses.replace(context, profiling=True)).session
    folder = Path(session.folder.name)
    try:
        profile = session.profile(3)
    finally:
        session.close()
    assert calls == [1] and not folder.exists()  # the profile and the optimized graph went with the session
    assert isinstance(profile, RuntimeProfile) and len(profile.wall_ms) == len(profile.runtime_ms) == 3
    assert len(profile.nodes) > 20 and all(node["calls"] == 3 for node in profile.nodes)
    assert profile.graph and {node["name"] for node in profile.nodes} <= set(profile.graph)


def test_a_session_without_a_profiler_says_so(model, images, context):
    session = get_backend("onnxruntime").prepare(model, case_of("onnxruntime"), images, context).session
    try:
        with pytest.raises(RuntimeError, match="not prepared for profiling"):
            session.profile(1)
    finally:
        session.close()
    with pytest.raises(NotImplementedError, match="FakeGpuSession has no profiler"):
        FakeGpuSession(1, 10).profile(1)


# ---- lazy imports ----------------------------------------------------------------------------

def test_backend_modules_import_no_runtime():
    modules = ["repnext_bench.backends", "repnext_bench.system.capabilities",
               *(f"repnext_bench.backends.{name}" for name in ("torch_cpu", "ort", "openvino_cpu", "torch_cuda",
                                                               "tensorrt_gpu")),
               "repnext_bench.run.profile", "repnext_bench.profiling.ort_nodes", "repnext_bench.profiling.ov_layers",
               "repnext_bench.profiling.torch_ops", "repnext_bench.run.lifecycle", "repnext_bench.run.case_process"]
    code = (f"import importlib, sys\nfor m in {modules!r}: importlib.import_module(m)\n"
            "print([m for m in ('torch', 'onnxruntime', 'openvino', 'tensorrt', 'coremltools') if m in sys.modules])")
    result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120)
    assert result.returncode == 0, result.stderr
    assert result.stdout.strip() == "[]"


def test_a_case_of_n_streams_gets_n_sessions_and_the_first_is_current(monkeypatch, tmp_path, fake_artifact):
    """Streams of a backend without streams of its own: a session each, prepared with its share
    of the threads; the first is made current again in the preparing thread (a GPU session made
    its own CUDA stream current as each was created), and every session is closed."""
    from dataclasses import replace

    from repnext_bench.run.lifecycle import open_case

    made_current, seen_threads = [], []

    class Tracking(FakeGpuBackend):
        def prepare(self, model, case, images, context) -> Prepared:
            seen_threads.append(case.threads)
            prepared = super().prepare(model, case, images, context)
            prepared.session.make_current = lambda session=prepared.session: made_current.append(session)
            return prepared

    backend = Tracking(fake_artifact)
    monkeypatch.setattr(backends, "get_backend", lambda name: backend)
    case = Case("M0", "fused", "fakegpu", "cuda", "auto", 1, RESOLUTION, 4, "throughput", streams=2)
    settings = Settings(TimingPlan(warmup_s=0, warmup_iters=1), cache_dir=str(tmp_path / "cache"))
    with open_case(case, settings) as loaded:
        assert len(loaded.runners()) == 2 and len(backend.sessions) == 2
        assert made_current == [backend.sessions[0]]
    assert seen_threads == [2, 2] and all(s.closed == 1 for s in backend.sessions)
    with open_case(replace(case, streams=1), settings) as loaded:
        assert len(loaded.runners()) == 1 and seen_threads[-1] == 4
