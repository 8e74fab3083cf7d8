"""The paired, interleaved A/B gate: two long-lived arm processes (baseline and candidate)
take turns, in random AB/BA order, over several rounds with fresh processes, each sample a
block of inferences calibrated to a fixed duration. The verdict stands on the paired
log-ratios (see measure/ratios.py)."""
from __future__ import annotations

import json
import os
import random
import selectors
import subprocess
import tempfile
import time
from collections.abc import Callable
from dataclasses import asdict, dataclass, field
from statistics import median

from ..core.cases import Case
from ..measure.ratios import paired_change
from ..run.lifecycle import Settings
from .arm import PROTOCOL
from .stats import Thresholds, verdict

_THREAD_VARIABLES = ("OMP_NUM_THREADS", "MKL_NUM_THREADS", "OPENBLAS_NUM_THREADS")


class GateError(RuntimeError):
    """An arm could not start, load its case or answer."""


@dataclass(frozen=True)
class ArmSpec:
    """What one arm runs: its Python, its case (variant, backend, options...) and settings."""

    name: str  # "baseline" or "candidate"
    python: str
    case: Case
    settings: Settings
    slowdown: float = 0.0  # injected extra cost per inference (to test the gate itself)

    def to_dict(self) -> dict:
        return {"name": self.name, "python": self.python, "case": self.case.to_dict(),
                "checkpoint": self.settings.checkpoint, "opset": self.settings.opset, "slowdown": self.slowdown}


@dataclass(frozen=True)
class GatePlan:
    pairs: int = 50
    rounds: int = 5  # each round starts both arms afresh: rounds - 1 restarts
    block_s: float = 0.1
    settle_s: float = 0.02  # pause before each sample, for the other arm's threads to go idle
    seed: int = 0
    thresholds: Thresholds = field(default_factory=Thresholds)
    load_timeout_s: float = 600.0

    def __post_init__(self) -> None:
        if self.pairs < 2 or self.rounds < 1 or self.pairs < self.rounds or self.block_s <= 0:
            raise ValueError("need pairs >= 2, rounds >= 1, pairs >= rounds and block > 0")

    def to_dict(self) -> dict:
        return {**asdict(self), "thresholds": self.thresholds.to_dict()}


class ArmProcess:
    """A running arm, spoken to in JSON lines."""

    def __init__(self, spec: ArmSpec) -> None:
        self.spec = spec
        threads = str(spec.case.threads)
        env = {**os.environ, **{v: threads for v in _THREAD_VARIABLES}, "PYTHONUNBUFFERED": "1"}
        self._stderr = tempfile.TemporaryFile(mode="w+")  # noqa: SIM115  (read and closed by stop())
        try:
            # run from a neutral folder: from a checkout, "-m" would import the checkout's copy of
            # this package instead of the one installed in that Python's environment
            self.process = subprocess.Popen([spec.python, "-m", "repnext_bench.gate.arm"], stdin=subprocess.PIPE,
                                            stdout=subprocess.PIPE, stderr=self._stderr, text=True, env=env,
                                            cwd=tempfile.gettempdir())
        except OSError as exc:
            raise GateError(f"{spec.name} arm: cannot start {spec.python} ({exc.strerror or exc})") from exc
        self._selector = selectors.DefaultSelector()
        self._selector.register(self.process.stdout, selectors.EVENT_READ)

    def request(self, message: dict, timeout_s: float) -> dict:
        self.send(message)
        return self.receive(message["op"], timeout_s)

    def send(self, message: dict) -> None:
        try:
            self.process.stdin.write(json.dumps(message) + "\n")
            self.process.stdin.flush()
        except BrokenPipeError:
            raise GateError(self._died()) from None

    def receive(self, op: str, timeout_s: float) -> dict:
        if not self._selector.select(timeout_s):
            raise GateError(f"{self.spec.name} arm: no answer to {op} within {timeout_s:g} s")
        line = self.process.stdout.readline()
        if not line:
            raise GateError(self._died())
        reply = json.loads(line)
        if reply.get("ok") is False:
            raise GateError(f"{self.spec.name} arm: {op} failed: {reply.get('error')}")
        return reply

    def _died(self) -> str:
        self.process.wait(timeout=30)
        self._stderr.seek(0)
        lines = [line for line in self._stderr.read().splitlines() if line.strip()]
        tail = lines[-1] if lines else "no output"
        if any("No module named 'repnext_bench'" in line for line in lines):
            tail = f"repnext-bench is not installed for {self.spec.python}"
        return f"{self.spec.name} arm exited with code {self.process.returncode}: {tail}"

    def close(self) -> None:
        if self.process.poll() is None:
            try:
                self.process.stdin.write(json.dumps({"op": "quit"}) + "\n")
                self.process.stdin.flush()
                self.process.wait(timeout=30)
            except (BrokenPipeError, subprocess.TimeoutExpired):
                self.process.kill()
                self.process.wait()
        self._selector.close()
        self._stderr.close()


