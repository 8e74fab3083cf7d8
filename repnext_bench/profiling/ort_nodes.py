"""ONNX Runtime's session profiler: per-node kernel time, op type and provider, from the
last ``iterations`` runs (read from the events by ``ort_events.parse_profile``). The
optimized graph is saved beside it, so that nodes ORT adds (layout reorders) can be placed
through their neighbours."""
from __future__ import annotations

import json
from pathlib import Path

from .ort_events import KernelEvent, OrtProfile

_TYPES = {"float": "fp32", "float16": "fp16", "bfloat16": "bf16", "double": "fp64"}


def graph_of(onnx_path: Path) -> dict[str, tuple[list[str], list[str]]]:
    """node name -> (producer names, consumer names) of an ONNX file."""
    import onnx

    nodes = onnx.load(str(onnx_path), load_external_data=False).graph.node
    producer = {output: node.name for node in nodes for output in node.output}
    consumers: dict[str, list[str]] = {}
    for node in nodes:
        for tensor in node.input:
            consumers.setdefault(tensor, []).append(node.name)
    return {node.name: ([producer[t] for t in node.input if t in producer],
                        [c for t in node.output for c in consumers.get(t, [])]) for node in nodes}


def _node_record(kernel: KernelEvent) -> dict:
    args = kernel.args
    outputs = args.get("output_type_shape") or [{}]
    element = next(iter(outputs[0]), None)
    return {"name": kernel.node, "op_type": args.get("op_name", ""),
            "kernel": kernel.provider or "", "precision": _TYPES.get(element, element),
            "shapes": json.dumps([list(s.values())[0] for s in args.get("input_type_shape", []) if s]),
            "time_ms": 0.0, "calls": 0}


def node_records(profile: OrtProfile, iterations: int) -> tuple[list[dict], list[float]]:
    """(per node: its kernel time and calls summed over the last ``iterations`` inferences;
    ORT's own time of each of those inferences, in milliseconds)."""
    runs = profile.runs[-iterations:]
    first = runs[0][0]
    nodes: dict[str, dict] = {}
    for kernel in profile.kernels:
        if kernel.start_us < first:
            continue
        node = nodes.setdefault(kernel.node, _node_record(kernel))
        node["time_ms"] += kernel.duration_us / 1e3
        node["calls"] += 1
    return list(nodes.values()), [duration / 1e3 for _, duration in runs]
