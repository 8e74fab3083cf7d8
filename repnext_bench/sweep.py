"""Runs cases, each in a fresh worker process, and hands every finished result on at once.

The parent sleeps in ``multiprocessing.connection.wait`` on the worker's pipe and process
sentinel, with the per-case time limit as its timeout: it never spins (on a 2-core machine
a busy parent would steal a core from the measurement).
"""
from __future__ import annotations

import multiprocessing
import signal
import time
from collections.abc import Callable, Iterator
from multiprocessing.connection import wait
from pathlib import Path

from .backends import availability, case_problem
from .cases import Case
from .report.schema import write_report
from .worker import Settings, worker_main

# by name: Windows has no SIGKILL or SIGBUS
_SIGNALS = {
    "SIGSEGV": "crashed with a segmentation fault (SIGSEGV)",
    "SIGKILL": "was killed by SIGKILL (most likely the kernel's out-of-memory killer)",
    "SIGABRT": "aborted (SIGABRT)",
    "SIGBUS": "crashed with a bus error (SIGBUS)",
    "SIGILL": "crashed on an illegal instruction (SIGILL)",
}


def _record(case: Case, status: str, error: str) -> dict:
    return {"case": case.to_dict(), "status": status, "error": error}


# Windows ends a crashed process with its NTSTATUS code rather than a signal
_WINDOWS_CRASHES = {0xC0000005: "crashed with an access violation (0xC0000005)",
                    0xC00000FD: "crashed with a stack overflow (0xC00000FD)",
                    0xC0000409: "aborted (0xC0000409)"}


def _exit_reason(exitcode: int | None) -> str:
    if exitcode in _WINDOWS_CRASHES:
        return f"the worker {_WINDOWS_CRASHES[exitcode]}"
    if exitcode is not None and exitcode < 0:
        try:
            name = signal.Signals(-exitcode).name
        except ValueError:
            name = f"signal {-exitcode}"
        return f"the worker {_SIGNALS.get(name, f'was killed by {name}')}"
    return f"the worker exited with code {exitcode} before sending a result"


def run_in_worker(case: Case, settings: Settings, time_limit_s: float, job: str = "measure",
                  job_args: dict | None = None) -> dict:
    """Measure (or profile) one case in a fresh spawned process; a crash or time-out becomes a
    failed record."""
    context = multiprocessing.get_context("spawn")
    receiver, sender = context.Pipe(duplex=False)
    process = context.Process(target=worker_main, daemon=True,
                              args=(case.to_dict(), settings.to_dict(), sender, job, job_args))
    started = time.monotonic()
    process.start()
    sender.close()
    try:
        ready = wait([receiver, process.sentinel], timeout=time_limit_s)
        if receiver in ready:
            try:
                result = receiver.recv()
            except EOFError:  # the pipe closed without a result: the process died
                process.join()
                return _record(case, "failed", _exit_reason(process.exitcode))
            process.join(timeout=30)
            result["worker_wall_s"] = time.monotonic() - started
            return result
        if not ready:
            return _record(case, "failed", f"exceeded the per-case time limit of {time_limit_s:g} s and was stopped")
        process.join()
        return _record(case, "failed", _exit_reason(process.exitcode))
    finally:
        if process.is_alive():
            process.kill()
            process.join()
        receiver.close()


def precheck(case: Case, cache: dict) -> dict | None:
    """A record for a case that needs no worker: an unavailable backend or device, or an
    unsupported option."""
    if case.backend not in cache:
        cache[case.backend] = availability(case.backend)
    problem = case_problem(case, cache[case.backend])
    return _record(case, *problem) if problem else None


def run_cases(cases: list[Case], settings: Settings, time_limit_s: float,
              on_start: Callable[[int, Case], None] | None = None) -> Iterator[dict]:
    """Yield each case's result record as soon as it is known, in order."""
    availability_cache: dict = {}
    for index, case in enumerate(cases):
        if on_start:
            on_start(index, case)
        yield precheck(case, availability_cache) or run_in_worker(case, settings, time_limit_s)


def run_sweep(cases: list[Case], settings: Settings, time_limit_s: float, report: dict, path: Path,
              on_start: Callable[[int, Case], None] | None = None,
              on_result: Callable[[dict], None] | None = None,
              render: Callable[[dict], dict] | None = None) -> dict:
    """Run every case into ``report``, rewriting ``path`` atomically after each one (as
    ``render(report)`` when given, e.g. in another tool's layout).

    On Ctrl-C the running worker is stopped, the report is written with what finished and
    marked interrupted, and KeyboardInterrupt goes on to the caller.
    """
    def save() -> None:
        write_report(render(report) if render else report, path)

    report["sweep"] = {"planned": len(cases), "finished": 0, "interrupted": False}
    save()
    try:
        for result in run_cases(cases, settings, time_limit_s, on_start):
            report["results"].append(result)
            report["sweep"]["finished"] += 1
            save()
            if on_result:
                on_result(result)
    except KeyboardInterrupt:
        report["sweep"]["interrupted"] = True
        save()
        raise
    return report
