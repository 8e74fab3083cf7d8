"""The GPU backends (cuda, tensorrt, onnxruntime on cuda/tensorrt). Tests marked ``gpu`` run
on a machine with a CUDA device and are skipped elsewhere; the rest check, on any machine,
the parts that need no GPU: TensorRT's build plan per release, ONNX Runtime's node placement,
the timing hook that reads GPU events outside the timed region, and how results show them."""
import importlib.util
import time
from types import SimpleNamespace

import numpy as np
import pytest

from repnext_bench.backends import availability
from repnext_bench.backends.ort import OnnxRuntimeBackend
from repnext_bench.backends.tensorrt_engine import build_plan
from repnext_bench.cli import main
from repnext_bench.export import ExportCache, export_onnx
from repnext_bench.measure.timing import TimingPlan, measure
from repnext_bench.models import convert, create_model
from repnext_bench.profiling.ort_events import node_placement
from repnext_bench.report.results import problem_lines, results_table
from repnext_bench.report.schema import read_report


def fake_tensorrt(version: str, fp16_flag: bool = True, strongly_typed: bool = True):
    """The few attributes build_plan reads, as a TensorRT release of ``version`` has them."""
    creation = SimpleNamespace(EXPLICIT_BATCH=0, **({"STRONGLY_TYPED": 1} if strongly_typed else {}))
    flags = SimpleNamespace(**({"FP16": "FP16", "BF16": "BF16"} if fp16_flag else {}))
    return SimpleNamespace(__version__=version, NetworkDefinitionCreationFlag=creation, BuilderFlag=flags)


@pytest.mark.parametrize("version,fp16_flag,strongly,expected", [
    ("8.6.1", True, False, (1, ["FP16"], "fp32", "weak")),     # explicit batch flag, builder flag
    ("10.5.0", True, True, (0, ["FP16"], "fp32", "weak")),     # always explicit batch; flags still current
    ("10.12.0", True, True, (2, [], "fp16", "strong")),        # flags deprecated: a typed fp16 ONNX
    ("11.0.0", False, True, (2, [], "fp16", "strong")),        # flags gone
])
def test_tensorrt_build_plan_follows_the_release(version, fp16_flag, strongly, expected):
    assert build_plan(fake_tensorrt(version, fp16_flag, strongly), "fp16") == expected
    flags, builder_flags, onnx_dtype, _ = build_plan(fake_tensorrt(version, fp16_flag, strongly), "fp32")
    assert builder_flags == [] and onnx_dtype == "fp32" and flags == (1 if version.startswith("8") else 0)


def test_bf16_keeps_its_builder_flag_and_is_refused_where_there_is_none():
    assert build_plan(fake_tensorrt("10.12.0"), "bf16") == (0, ["BF16"], "fp32", "weak")
    with pytest.raises(ValueError, match="TensorRT 11.0.0 builds bf16 only from a bf16-typed ONNX"):
        build_plan(fake_tensorrt("11.0.0", fp16_flag=False), "bf16")
    with pytest.raises(ValueError, match="TensorRT 8.5.3 has no fp16"):
        build_plan(fake_tensorrt("8.5.3", fp16_flag=False, strongly_typed=False), "fp16")
    assert build_plan(fake_tensorrt("9.2.0", fp16_flag=False), "fp16") == (3, [], "fp16", "strong")


def test_placement_is_read_once_and_the_profiler_then_stops(tmp_path):
    model = convert(create_model("M0", "train"), "fused").eval()
    artifact = export_onnx(model, 64, 17, ExportCache(tmp_path / "cache"))
    session = OnnxRuntimeBackend.load(str(artifact.path), 1, np.zeros((1, 3, 64, 64), np.float32), 1000,
                                      profile_prefix=str(tmp_path / "ort"))
    session.record_placement()
    assert list(session.placement) == ["CPUExecutionProvider"] and len(session.placement["CPUExecutionProvider"]) > 100
    assert not list(tmp_path.glob("ort*.json"))  # the profile file is removed
    session.run()
    assert session.session.end_profiling() == ""  # nothing is being recorded any more
    with pytest.raises(RuntimeError, match="without ONNX Runtime's profiler"):
        session.end_profiling()
    described = session.describe().to_dict()
    assert described["placement"] == {"CPUExecutionProvider": len(session.placement["CPUExecutionProvider"])}
    assert described["cpu_fallback_nodes"] == session.placement["CPUExecutionProvider"]


