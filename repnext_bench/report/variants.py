"""The ``variants`` table: computed parameter/MAC counts beside the paper's figures."""
from __future__ import annotations

from rich import box
from rich.table import Table

from ..models import Variant
from ..models.catalog import FormCounts


def _match_cell(counts: dict[str, FormCounts]) -> str:
    fused, official = counts["fused"], counts["official"]
    if fused.matches_paper is None:
        return "[dim]n/a[/]"
    if fused.matches_paper:
        return "[green]yes[/]"
    if official.matches_paper:
        return "[yellow]official form[/]"
    return "[red]no[/]"


def variants_table(rows: list[tuple[Variant, dict[str, FormCounts]]], resolution: int) -> Table:
    table = Table(
        title=f"RepNeXt variants: params and MACs at {resolution}x{resolution}, 1000 classes",
        box=box.SIMPLE_HEAVY,
    )
    for header, justify in [
        ("variant", "left"), ("mixer", "left"), ("params\ntrain", "right"), ("params\nfused", "right"),
        ("MACs\ntrain", "right"), ("MACs\nfused", "right"), ("paper\nparams", "right"), ("paper\nMACs", "right"),
        ("paper\niPhone 12", "right"), ("paper top-1\ndistill/plain", "right"), ("matches\npaper", "left"),
    ]:
        table.add_column(header, justify=justify, no_wrap=True)
    for variant, counts in rows:
        paper = variant.paper
        table.add_row(
            variant.name,
            "RepNeXt" if variant.token_mixer == "repnext" else "E",
            f"{counts['train'].params / 1e6:.3f}M",
            f"{counts['fused'].params / 1e6:.3f}M",
            f"{counts['train'].macs / 1e9:.3f}G",
            f"{counts['fused'].macs / 1e9:.3f}G",
            f"{paper.params_m:.1f}M",
            f"{paper.macs_g:.1f}G",
            f"{paper.iphone12_latency_ms:.2f} ms",
            f"{paper.top1_distilled:.1f} / {paper.top1_plain:.1f}",
            _match_cell(counts),
        )
    return table


def variants_notes(rows: list[tuple[Variant, dict[str, FormCounts]]]) -> list[str]:
    """One line per variant whose fully fused counts differ from the paper's."""
    notes = []
    for variant, counts in rows:
        fused, official = counts["fused"], counts["official"]
        if fused.matches_paper is False:
            why = (
                f"the official form (block BatchNorms kept) has {official.params / 1e6:.3f}M params, "
                "which matches: the paper counted that form"
                if official.matches_paper
                else "no form matches"
            )
            notes.append(
                f"{variant.name}: fused {fused.params / 1e6:.3f}M params / {fused.macs / 1e9:.3f}G MACs vs the paper's "
                f"{variant.paper.params_m:.1f}M / {variant.paper.macs_g:.1f}G; {why}."
            )
    return notes
