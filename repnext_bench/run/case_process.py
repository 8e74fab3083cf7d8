"""The process one case lives in, and the parent's handle on it.

A case runs isolated in its own process, so that a crash, hang or out-of-memory in a runtime
is that case's failure only. The process is forked from a server that has already imported
torch and the runtimes (multiprocessing's forkserver, with those modules preloaded), so a
case pays neither an interpreter start nor the heavy imports; where there is no fork (Windows)
it is spawned. It stays alive between requests: ``load`` once, then ``block`` as often as the
sweep asks, then ``finish`` and ``quit``. The parent waits on the pipe and the process's
sentinel with the time limit as timeout: it never spins.
"""
from __future__ import annotations

import contextlib
import multiprocessing
import os
import signal
import sys
import traceback
from contextlib import ExitStack
from multiprocessing.connection import wait

from ..core.cases import Case
from ..export import CACHE_ENV
from ..measure.memory import peak_rss_mb
from ..measure.timing import TimingPlan, block_size, measure, warm_up
from .lifecycle import FAULT_ENV, Settings, open_case

# by name: Windows has no SIGKILL or SIGBUS
_SIGNALS = {
    "SIGSEGV": "crashed with a segmentation fault (SIGSEGV)",
    "SIGKILL": "was killed by SIGKILL (most likely the kernel's out-of-memory killer)",
    "SIGABRT": "aborted (SIGABRT)",
    "SIGBUS": "crashed with a bus error (SIGBUS)",
    "SIGILL": "crashed on an illegal instruction (SIGILL)",
}
# imported once by the fork server, so that no case process imports them again (the program's
# own main module first, as multiprocessing does by default). The runtimes are left out: their
# imports start threads, and a process that forks with live threads can deadlock; each case
# imports its own runtime (a fraction of a second).
PRELOAD = ["__main__", "repnext_bench.run.case_process", "repnext_bench.models", "repnext_bench.backends", "torch",
           "numpy"]
PASSED_ENVIRONMENT = (FAULT_ENV, CACHE_ENV, "XDG_CACHE_HOME")


class CaseDied(Exception):
    """The case's process crashed, was killed or overran its time limit."""


# Windows ends a crashed process with its NTSTATUS code rather than a signal
_WINDOWS_CRASHES = {0xC0000005: "crashed with an access violation (0xC0000005)",
                    0xC00000FD: "crashed with a stack overflow (0xC00000FD)",
                    0xC0000409: "aborted (0xC0000409)"}


def exit_reason(exitcode: int | None) -> str:
    if exitcode in _WINDOWS_CRASHES:
        return f"the case's process {_WINDOWS_CRASHES[exitcode]}"
    if exitcode is not None and exitcode < 0:
        try:
            name = signal.Signals(-exitcode).name
        except ValueError:
            name = f"signal {-exitcode}"
        return f"the case's process {_SIGNALS.get(name, f'was killed by {name}')}"
    return f"the case's process exited with code {exitcode} before answering"


_CONTEXT = None


def process_context():
    """The multiprocessing context cases run in: a fork server with torch preloaded on Linux;
    spawn on Windows (no fork) and on macOS (forking after Apple's frameworks are loaded is not
    safe, which is why Python spawns there by default). Created once per program."""
    global _CONTEXT
    if _CONTEXT is None:
        if sys.platform.startswith("linux") and "forkserver" in multiprocessing.get_all_start_methods():
            _CONTEXT = multiprocessing.get_context("forkserver")
            _CONTEXT.set_forkserver_preload(PRELOAD)
        else:
            _CONTEXT = multiprocessing.get_context("spawn")
    return _CONTEXT


