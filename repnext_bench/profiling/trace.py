"""A Chrome trace (the JSON that chrome://tracing and ui.perfetto.dev open) of profiles.

Each profile is one process row; its nodes are laid back to back in the order the runtime
first ran them, each as long as its mean time per inference, and the time outside any node
closes the row. It shows where one average inference spends its time, not the real
timestamps of a single run."""
from __future__ import annotations

from ..core.cases import Case
from .rollup import accounting


def chrome_trace(profiles: list[dict]) -> dict:
    events = []
    for pid, profile in enumerate(profiles, start=1):
        label = Case.from_dict(profile["case"]).label
        events.append({"ph": "M", "name": "process_name", "pid": pid, "tid": 0, "args": {"name": label}})
        clock = 0.0
        for node in profile["nodes"]:
            place = node.get("place") or {}
            duration = node["time_ms"] * 1e3
            events.append({"ph": "X", "name": node["name"], "cat": place.get("component", "unattributed"),
                           "pid": pid, "tid": 0, "ts": round(clock, 3), "dur": round(duration, 3),
                           "args": {"op_type": node["op_type"], "kernel": node["kernel"],
                                    "precision": node["precision"], **place}})
            clock += duration
        outside = accounting(profile)["outside_nodes_ms"]
        if outside > 0:
            events.append({"ph": "X", "name": "outside any node", "cat": "overhead", "pid": pid, "tid": 0,
                           "ts": round(clock, 3), "dur": round(outside * 1e3, 3), "args": {}})
    return {"traceEvents": events, "displayTimeUnit": "ms"}
