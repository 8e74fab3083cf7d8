"""Resident memory of the current process (Linux /proc, with a getrusage fallback)."""
from __future__ import annotations

import resource
import sys
from pathlib import Path

_STATUS = Path("/proc/self/status")


def _status_kib(field: str) -> int | None:
    try:
        for line in _STATUS.read_text().splitlines():
            if line.startswith(field + ":"):
                return int(line.split()[1])
    except OSError:
        return None
    return None


def current_rss_mb() -> float:
    kib = _status_kib("VmRSS")
    return kib / 1024 if kib is not None else peak_rss_mb()


def peak_rss_mb() -> float:
    kib = _status_kib("VmHWM")
    if kib is not None:
        return kib / 1024
    peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    return peak / (1024 * 1024) if sys.platform == "darwin" else peak / 1024


def reset_peak() -> bool:
    """Start a new high-water mark for the resident set (Linux: ``5`` into clear_refs).

    Returns False where the kernel does not allow it; the peak then covers the whole process.
    """
    try:
        Path("/proc/self/clear_refs").write_text("5")
    except OSError:
        return False
    return True
