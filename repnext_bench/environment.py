"""The environment fingerprint every report carries: what machine and software measured it."""
from __future__ import annotations

import os
import platform
import shlex
import shutil
import socket
import subprocess
import sys
from importlib.metadata import PackageNotFoundError, version
from pathlib import Path

from . import __version__

LIBRARIES = ("torch", "onnxruntime", "onnxruntime-gpu", "openvino", "tensorrt", "coremltools", "numpy", "onnx",
             "typer", "rich")
# the CPU features that decide which kernels and precisions the runtimes pick
CPU_FEATURES = ("avx2", "fma", "avx512f", "avx512_vnni", "avx512_bf16", "avx512_fp16", "amx_tile", "amx_bf16",
                "amx_int8", "amx_fp16", "neon", "asimd")


def _cpuinfo() -> dict[str, str | set[str]]:
    info: dict[str, str | set[str]] = {"model": platform.processor() or platform.machine(), "flags": set()}
    try:
        text = Path("/proc/cpuinfo").read_text()
    except OSError:
        return info
    cores = set()
    physical = ""
    for line in text.splitlines():
        key, _, value = (part.strip() for part in line.partition(":"))
        if key == "model name":
            info["model"] = value
        elif key in ("flags", "Features"):
            info["flags"] = set(value.split())
        elif key == "physical id":
            physical = value
        elif key == "core id":
            cores.add((physical, value))
    info["physical_cores"] = str(len(cores)) if cores else ""
    return info


def _memory_gib() -> float | None:
    try:
        for line in Path("/proc/meminfo").read_text().splitlines():
            if line.startswith("MemTotal:"):
                return round(int(line.split()[1]) / 1024**2, 1)
    except OSError:
        return None
    return None


def _library_versions() -> dict[str, str]:
    found = {}
    for name in LIBRARIES:
        try:
            found[name] = version(name)
        except PackageNotFoundError:
            continue
    return found


def _gpus() -> list[dict[str, str]]:
    if not shutil.which("nvidia-smi"):
        return []
    try:
        out = subprocess.run(
            ["nvidia-smi", "--query-gpu=name,driver_version,memory.total", "--format=csv,noheader"],
            capture_output=True, text=True, timeout=10, check=True,
        ).stdout
    except (OSError, subprocess.SubprocessError):
        return []
    gpus = []
    for line in out.strip().splitlines():
        name, driver, memory = (p.strip() for p in line.split(","))
        gpus.append({"name": name, "driver": driver, "memory": memory})
    return gpus


def _git_commit() -> dict[str, str | bool] | None:
    root = Path(__file__).resolve().parent.parent
    if not (root / ".git").exists() or not shutil.which("git"):
        return None
    try:
        commit = subprocess.run(["git", "-C", str(root), "rev-parse", "HEAD"], capture_output=True, text=True,
                                timeout=10, check=True).stdout.strip()
        dirty = subprocess.run(["git", "-C", str(root), "status", "--porcelain", "--untracked-files=no"],
                               capture_output=True, text=True, timeout=10, check=True).stdout.strip()
    except (OSError, subprocess.SubprocessError):
        return None
    return {"commit": commit, "dirty": bool(dirty)}


def fingerprint(argv: list[str] | None = None) -> dict:
    """Everything about this machine and software that a measurement depends on."""
    cpu = _cpuinfo()
    flags = cpu["flags"]
    assert isinstance(flags, set)
    try:
        usable = len(os.sched_getaffinity(0))
    except AttributeError:  # not on Linux
        usable = os.cpu_count() or 0
    return {
        "hostname": socket.gethostname(),
        "cpu": {
            "model": cpu["model"],
            "architecture": platform.machine(),
            "logical_cores": os.cpu_count(),
            "physical_cores": int(cpu["physical_cores"]) if cpu.get("physical_cores") else None,
            "usable_cores": usable,
            "features": sorted(f for f in CPU_FEATURES if f in flags),
        },
        "memory_gib": _memory_gib(),
        "os": platform.platform(),
        "python": platform.python_version(),
        "libraries": _library_versions(),
        "gpus": _gpus(),
        "project": {"name": "repnext-bench", "version": __version__, "git": _git_commit()},
        "command": shlex.join(argv if argv is not None else ["repnext-bench", *sys.argv[1:]]),
    }