def test_node_placement_groups_kernel_events_by_provider():
    events = [{"cat": "Session", "name": "model_run"},
              {"cat": "Node", "name": "Conv_1_kernel_time", "args": {"provider": "CUDAExecutionProvider"}},
              {"cat": "Node", "name": "Conv_1_fence_before", "args": {}},
              {"cat": "Node", "name": "Gelu_2_kernel_time", "args": {"provider": "CPUExecutionProvider"}},
              {"cat": "Node", "name": "Conv_1_kernel_time", "args": {"provider": "CUDAExecutionProvider"}}]
    assert node_placement(events) == {"CUDAExecutionProvider": ["Conv_1"], "CPUExecutionProvider": ["Gelu_2"]}


def test_the_after_hook_runs_outside_the_timed_region():
    calls = []
    samples, wall = measure(lambda: None, TimingPlan(min_duration_s=0, min_iters=5),
                            after=lambda: (calls.append(1), time.sleep(0.05)))
    assert len(calls) == len(samples) == 5
    assert max(samples) < 50 and wall >= 0.25  # the 50 ms sleeps are in the wall time, not in the samples


def _gpu_result(fallback=()):
    case = {"variant": "M0", "form": "fused", "backend": "onnxruntime", "device": "cuda", "precision": "fp32",
            "batch": 1, "resolution": 224, "threads": 2, "mode": "latency", "options": {}}
    stats = {"n": 100, "p50": 1.0, "p90": 1.1, "p99": 1.2, "cv": 0.01, "noisy": False}
    return {"case": case, "status": "ok", "latency_ms": stats, "device_latency_ms": {**stats, "p50": 0.4},
            "throughput_ips": 1000.0, "precision_effective": "fp32",
            "parity": {"rel_l2": 1e-6, "max_abs": 1e-6, "top1_agree": 1.0},
            "memory": {"peak_rss_mb": 500.0}, "backend": {"placement": {"CUDAExecutionProvider": 10,
                                                                        "CPUExecutionProvider": len(fallback)},
                                                          "cpu_fallback_nodes": list(fallback)}}


def test_results_show_gpu_time_and_cpu_fallback():
    from rich.console import Console

    console = Console(width=200, record=True)
    console.print(results_table([_gpu_result()]))
    text = console.export_text()
    assert "GPU p50" in text and "0.400" in text and "onnxruntime/cuda" in text
    assert not problem_lines([_gpu_result()])
    (line,) = problem_lines([_gpu_result(["Gelu_2", "Mean_9"])])
    assert "CPU fallback" in line and "2 of 12 nodes ran on the CPU: Gelu_2, Mean_9" in line


def test_a_gpu_provider_that_cannot_start_is_a_skip_not_a_hidden_cpu_run(tmp_path):
    """onnxruntime-gpu where no GPU (or no CUDA library) is usable: ONNX Runtime would quietly
    run on the CPU; the case says so instead."""
    found = availability("onnxruntime")
    from repnext_bench.system.capabilities import cuda_problem

    if "cuda" not in found.devices or not cuda_problem():
        pytest.skip("needs onnxruntime-gpu on a machine without a usable GPU")
    path = tmp_path / "fallback.json"
    assert main(["run", "-v", "m0", "-b", "onnxruntime", "--device", "cuda,tensorrt", "-f", "fused", "-r", "64",
                 "--cache-dir", str(tmp_path / "cache"), "-o", str(path), "-q"]) == 0
    results = read_report(path)["results"]
    assert [r["case"]["device"] for r in results] == ["cuda", "tensorrt"]
    for result, provider in zip(results, ["CUDAExecutionProvider", "TensorrtExecutionProvider"], strict=True):
        assert result["status"] == "skipped" and result["latency_ms"] is None
        assert f"could not create {provider} here and would run everything on CPUExecutionProvider" in result["error"]
        assert "artifact" not in result  # the ONNX file is not the point of this case


# ---- on a CUDA machine ---------------------------------------------------------------------

