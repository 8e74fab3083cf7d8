"""The RepNeXt family in plain PyTorch."""
from .checkpoint import CheckpointError, load_checkpoint
from .network import FORMS, RepNeXt, convert, create_model, reparameterize
from .registry import Variant, VariantError, all_variants, get_variant, parse_variants

__all__ = [
    "CheckpointError", "FORMS", "RepNeXt", "Variant", "convert", "VariantError", "all_variants", "create_model", "get_variant", "load_checkpoint",
    "parse_variants", "reparameterize",
]
