"""ONNX Runtime's session profiler: per-node kernel time, op type and provider, from the
last ``iterations`` runs. The optimized graph is saved beside it, so that nodes ORT adds
(layout reorders) can be placed through their neighbours."""
from __future__ import annotations

import json
import tempfile
from pathlib import Path

from ..backends import PrepareContext
from ..backends.ort import OnnxRuntimeBackend
from ..cases import Case
from ..export import export_onnx
from ..measure.timing import timed_runs

_SUFFIX = "_kernel_time"
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


def _node_record(event: dict) -> dict:
    args = event.get("args", {})
    outputs = args.get("output_type_shape") or [{}]
    element = next(iter(outputs[0]), None)
    return {"name": event["name"][: -len(_SUFFIX)], "op_type": args.get("op_name", ""),
            "kernel": args.get("provider", ""), "precision": _TYPES.get(element, element),
            "shapes": json.dumps([list(s.values())[0] for s in args.get("input_type_shape", []) if s]),
            "time_ms": 0.0, "calls": 0}


def collect(model, case: Case, images, context: PrepareContext, iterations: int) -> dict:
    artifact = export_onnx(model, case.resolution, context.opset, context.cache, context.weights)
    context.artifact = artifact.describe()
    with tempfile.TemporaryDirectory(prefix="repnext-ort-profile-") as folder:
        optimized = Path(folder) / "optimized.onnx"
        session = OnnxRuntimeBackend.load(str(artifact.path), case.threads, images, model.num_classes,
                                          profile_prefix=str(Path(folder) / "ort"), optimized_path=str(optimized))
        wall_ms = timed_runs(session.run, iterations)
        description = session.describe()
        events = json.loads(Path(session.session.end_profiling()).read_text())
        graph = graph_of(optimized)
    runs = [e for e in events if e.get("name") == "model_run"][-iterations:]
    first = runs[0]["ts"]
    nodes: dict[str, dict] = {}
    for event in events:
        if event.get("cat") != "Node" or not event["name"].endswith(_SUFFIX) or event["ts"] < first:
            continue
        node = nodes.setdefault(event["name"], _node_record(event))
        node["time_ms"] += event["dur"] / 1e3
        node["calls"] += 1
    return {"nodes": list(nodes.values()), "wall_ms": wall_ms, "runtime_ms": [r["dur"] / 1e3 for r in runs],
            "runtime_total": "ONNX Runtime's own model_run time per inference",
            "graph": graph, "description": description}