def _run_gpu(tmp_path, *args) -> list[dict]:
    path = tmp_path / "gpu.json"
    code = main(["run", "-v", "m0", "-f", "train,fused", "-r", "64", "--duration", "0.2", "--min-iters", "20",
                 "--block", "0.05", "--min-rounds", "3", "--budget", "5", "--seed", "0",
                 "--cache-dir", str(tmp_path / "cache"), "-o", str(path), "-q", *args])
    results = read_report(path)["results"]
    assert code == 0, [r.get("error") for r in results]
    return results


@pytest.mark.gpu
@pytest.mark.parametrize("extra", [[], ["--cuda-graphs"], ["--channels-last", "--autocast"]])
def test_cuda_backend_times_on_the_gpu(tmp_path, extra):
    results = _run_gpu(tmp_path, "-b", "cuda", "-p", "fp32,fp16", *extra)
    for result in results:
        assert result["status"] == "ok", result.get("error")
        precision = result["case"]["precision"]
        assert result["precision_effective"] == precision
        assert result["parity"]["rel_l2"] < (1e-4 if precision == "fp32" else 2e-2)
        host, device = result["latency_ms"], result["device_latency_ms"]
        assert device["n"] == host["n"] and device["p50"] <= host["p50"]  # the GPU part of the end-to-end call
        assert result["memory"]["gpu_peak_allocated_mb"] > 0
        assert result["backend"]["cuda_graphs"] == ("--cuda-graphs" in extra)


@pytest.mark.gpu
@pytest.mark.skipif(importlib.util.find_spec("tensorrt") is None, reason="tensorrt is not installed")
def test_tensorrt_builds_caches_and_times_engines(tmp_path):
    first = _run_gpu(tmp_path, "-b", "tensorrt", "-p", "fp32,fp16")
    for result in first:
        assert result["status"] == "ok", result.get("error")
        assert result["artifact"]["build_s"] > 0 and result["memory"]["artifact_bytes"] > 0
        assert result["device_latency_ms"]["p50"] <= result["latency_ms"]["p50"]
        assert result["parity"]["rel_l2"] < (1e-3 if result["case"]["precision"] == "fp32" else 3e-2)
    again = _run_gpu(tmp_path, "-b", "tensorrt", "-p", "fp32,fp16", "--cuda-graphs")
    assert all(r["status"] == "ok" and r["artifact"]["cache_hit"] for r in again)


@pytest.mark.gpu
def test_onnxruntime_on_cuda_records_where_nodes_ran(tmp_path):
    if "cuda" not in availability("onnxruntime").devices:
        pytest.skip("this onnxruntime has no CUDA provider")
    for result in _run_gpu(tmp_path, "-b", "onnxruntime", "--device", "cuda"):
        assert result["status"] == "ok", result.get("error")
        placement = result["backend"]["placement"]
        assert placement.get("CUDAExecutionProvider", 0) > 0
        assert len(result["backend"]["cpu_fallback_nodes"]) == placement.get("CPUExecutionProvider", 0)
        assert result["parity"]["rel_l2"] < 1e-3


