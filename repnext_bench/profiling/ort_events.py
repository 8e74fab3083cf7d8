"""ONNX Runtime's profile (its JSON event list) read once: the node kernels and the inferences,
for the node placement a GPU session reports and for the profiler (ort_nodes.py)."""
from __future__ import annotations

from dataclasses import dataclass, field

_SUFFIX = "_kernel_time"


@dataclass(frozen=True)
class KernelEvent:
    """One node's kernel run in an ONNX Runtime profile (times in microseconds)."""

    node: str  # the node's name
    provider: str | None  # the execution provider that ran it
    start_us: int
    duration_us: int
    args: dict = field(default_factory=dict)  # the rest ORT says of it: op_name, input/output types and shapes


@dataclass(frozen=True)
class OrtProfile:
    kernels: list[KernelEvent]  # in the order they ran
    runs: list[tuple[int, int]]  # (start, duration) in microseconds of each inference (``model_run``)


def parse_profile(events: list[dict]) -> OrtProfile:
    """The node kernels and the inferences of an ONNX Runtime profile (its JSON event list):
    the one reader of these events, for the node placement here and for the profiler."""
    kernels, runs = [], []
    for event in events:
        name = event.get("name", "")
        if event.get("cat") == "Node" and name.endswith(_SUFFIX):
            args = event.get("args", {})
            kernels.append(KernelEvent(name[: -len(_SUFFIX)], args.get("provider"), event.get("ts", 0),
                                       event.get("dur", 0), args))
        elif name == "model_run":
            runs.append((event.get("ts", 0), event.get("dur", 0)))
    return OrtProfile(kernels, runs)


def node_placement(events: list[dict]) -> dict[str, list[str]]:
    """provider -> names of the nodes it ran, from an ONNX Runtime profile (each node once)."""
    placement: dict[str, list[str]] = {}
    seen = set()
    for kernel in parse_profile(events).kernels:
        if kernel.node not in seen:
            seen.add(kernel.node)
            placement.setdefault(kernel.provider or "?", []).append(kernel.node)
    return placement
