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

from .. import __version__
from . import machine

LIBRARIES = ("torch", "onnxruntime", "onnxruntime-gpu", "openvino", "tensorrt", "coremltools", "numpy", "onnx",
             "typer", "rich", "nncf")


def installed_versions(names, missing: bool = False) -> dict[str, str | None]:
    """The installed version of each distribution in ``names``; one that is not installed is
    left out, or None with ``missing`` (a gate arm says which of its libraries it lacks)."""
    found: dict[str, str | None] = {}
    for name in names:
        try:
            found[name] = version(name)
        except PackageNotFoundError:
            if missing:
                found[name] = None
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
    root = Path(__file__).resolve().parents[2]  # the checkout: repnext_bench/system/environment.py
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
    cpu = machine.cpu()
    return {
        "hostname": socket.gethostname(),
        "cpu": {
            **cpu,
            "logical_cores": os.cpu_count(),
            "physical_cores": machine.physical_cores(),
            "usable_cores": machine.usable_cores(),
        },
        "memory_gib": machine.memory_gib(),
        "os": platform.platform(),
        "python": platform.python_version(),
        "libraries": installed_versions(LIBRARIES),
        "gpus": _gpus(),
        "project": {"name": "repnext-bench", "version": __version__, "git": _git_commit()},
        "command": shlex.join(argv if argv is not None else ["repnext-bench", *sys.argv[1:]]),
    }
