"""The RepNeXt family in plain PyTorch.

The names are loaded on first use, so that reading the variant files (``parse_variants``,
``get_variant``) does not import torch.
"""
from __future__ import annotations

import importlib
from typing import Any

_NAMES = {
    "CheckpointError": "checkpoint", "load_checkpoint": "checkpoint",
    "FORMS": "registry", "RepNeXt": "network", "convert": "network", "create_model": "network",
    "reparameterize": "network",
    "Variant": "registry", "VariantError": "registry", "all_variants": "registry", "get_variant": "registry",
    "parse_variants": "registry",
}

__all__ = sorted(_NAMES)


def __getattr__(name: str) -> Any:
    if name in _NAMES:
        return getattr(importlib.import_module(f"{__name__}.{_NAMES[name]}"), name)
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
