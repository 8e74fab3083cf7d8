"""One arm of the gate: a process that loads a case once and then answers timing requests.

Run as ``python -m repnext_bench.gate.arm`` by the gate, possibly with another Python
environment (another torch, onnxruntime, openvino or repnext-bench). It speaks JSON lines:
one request per line on stdin, one reply per line on its original stdout (everything else
the runtimes print goes to stderr). Requests and replies are plain JSON with a protocol
number, so arms from other versions of this package can take part as long as they speak
the same protocol; unknown fields are ignored.

    {"op": "hello"}                          -> {"protocol": 1, "version": ..., "libraries": {...}}
    {"op": "load", "case": {...}, "settings": {...}, "slowdown": 0.05} -> {"ok": true, "backend": {...}}
    {"op": "calibrate", "block_s": 0.1}      -> {"ok": true, "n": 37}
    {"op": "sample", "n": 37}                -> {"ok": true, "ms": 2.71}   (mean per inference)
    {"op": "quit"}
"""
from __future__ import annotations

import json
import os
import platform
import sys
import time
import traceback
from contextlib import ExitStack
from pathlib import Path

PROTOCOL = 1
_LIBRARIES = ("torch", "onnxruntime", "openvino", "numpy")


def _versions() -> dict:
    from ..system.environment import installed_versions

    return installed_versions(_LIBRARIES, missing=True)


def _pin(threads: int) -> list[int] | None:
    """Pin this process to the first ``threads`` CPUs it may use: both arms then run on the
    same CPUs, one at a time."""
    from ..system.machine import pin_to, usable_cpu_ids

    usable = usable_cpu_ids()
    if usable is None:  # macOS cannot pin a process to CPUs
        return None
    cpus = usable[:max(1, threads)]
    return cpus if pin_to(cpus) else None


class Arm:
    def __init__(self) -> None:
        self.resources = ExitStack()  # the loaded case: its session and export cache, closed at quit
        self.session = None
        self.slowdown = 0.0  # extra busy work per inference, as a fraction of its own time
        self.extra_s = 0.0

    def hello(self, _request: dict) -> dict:
        from .. import __version__
        from ..system.machine import usable_cpu_ids

        return {"protocol": PROTOCOL, "version": __version__, "python": platform.python_version(),
                "executable": sys.executable, "package": str(Path(__file__).resolve().parent.parent),
                "libraries": _versions(), "pid": os.getpid(),
                "affinity": usable_cpu_ids()}

    def load(self, request: dict) -> dict:
        from ..core.cases import Case
        from ..measure.timing import warm_up
        from ..run.lifecycle import Settings, open_case

        case, settings = Case.from_dict(request["case"]), Settings.from_dict(request["settings"])
        pinned = _pin(case.threads)
        self.resources.close()  # a second load replaces the first
        self.session = None
        self.session = self.resources.enter_context(open_case(case, settings)).session
        warm_up(self.session.run, settings.plan)
        self.slowdown = float(request.get("slowdown") or 0.0)
        description, gpu_memory = self.session.describe(), self.session.gpu_memory()
        backend = description.to_dict()
        if description.quantization:  # INT8: what ran INT8 in this arm, and its calibration
            backend["quantization"] = description.quantization
        if gpu_memory is not None:  # as gate records have carried it
            backend["gpu_memory"] = gpu_memory.to_dict()
        return {"ok": True, "backend": backend, "pinned_cpus": pinned}

    def calibrate(self, request: dict) -> dict:
        """How many inferences fill ``block_s``; with a slowdown, its busy time is set from the
        median inference time measured here."""
        run, clock = self.session.run, time.perf_counter
        start, times = clock(), []
        while not times or clock() - start < request["block_s"]:
            t0 = clock()
            run()
            times.append(clock() - t0)
        # (its own rule, not measure.timing.block_size: the gate's proof in docs/gate.md was measured with it)
        self.extra_s = self.slowdown * sorted(times)[len(times) // 2]
        return {"ok": True, "n": max(1, round(len(times) / (1 + self.slowdown))), "extra_ms": self.extra_s * 1e3}

    def sample(self, request: dict) -> dict:
        run, n, extra, clock = self.session.run, int(request["n"]), self.extra_s, time.perf_counter
        start = time.perf_counter_ns()
        for _ in range(n):
            run()
            if extra:  # a known, injected cost: spin (not sleep) so it costs CPU like real work
                until = clock() + extra
                while clock() < until:
                    pass
        return {"ok": True, "ms": (time.perf_counter_ns() - start) / 1e6 / n}


def main() -> None:
    replies = os.fdopen(os.dup(1), "w", buffering=1)
    os.dup2(2, 1)  # whatever else is printed (by a runtime, say) must not corrupt the protocol
    sys.stdout = sys.stderr
    arm = Arm()
    for line in sys.stdin:
        request = json.loads(line)
        op = request.get("op")
        if op == "quit":
            break
        try:
            handler = getattr(arm, op) if op in ("hello", "load", "calibrate", "sample") else None
            reply = handler(request) if handler else {"ok": False, "error": f"unknown request {op!r}"}
        except Exception as exc:  # the gate reports it; the arm stays up for the next request
            reply = {"ok": False, "error": f"{type(exc).__name__}: {exc}", "traceback": traceback.format_exc(limit=-3)}
        replies.write(json.dumps(reply) + "\n")
    arm.resources.close()


if __name__ == "__main__":
    main()
