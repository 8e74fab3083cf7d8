"""One profile, in the case's process: a short timed loop without the profiler (the case's
real latency), then a separate pass with the runtime's own profiler, whose nodes are placed
in the model's structure. The runtime's profiler comes through the backend interface: a
session prepared with ``PrepareContext(profiling=True)``, and its ``profile`` (torch:
profiling/torch_ops.py, onnxruntime: ort_nodes.py, openvino: ov_layers.py)."""
from __future__ import annotations

from dataclasses import replace

from ..core.cases import Case
from ..measure.parity import parity
from ..measure.stats import summarize
from ..measure.timing import measure, warm_up
from ..profiling.attribution import attribute, macs_by_place
from .evaluation import evaluate_case
from .lifecycle import Settings, open_case


def _mean(values: list[float] | None) -> float | None:
    return sum(values) / len(values) if values else None


def profiled_pass(model, case: Case, images, context, iterations: int):
    """(RuntimeProfile, Description) of ``iterations`` inferences under the runtime's own
    profiler, in a session of its own, closed before this returns."""
    from ..backends import get_backend

    session = get_backend(case.backend).prepare(model, case, images, replace(context, profiling=True)).session
    try:
        return session.profile(iterations), session.describe()
    finally:
        session.close()


def profile_case(case: Case, settings: Settings, iterations: int = 20) -> dict:
    from ..backends import CaseSkipped

    try:
        with open_case(case, settings) as loaded:
            session, model, counts = loaded.session, loaded.model, loaded.counts
            warm_up(session.run, settings.plan)
            samples, _ = measure(session.run, settings.plan)
            output_parity = parity(session.output(), loaded.expected)
            session.close()  # the profiled pass prepares its own session: one at a time
            data, description = profiled_pass(model, case, loaded.images, loaded.context, iterations)
        if case.precision == "int8":  # on the evaluation inputs, as run's INT8 results
            output_parity = evaluate_case(case, settings)["parity"]
    except CaseSkipped as skip:
        return {"case": case.to_dict(), "kind": "profile", "status": "skipped", "error": str(skip)}
    nodes = data.nodes
    for node in nodes:  # totals over the profiled iterations -> per inference
        node["time_ms"] /= iterations
        node["calls"] /= iterations
    attribute(nodes, data.graph)
    return {
        "case": case.to_dict(), "kind": "profile", "status": "ok", "error": None,
        "latency_ms": summarize(samples),
        "precision_effective": description.precision_effective,
        "parity": output_parity,
        "backend": description.to_dict(),
        **({"quantization": description.quantization} if description.quantization else {}),
        "model": {"params": counts.params, "macs": counts.macs, "form": model.form},
        "profiled": {
            "iterations": iterations,
            "wall_ms": _mean(data.wall_ms),
            "runtime_ms": _mean(data.runtime_ms),
            "runtime_total": data.runtime_total,
        },
        "macs_by_place": [{"place": place, "macs": macs} for place, macs in macs_by_place(counts.per_module_macs)],
        "nodes": nodes,
    }
