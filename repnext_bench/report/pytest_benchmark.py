"""A ``run`` report in pytest-benchmark's JSON layout, so that ``pytest-benchmark compare``
(and anything else that reads its files) can read our results.

The statistics are computed by pytest-benchmark's own ``Stats`` class from the raw
per-inference samples (in seconds, its unit), so every field means what it means there.
"""
from __future__ import annotations

from ..core.records import Result, read_results


def _machine_info(environment: dict) -> dict:
    cpu = environment.get("cpu", {})
    os_text = environment.get("os", "")
    return {
        "node": environment.get("hostname"),
        "processor": cpu.get("model"),
        "machine": cpu.get("architecture"),
        "python_compiler": None,
        "python_implementation": "CPython",
        "python_implementation_version": environment.get("python"),
        "python_version": environment.get("python"),
        "python_build": None,
        "release": os_text.split("-")[1] if os_text.count("-") else None,
        "system": os_text.split("-")[0] if os_text else None,
        "cpu": {"brand_raw": cpu.get("model"), "arch": cpu.get("architecture"), "count": cpu.get("logical_cores"),
                "flags": cpu.get("features", [])},
        "repnext_bench_environment": environment,
    }


def _commit_info(environment: dict) -> dict:
    git = (environment.get("project") or {}).get("git") or {}
    return {"id": git.get("commit") or "unversioned", "time": None, "author_time": None,
            "dirty": bool(git.get("dirty")), "project": "repnext-bench", "branch": git.get("branch", "(unknown)")}


def benchmark_entry(result: Result, options: dict) -> dict:
    """One ``ok`` latency result as a pytest-benchmark ``benchmarks[]`` entry."""
    from pytest_benchmark.stats import Stats

    case = result.case
    stats = Stats()
    for sample_ms in result.samples:
        stats.update(sample_ms / 1e3)
    param = (f"{case.variant}-{case.form}-{case.backend}-{case.device}-{case.precision}-b{case.batch}-"
             f"{case.resolution}px-t{case.threads}")
    name = f"repnext[{param}]"
    return {
        "group": f"{case.variant} {case.backend} b{case.batch} {case.resolution}px",
        "name": name,
        "fullname": f"repnext-bench::{name}",
        "params": {"case": param},
        "param": param,
        "extra_info": {"case": case.to_dict(), "precision_effective": result.precision_effective,
                       "parity": result.parity.to_dict() if result.parity else None,
                       "throughput_ips": result.throughput_ips,
                       "memory": result.memory.to_dict() if result.memory else None},
        "options": options,
        "stats": {**stats.as_dict(), "data": stats.data, "iterations": 1},
    }


def to_pytest_benchmark(report: dict) -> dict:
    from pytest_benchmark import __version__

    plan = (report.get("config") or {}).get("settings", {}).get("plan", {})
    options = {"disable_gc": False, "timer": "perf_counter", "min_rounds": plan.get("min_iters"),
               "max_time": plan.get("min_duration_s"), "min_time": None, "warmup": bool(plan.get("warmup_s"))}
    return {
        "machine_info": _machine_info(report["environment"]),
        "commit_info": _commit_info(report["environment"]),
        "benchmarks": [benchmark_entry(r, options) for r in read_results(report["results"])
                       if r.ok and r.samples and r.case.mode == "latency"],  # a server's latencies include queueing
        "datetime": report["created"],
        "version": __version__,
    }
