"""repnext-bench: benchmark and profiling suite for the RepNeXt family.

The public API is imported lazily so that the command line starts without importing torch.
"""
from __future__ import annotations

import importlib
from typing import Any

__version__ = "0.1.0"

_PUBLIC = {
    "create_model": "repnext_bench.models",
    "reparameterize": "repnext_bench.models",
    "convert": "repnext_bench.models",
    "load_checkpoint": "repnext_bench.models",
    "CheckpointError": "repnext_bench.models",
    "RepNeXt": "repnext_bench.models",
    "FORMS": "repnext_bench.models",
    "Variant": "repnext_bench.models",
    "VariantError": "repnext_bench.models",
    "all_variants": "repnext_bench.models",
    "get_variant": "repnext_bench.models",
    "parse_variants": "repnext_bench.models",
    "count": "repnext_bench.models.counting",
    "count_params": "repnext_bench.models.counting",
}

__all__ = ["__version__", *_PUBLIC]


def __getattr__(name: str) -> Any:
    if name in _PUBLIC:
        return getattr(importlib.import_module(_PUBLIC[name]), name)
    raise AttributeError(f"module 'repnext_bench' has no attribute {name!r}")
