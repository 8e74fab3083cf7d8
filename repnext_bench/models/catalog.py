"""The figures behind ``repnext-bench variants``: computed counts beside the paper's."""
from __future__ import annotations

from dataclasses import asdict, dataclass

import torch

from . import FORMS, RepNeXt, Variant, convert
from .counting import count

PAPER_RESOLUTION = 224


@dataclass(frozen=True)
class FormCounts:
    variant: str
    form: str
    params: int
    macs: int
    resolution: int
    matches_paper: bool | None  # None when the paper has no figure at this resolution

    def to_dict(self) -> dict:
        return asdict(self)


def _rounded(value: float) -> str:
    return f"{value:.1f}"


def matches_paper(variant: Variant, params: int, macs: int) -> bool:
    """The paper rounds params to 0.1 M and MACs to 0.1 G."""
    return (_rounded(params / 1e6), _rounded(macs / 1e9)) == (
        _rounded(variant.paper.params_m),
        _rounded(variant.paper.macs_g),
    )


def form_counts(variant: Variant, resolution: int = PAPER_RESOLUTION) -> dict[str, FormCounts]:
    """Params and MACs of every form of ``variant`` (1000 classes) at ``resolution``, counted on
    the meta device: shapes only, so no weights are initialised and no arithmetic is done."""
    with torch.device("meta"):
        model = RepNeXt(variant).eval()
    result = {}
    for form in FORMS:
        model = convert(model, form, inplace=True)
        counts = count(model, resolution)
        match = matches_paper(variant, counts.params, counts.macs) if resolution == PAPER_RESOLUTION else None
        result[form] = FormCounts(variant.name, form, counts.params, counts.macs, resolution, match)
    return result
