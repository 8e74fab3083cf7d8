"""One profile, in the case's process: a short timed loop without the profiler (the case's
real latency), then a separate pass with the runtime's own profiler, whose nodes are placed
in the model's structure."""
from __future__ import annotations

import importlib

from ..cases import Case
from ..measure.parity import parity
from ..measure.stats import summarize
from ..measure.timing import measure, warm_up
from ..lifecycle import Settings, open_case
from .attribution import attribute, macs_by_place

# backend -> the module whose ``collect`` runs that runtime's profiler
COLLECTORS = {
    "torch": "repnext_bench.profiling.torch_ops",
    "onnxruntime": "repnext_bench.profiling.ort_nodes",
    "openvino": "repnext_bench.profiling.ov_layers",
}


def _mean(values: list[float] | None) -> float | None:
    return sum(values) / len(values) if values else None


def profile_case(case: Case, settings: Settings, iterations: int = 20) -> dict:
    from ..backends import CaseSkipped

    try:
        with open_case(case, settings) as loaded:
            session, model, counts = loaded.session, loaded.model, loaded.counts
            warm_up(session.run, settings.plan)
            samples, _ = measure(session.run, settings.plan)
            output_parity = parity(session.output(), loaded.expected)
            session.close()  # the profiled pass prepares its own session: one at a time
            collector = importlib.import_module(COLLECTORS[case.backend])
            data = collector.collect(model, case, loaded.images, loaded.context, iterations)
    except CaseSkipped as skip:
        return {"case": case.to_dict(), "kind": "profile", "status": "skipped", "error": str(skip)}
    nodes = data["nodes"]
    for node in nodes:  # totals over the profiled iterations -> per inference
        node["time_ms"] /= iterations
        node["calls"] /= iterations
    attribute(nodes, data["graph"])
    description = data["description"]
    return {
        "case": case.to_dict(), "kind": "profile", "status": "ok", "error": None,
        "latency_ms": summarize(samples),
        "precision_effective": description["precision_effective"],
        "parity": output_parity,
        "backend": description,
        "model": {"params": counts.params, "macs": counts.macs, "form": model.form},
        "profiled": {
            "iterations": iterations,
            "wall_ms": _mean(data["wall_ms"]),
            "runtime_ms": _mean(data["runtime_ms"]),
            "runtime_total": data["runtime_total"],
        },
        "macs_by_place": [{"place": place, "macs": macs} for place, macs in macs_by_place(counts.per_module_macs)],
        "nodes": nodes,
    }
