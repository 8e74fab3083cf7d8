"""OpenVINO's per-layer performance counters: real time, layer type and the kernel it chose
(e.g. ``brgconv_avx512_bf16``). The precision each layer really ran in comes from the runtime
model's ``runtimePrecision``, which every CPU plugin sets (x86, whatever its ISA, and Arm); the
kernel name's suffix is the fallback."""
from __future__ import annotations

import re

from ..measure.timing import timed_runs
from .records import RuntimeProfile

_PRECISION = re.compile(r"_(f32|fp32|bf16|f16|fp16|i8|u8|i32|i64)$", re.IGNORECASE)
_NAMES = {"f32": "fp32", "f16": "fp16"}


def kernel_precision(exec_type: str) -> str | None:
    """``brgconv_avx512_bf16`` -> ``bf16``; None where the kernel name does not say."""
    found = _PRECISION.search(exec_type)
    if not found:
        return None
    value = found.group(1).lower()
    return _NAMES.get(value, value)


def runtime_precisions(compiled) -> dict[str, str]:
    """layer name -> the precision it runs in, from the compiled (runtime) model."""
    found = {}
    for op in compiled.get_runtime_model().get_ordered_ops():
        info = op.get_rt_info()
        if "runtimePrecision" in info:
            value = info["runtimePrecision"].astype(str).lower()
            if value not in ("", "undefined", "dynamic"):
                found[op.get_friendly_name()] = _NAMES.get(value, value)
    return found


def graph_of(compiled) -> dict[str, tuple[list[str], list[str]]]:
    """layer name -> (producer names, consumer names) of the compiled (runtime) graph."""
    graph = {}
    for op in compiled.get_runtime_model().get_ordered_ops():
        producers = [port.get_source_output().get_node().get_friendly_name() for port in op.inputs()]
        consumers = [target.get_node().get_friendly_name()
                     for output in op.outputs() for target in output.get_target_inputs()]
        graph[op.get_friendly_name()] = (producers, consumers)
    return graph


def profile_compiled(compiled, request, run, iterations: int) -> RuntimeProfile:
    """``run`` (one inference of ``request``, an infer request of ``compiled``, which was
    compiled with PERF_COUNT) ``iterations`` times, reading the request's per-layer counters
    after each, outside the timed call: what :meth:`OpenVinoSession.profile` returns."""
    nodes: dict[str, dict] = {}
    precisions = runtime_precisions(compiled)

    def read_counters() -> None:
        for info in request.profiling_info:
            if info.status != info.Status.EXECUTED:
                continue  # fused into another layer, or a parameter/result
            precision = precisions.get(info.node_name) or kernel_precision(info.exec_type)
            node = nodes.setdefault(info.node_name, {
                "name": info.node_name, "op_type": info.node_type, "kernel": info.exec_type,
                "precision": precision, "shapes": "", "time_ms": 0.0, "calls": 0})
            node["time_ms"] += info.real_time.total_seconds() * 1e3
            node["calls"] += 1

    wall_ms = timed_runs(run, iterations, after=read_counters)
    return RuntimeProfile(list(nodes.values()), wall_ms, graph=graph_of(compiled))
