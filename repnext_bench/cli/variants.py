"""``repnext-bench variants``: params and MACs of each variant and form, beside the paper's figures."""
from __future__ import annotations

import json

from rich.markup import escape

from . import options as o
from . import validators as v
from .common import console, err_console


def variants(selector: o.Variants = "all", resolution: o.Resolution = "224", as_json: o.Json = False) -> None:
    """List the variants: params and MACs of each form, beside the paper's figures."""
    from ..models import get_variant

    chosen = [get_variant(name) for name in v.variant_names(selector)]
    side = v.resolution(resolution)
    rows = _count(chosen, side)
    if as_json:
        records = [{**c.to_dict(), "paper": vars(variant.paper)} for variant, counts in rows for c in counts.values()]
        console.out(json.dumps(records, indent=2))
        return
    from ..report.variants import variants_notes, variants_table

    console.print(variants_table(rows, side))
    for note in variants_notes(rows):
        console.print(f"[yellow]note:[/] {escape(note)}")


def _count(chosen: list, resolution: int) -> list[tuple]:
    """(variant, its counts per form) for each variant; counting needs torch."""
    from ..models.catalog import form_counts

    rows = []
    with err_console.status("counting parameters and MACs") as status:
        for variant in chosen:
            status.update(f"counting parameters and MACs: {variant.name}")
            rows.append((variant, form_counts(variant, resolution)))
    return rows
