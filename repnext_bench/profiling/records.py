"""What a runtime's profiler hands back, as plain data: the backends make it, the collectors
and the attribution read it. Imports nothing of the package."""
from __future__ import annotations

from dataclasses import dataclass


@dataclass
class RuntimeProfile:
    """What a runtime's own profiler saw over the profiled inferences: per node (name, op_type,
    kernel, precision, shapes, and totals over the inferences: time_ms, calls), the host time
    of each inference, the runtime's own time per inference where it reports one (and what that
    time covers), and the runtime's graph (node -> (producers, consumers)) where it has one."""

    nodes: list[dict]
    wall_ms: list[float]
    runtime_ms: list[float] | None = None
    runtime_total: str | None = None
    graph: dict[str, tuple[list[str], list[str]]] | None = None
