"""Resident memory of the current process, on Linux, macOS and Windows.

The current resident set comes from psutil everywhere. The peak is the OS's high-water mark:
on Linux the kernel's resettable one (``VmHWM``, reset by writing ``5`` to ``clear_refs``, which
no library exposes), so that the peak can start at the model load; on Windows the peak working
set (psutil); on macOS and wherever ``/proc`` is missing, ``getrusage``'s maximum resident set,
which covers the whole process.
"""
from __future__ import annotations

import sys
from pathlib import Path

_STATUS = Path("/proc/self/status")
_CLEAR_REFS = Path("/proc/self/clear_refs")


def _linux_peak_kib() -> int | None:
    try:
        for line in _STATUS.read_text().splitlines():
            if line.startswith("VmHWM:"):
                return int(line.split()[1])
    except (OSError, ValueError, IndexError):
        return None
    return None


def current_rss_mb() -> float:
    try:
        import psutil

        return psutil.Process().memory_info().rss / 1024**2
    except (ImportError, OSError):
        return peak_rss_mb()


def peak_rss_mb() -> float:
    kib = _linux_peak_kib()
    if kib is not None:
        return kib / 1024
    if sys.platform == "win32":
        import psutil

        return psutil.Process().memory_info().peak_wset / 1024**2
    import resource

    peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss  # bytes on macOS, KiB elsewhere
    return peak / 1024**2 if sys.platform == "darwin" else peak / 1024


def reset_peak() -> bool:
    """Start a new high-water mark for the resident set (Linux only).

    Returns False where the OS does not allow it; the peak then covers the whole process.
    """
    if _linux_peak_kib() is None:
        return False
    try:
        _CLEAR_REFS.write_text("5")
    except OSError:
        return False
    return True