class CaseProcess:
    """The parent's handle: send a request, wait for its answer within a time limit."""

    def __init__(self, case: Case, settings: Settings, time_limit_s: float, context=None) -> None:
        self.case = case
        self.time_limit_s = time_limit_s
        context = context or process_context()
        self.connection, child = context.Pipe()
        # the fork server keeps the environment it started with: pass on what this program reads now
        environment = {name: os.environ.get(name) for name in PASSED_ENVIRONMENT}
        self.process = context.Process(target=serve, args=(child, case.to_dict(), settings.to_dict(), environment),
                                       daemon=True)
        self.process.start()
        child.close()

    def send(self, op: str, **args) -> None:
        try:
            self.connection.send({"op": op, **args})
        except (BrokenPipeError, OSError) as exc:
            raise CaseDied(self._death()) from exc

    def receive(self) -> dict:
        """The answer to the last request, or CaseDied (the process is stopped first)."""
        ready = wait([self.connection, self.process.sentinel], timeout=self.time_limit_s)
        if self.connection in ready:
            try:
                return self.connection.recv()
            except (EOFError, OSError):
                pass
        if not ready:
            self.stop()
            raise CaseDied(f"exceeded the per-case time limit of {self.time_limit_s:g} s and was stopped")
        raise CaseDied(self._death())

    def ask(self, op: str, **args) -> dict:
        self.send(op, **args)
        return self.receive()

    def _death(self) -> str:
        self.process.join(timeout=30)
        return exit_reason(self.process.exitcode)

    def stop(self) -> None:
        """Ask it to quit; kill it if it does not within a few seconds."""
        if self.process.is_alive():
            with contextlib.suppress(OSError):  # it may be gone already (BrokenPipeError is an OSError)
                self.connection.send({"op": "quit"})
            self.process.join(timeout=5)
        if self.process.is_alive():
            self.process.kill()
            self.process.join()
        self.connection.close()


def run_once(case: Case, settings: Settings, time_limit_s: float, op: str, **args) -> dict:
    """One request in a fresh case process (a profile, say): its answer, or ``{"error": why}``
    when the process crashed, hung or raised."""
    process = CaseProcess(case, settings, time_limit_s)
    try:
        return process.ask(op, **args)
    except CaseDied as died:
        return {"error": str(died)}
    finally:
        process.stop()


def _artifact_dict(artifact) -> dict | None:
    """An export.Artifact (or None) as the replies carry it."""
    return artifact.describe() if artifact is not None else None