def _start(specs: tuple[ArmSpec, ...], plan: GatePlan) -> dict[str, tuple[ArmProcess, dict]]:
    """Start the arms side by side (loading is not measured) and check that they speak our protocol."""
    arms = {}
    try:
        for spec in specs:
            arms[spec.name] = ArmProcess(spec)
        info = {}
        for arm in arms.values():
            arm.send({"op": "hello"})
        for name, arm in arms.items():
            hello = arm.receive("hello", plan.load_timeout_s)
            if hello.get("protocol") != PROTOCOL:
                raise GateError(f"{name} arm speaks gate protocol {hello.get('protocol')!r} (repnext-bench "
                                f"{hello.get('version')}); this version needs protocol {PROTOCOL}")
            info[name] = hello
        for arm in arms.values():
            arm.send({"op": "load", "case": arm.spec.case.to_dict(), "settings": arm.spec.settings.to_dict(),
                      "slowdown": arm.spec.slowdown})
        for name, arm in arms.items():
            loaded = arm.receive("load", plan.load_timeout_s)
            info[name] = {**arm.spec.to_dict(), **info[name], "backend": loaded["backend"]}
    except BaseException:
        for arm in arms.values():
            arm.close()
        raise
    return {name: (arm, info[name]) for name, arm in arms.items()}


def run_gate(baseline: ArmSpec, candidate: ArmSpec, plan: GatePlan,
             on_pair: Callable[[int, int], None] | None = None) -> dict:
    """Run the gate; returns its record (arms, every pair, the estimate and the verdict)."""
    rng = random.Random(plan.seed)
    started = time.monotonic()
    sizes = [plan.pairs // plan.rounds + (i < plan.pairs % plan.rounds) for i in range(plan.rounds)]
    pairs: list[dict] = []
    arms_info: dict = {}
    block_n: dict[str, int] = {}
    for round_index, size in enumerate(sizes):
        started_arms = _start((baseline, candidate), plan)
        arms = {name: arm for name, (arm, _) in started_arms.items()}
        try:
            for name, (_, info) in started_arms.items():
                arms_info.setdefault(name, info)
            for name, arm in arms.items():  # one block length per arm, fixed for the whole gate
                calibration = arm.request({"op": "calibrate", "block_s": plan.block_s}, plan.load_timeout_s)
                block_n.setdefault(name, calibration["n"])
            for _ in range(size):
                order = ["baseline", "candidate"] if rng.random() < 0.5 else ["candidate", "baseline"]
                times = {}
                for name in order:
                    time.sleep(plan.settle_s)
                    times[name] = arms[name].request({"op": "sample", "n": block_n[name]}, plan.load_timeout_s)["ms"]
                pairs.append({"baseline_ms": times["baseline"], "candidate_ms": times["candidate"],
                              "order": "".join("AB"[name == "candidate"] for name in order), "round": round_index})
                if on_pair:
                    on_pair(len(pairs), plan.pairs)
        finally:
            for arm in arms.values():
                arm.close()
    estimate = paired_change([p["baseline_ms"] for p in pairs], [p["candidate_ms"] for p in pairs],
                             groups=[p["round"] for p in pairs], seed=plan.seed)
    outcome, why = verdict(estimate, plan.thresholds)
    for name, n in block_n.items():
        arms_info[name]["inferences_per_sample"] = n
    return {"kind": "gate", "baseline": arms_info["baseline"], "candidate": arms_info["candidate"],
            "plan": plan.to_dict(), "pairs": pairs, "estimate": estimate.to_dict(), "verdict": outcome, "why": why,
            "baseline_ms": median([p["baseline_ms"] for p in pairs]),
            "candidate_ms": median([p["candidate_ms"] for p in pairs]),
            "duration_s": time.monotonic() - started}