@pytest.mark.parametrize("command", ["gate", "verify"])
def test_gate_and_verify_take_devices_as_run_does(command, capsys):
    assert main([command, "-v", "m0", "-b", "torch,onnxruntime", "--device", "cuda"]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and "--device cuda: torch runs on cpu" in err[0]


def test_gate_refuses_a_backend_this_environment_cannot_run(capsys):
    found = availability("cuda")
    if found.available:
        pytest.skip("cuda is usable here")
    assert main(["gate", "-v", "m0", "-b", "cuda"]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and f"--backend cuda: cuda is not available: {found.reason}" in err[0]


# ---- what the GPU sessions describe, on a fake GPU -----------------------------------------

def fake_torch(capability: int = 8):
    """The few parts of torch.cuda that the GPU sessions' describe and gpu_memory read."""
    properties = SimpleNamespace(name="Fake GPU", major=capability, minor=0, total_memory=16 * 2**30)
    cuda = SimpleNamespace(get_device_properties=lambda index: properties,
                           get_device_capability=lambda: (capability, 0), get_device_name=lambda: "Fake GPU",
                           max_memory_allocated=lambda: 300 * 2**20, max_memory_reserved=lambda: 512 * 2**20)
    return SimpleNamespace(__version__="2.x", version=SimpleNamespace(cuda="12.x"), cuda=cuda,
                           backends=SimpleNamespace(cudnn=SimpleNamespace(version=lambda: 90000)))


GPU_FACTS = {"precision_effective", "device", "device_name", "compute_capability", "gpu_memory_mb", "versions"}


@pytest.mark.parametrize("precision,capability,expected", [
    ("fp32", 8, "fp32"), ("auto", 8, "tf32"), ("auto", 7, "fp32"), ("fp16", 8, "fp16"), ("bf16", 8, "bf16")])
def test_cuda_session_description_and_memory(precision, capability, expected):
    from repnext_bench.backends import GpuMemory
    from repnext_bench.backends.torch_cuda import CudaSession

    session = object.__new__(CudaSession)  # its describe and gpu_memory read no more than these
    session._torch, session.precision, session._contexts = fake_torch(capability), precision, [None]
    session.options = {"cuda_graphs": True}
    described = session.describe()
    assert described.precision_effective == expected and described.threads is None
    assert set(described.to_dict()) == GPU_FACTS | {"cast", "channels_last", "compiled", "cuda_graphs", "timed_call"}
    assert described.to_dict()["cuda_graphs"] is True and described.versions["cudnn"] == 90000
    assert session.gpu_memory() == GpuMemory(300.0, 512.0)
    assert "gpu_memory" not in described.to_dict()


@pytest.mark.parametrize("precision,typing,expected,note", [
    ("fp32", "weak", "fp32", False), ("auto", "weak", "tf32", False), ("fp16", "weak", "fp16", True),
    ("fp16", "strong", "fp16", False)])
def test_tensorrt_session_description_and_memory(precision, typing, expected, note):
    from repnext_bench.backends.tensorrt_gpu import TensorRTSession

    session = object.__new__(TensorRTSession)
    session._torch, session._trt = fake_torch(), SimpleNamespace(__version__="10.x")
    session.precision, session.typing, session.options, session.load_added_mb = precision, typing, {}, 64.0
    session.engine = SimpleNamespace(device_memory_size_v2=8 * 2**20)
    described = session.describe().to_dict()
    assert described["precision_effective"] == expected and ("precision_note" in described) == note
    assert set(described) - {"precision_note"} == GPU_FACTS | {"typing", "cuda_graphs", "timed_call"}
    assert session.gpu_memory().to_dict() == {"gpu_peak_allocated_mb": 300.0, "gpu_peak_reserved_mb": 512.0,
                                              "trt_activation_mb": 8.0, "trt_load_added_mb": 64.0}


@pytest.mark.parametrize("device,precision,tf32_cores,expected", [
    ("cpu", "fp32", True, "fp32"), ("cuda", "fp32", True, "fp32"), ("cuda", "auto", True, "tf32"),
    ("cuda", "auto", False, "fp32"), ("tensorrt", "fp32", True, "tf32"), ("tensorrt", "fp16", True, "fp16")])
def test_onnxruntime_gpu_precision(monkeypatch, device, precision, tf32_cores, expected):
    from repnext_bench.backends import ort
    from repnext_bench.backends.ort import OnnxRuntimeSession

    monkeypatch.setattr(ort, "has_tf32_cores", lambda: tf32_cores)
    session = object.__new__(OnnxRuntimeSession)
    session.session = SimpleNamespace(get_session_options=lambda: SimpleNamespace(intra_op_num_threads=2),
                                      get_outputs=lambda: [SimpleNamespace(type="tensor(float)")],
                                      get_providers=lambda: [ort.PROVIDERS[device], "CPUExecutionProvider"])
    session.device, session.precision, session._version = device, precision, "1.x"
    session.placement = None if device == "cpu" else {ort.PROVIDERS[device]: ["Conv_1"], "CPUExecutionProvider": []}
    described = session.describe()
    assert described.precision_effective == expected and described.threads == 2
    assert ("precision_note" in described.facts) == (precision == "fp16")
    assert ("placement" in described.facts) == (device != "cpu")
    assert session.gpu_memory() is None  # ONNX Runtime's allocations are not counted


def test_bf16_needs_ampere():
    from repnext_bench.system.capabilities import bf16_problem

    assert bf16_problem(fake_torch(8)) is None
    assert bf16_problem(fake_torch(7)) == "Fake GPU has no bf16 support"