class CaseWorker:
    """What runs inside the case's process. Its replies are plain JSON-able dicts, built here
    from the backend's typed values; the sweep reads them by key."""

    def __init__(self, case: Case, settings: Settings, preloaded: bool = False) -> None:
        self.case, self.settings = case, settings
        self.preloaded = preloaded  # torch came with the process (forked from the preloaded server)
        self.resources = ExitStack()
        self.loaded = None
        self.block_n = 1
        self.block_s = 0.1

    def hello(self) -> dict:
        return {"pid": os.getpid(), "torch_preloaded": self.preloaded}

    def load(self, block_s: float, block_n: int | None = None) -> dict:
        """Build (or read from the cache), export, prepare and warm up; the inferences that fill
        a block come from the warm-up's times, or as ``block_n`` from the case's first lifetime."""
        from ..backends import CaseSkipped

        try:
            self.loaded = self.resources.enter_context(open_case(self.case, self.settings))
        except CaseSkipped as skip:
            return {"skipped": str(skip), "exported": skip.exported, "artifact": _artifact_dict(skip.artifact),
                    "model": skip.model}
        session = self.loaded.session
        warm = warm_up(session.run, self.settings.plan)
        inference_s = None
        if self.case.mode != "throughput":  # server mode: what one inference takes starts its search
            sized, inference_s = block_size(warm, block_s)
            self.block_n = block_n or sized
        if self.case.streams > 1:  # every stream warmed, not only the first
            from ..measure.server import closed_loop

            closed_loop(self.loaded.runners(), self.settings.plan.warmup_s, 3 * self.case.streams)
        self.block_s = block_s
        if session.device_timer:
            session.device_timer.reset()
        loaded = self.loaded
        # what ran and its output (after the warm-up) come now too, so that a sweep stopped
        # before this process's end still reports them
        return {"block_n": self.block_n, "inference_s": inference_s, "cold_start": loaded.cold_start().to_dict(),
                "state_reused": loaded.state_reused,
                "model": loaded.model_record().to_dict(),
                "artifact": _artifact_dict(loaded.artifact), "rss_before_load_mb": loaded.rss_before_mb,
                "rss_after_load_mb": loaded.rss_loaded_mb, "peak_reset": loaded.peak_reset, **self.finish()}

    def block(self) -> dict:
        """One block: an untimed inference (the process has been idle while the others ran:
        its caches and threads are cold; its first inference is slower than the rest), then
        ``block_n`` timed ones (latency), or a full queue for ``block_s`` (throughput)."""
        session = self.loaded.session
        if self.case.mode == "latency":
            session.run()
            timer = session.device_timer
            plan = TimingPlan(warmup_s=0, warmup_iters=0, min_duration_s=0, min_iters=self.block_n)
            before = len(timer.samples) if timer else 0
            samples, wall = measure(session.run, plan, after=timer.collect if timer else None)
            return {"samples_ms": samples, "wall_s": wall, "completed": len(samples),
                    "device_ms": timer.samples[before:] if timer else None}
        from ..backends import get_backend

        case = self.case
        if case.streams == 1 or get_backend(case.backend).native_streams:
            session.run()  # untimed, as before a latency block: the process has been idle
            plan = TimingPlan(warmup_s=0, warmup_iters=0, min_duration_s=self.block_s, min_iters=1)
            completed, wall, concurrency = session.throughput(plan)
        else:
            from ..measure.server import closed_loop

            runners = self.loaded.runners()
            closed_loop(runners, 0.0, case.streams)  # one untimed inference per stream first
            completed, wall = closed_loop(runners, self.block_s, case.streams)
            concurrency = {"streams": case.streams, "requests": case.streams}
        return {"completed": completed, "wall_s": wall,
                "concurrency": {**concurrency, "threads_per_stream": case.threads_per_stream}}

    def serve(self, arrivals: list[float]) -> dict:
        """The server scenario on these arrival times (seconds from its start): each stream a
        worker; each request's start and end."""
        import numpy as np

        from ..measure.server import serve

        runs = self.loaded.runners()
        served = serve(lambda worker: runs[worker](), np.asarray(arrivals), workers=len(runs))
        return {"starts": served.starts.tolist(), "ends": served.ends.tolist()}

    def evaluation(self) -> dict:
        """In a process of its own: INT8 parity (and top-1 on a labelled folder) on the
        evaluation inputs (run/evaluation.py); an error where the backend cannot run other inputs."""
        from .evaluation import evaluate_case

        try:
            return evaluate_case(self.case, self.settings)
        except NotImplementedError as exc:
            return {"error": str(exc)}

    def finish(self) -> dict:
        """What ran, its output against the reference, and the memory it took."""
        from ..measure.parity import parity

        session = self.loaded.session
        description, gpu_memory = session.describe(), session.gpu_memory()
        return {"backend": description.to_dict(), "precision_effective": description.precision_effective,
                "parity": parity(session.output(), self.loaded.expected),
                **({"quantization": description.quantization} if description.quantization else {}),
                "peak_rss_mb": peak_rss_mb(), "gpu_memory": gpu_memory.to_dict() if gpu_memory else None}

    def profile(self, iterations: int) -> dict:
        from .profile import profile_case

        return profile_case(self.case, self.settings, iterations)

    def close(self) -> None:
        self.resources.close()


def serve(connection, case_data: dict, settings_data: dict, environment: dict | None = None) -> None:
    """Process entry point: answer the parent's requests until it says quit or goes away."""
    signal.signal(signal.SIGINT, signal.SIG_IGN)  # Ctrl-C is the parent's to handle
    for name, value in (environment or {}).items():
        if value is None:
            os.environ.pop(name, None)
        else:
            os.environ[name] = value
    worker = CaseWorker(Case.from_dict(case_data), Settings.from_dict(settings_data), "torch" in sys.modules)
    try:
        while True:
            try:
                request = connection.recv()
            except (EOFError, OSError):
                break
            op = request.pop("op")
            if op == "quit":
                break
            try:
                reply = getattr(worker, op)(**request)
            except MemoryError as exc:
                reply = {"error": f"out of memory ({exc or 'MemoryError'})"}
            except Exception as exc:  # the case failed; the sweep goes on
                reply = {"error": f"{type(exc).__name__}: {exc}", "traceback": traceback.format_exc(limit=-3)}
            connection.send(reply)
    finally:
        worker.close()
        connection.close()
        sys.stdout.flush()
