"""Where repnext-bench keeps what it makes (exports, case states, machine facts): one folder
per user, or the one ``$REPNEXT_BENCH_CACHE`` names."""
from __future__ import annotations

import os
from pathlib import Path

CACHE_ENV = "REPNEXT_BENCH_CACHE"


def default_cache_dir() -> Path:
    if os.environ.get(CACHE_ENV):
        return Path(os.environ[CACHE_ENV]).expanduser()
    base = os.environ.get("XDG_CACHE_HOME") or Path.home() / ".cache"
    return Path(base) / "repnext-bench"
