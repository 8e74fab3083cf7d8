"""torch.profiler on the CPU: each aten op called directly inside a module becomes a node
named ``<module path>/<op>``, with its total CPU time, input shapes and dtype."""
from __future__ import annotations

import os
import sys
from contextlib import contextmanager

from ..measure.timing import timed_runs
from .records import RuntimeProfile

_PREFIX = "module::"
_DTYPES = {"float": "fp32", "c10::BFloat16": "bf16", "c10::Half": "fp16", "double": "fp64"}


def _annotate(model):
    """Hooks that open a ``module::<path>`` profiler range around every module's forward."""
    from torch.profiler import record_function

    open_ranges: list = []

    def enter(name):
        def hook(_module, _inputs):
            scope = record_function(_PREFIX + name)
            scope.__enter__()
            open_ranges.append(scope)
        return hook

    def leave(_module, _inputs, _output):
        open_ranges.pop().__exit__(None, None, None)

    handles = []
    for name, module in model.named_modules():
        handles.append(module.register_forward_pre_hook(enter(name)))
        handles.append(module.register_forward_hook(leave))
    return handles


@contextmanager
def _native_stderr_silenced():
    """Kineto prints a line to the process's stderr at each profiler start and stop."""
    sys.stderr.flush()
    saved = os.dup(2)
    with open(os.devnull, "w") as null:
        os.dup2(null.fileno(), 2)
    try:
        yield
    finally:
        os.dup2(saved, 2)
        os.close(saved)


def _precision(dtypes: list[str] | None) -> str | None:
    """The first tensor dtype among an op's inputs, as fp32/bf16/fp16."""
    return next((_DTYPES[d] for d in dtypes or [] if d in _DTYPES), None)


def profile_module(model, run, iterations: int) -> RuntimeProfile:
    """``run`` (one forward of ``model``) ``iterations`` times under torch.profiler, after an
    unprofiled warm-up: what :meth:`TorchSession.profile` returns."""
    from torch.profiler import ProfilerActivity, profile

    handles = _annotate(model)
    try:
        timed_runs(run, 0)  # the warm-up, outside the profiler
        with _native_stderr_silenced(), profile(activities=[ProfilerActivity.CPU], record_shapes=True) as prof:
            wall_ms = timed_runs(run, iterations, warmup=0)
    finally:
        for handle in handles:
            handle.remove()
    nodes: dict[str, dict] = {}
    runtime_ms = []
    for event in prof.events():
        if not event.name.startswith(_PREFIX):
            continue
        path = event.name[len(_PREFIX):]
        if path == "":
            runtime_ms.append(event.cpu_time_total / 1e3)
        for child in event.cpu_children:
            if child.name.startswith(_PREFIX):
                continue
            key = f"{path}/{child.name}"
            node = nodes.setdefault(key, {
                "name": key, "path": path, "op_type": child.name, "kernel": child.name,
                "precision": _precision(child.input_dtypes),
                "shapes": str([s for s in child.input_shapes or [] if s]), "time_ms": 0.0, "calls": 0})
            node["time_ms"] += child.cpu_time_total / 1e3
            node["calls"] += 1
    return RuntimeProfile(list(nodes.values()), wall_ms, runtime_ms,
                          "time inside the model's forward (the root module's profiler range)")
