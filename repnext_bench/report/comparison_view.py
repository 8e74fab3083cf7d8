"""Verdict tables of ``gate`` and ``compare``: rich for the terminal, Markdown for a CI job
summary (GitHub renders ``$GITHUB_STEP_SUMMARY``)."""
from __future__ import annotations

from rich import box
from rich.markup import escape
from rich.table import Table

from .results import format_ms

VERDICT_STYLE = {"pass": "green", "improved": "cyan", "fail": "bold red", "inconclusive": "yellow"}
_HEADERS = ("case", "baseline ms", "candidate ms", "change (95% CI)", "verdict")


def change_text(estimate: dict) -> str:
    return f"{estimate['change']:+.1%} ({estimate['ci_low']:+.1%} to {estimate['ci_high']:+.1%})"


def _cells(row: dict) -> list[str]:
    return [row["case"], format_ms(row["baseline_ms"]), format_ms(row["candidate_ms"]),
            change_text(row["estimate"]), row["verdict"]]


def verdict_table(rows: list[dict], title: str) -> Table:
    table = Table(title=title, box=box.SIMPLE_HEAVY)
    for header in _HEADERS:
        table.add_column(header, justify="right" if header.endswith("ms") else "left")
    for row in rows:
        cells = [escape(c) for c in _cells(row)]
        cells[-1] = f"[{VERDICT_STYLE[row['verdict']]}]{cells[-1]}[/]"
        table.add_row(*cells)
    return table


def markdown(rows: list[dict], title: str, notes: list[str]) -> str:
    icons = {"pass": "✅", "improved": "🚀", "fail": "❌", "inconclusive": "⚠️"}
    lines = [f"### {title}", "", "| " + " | ".join(_HEADERS) + " |", "|" + "---|" * len(_HEADERS)]
    for row in rows:
        cells = _cells(row)
        cells[-1] = f"{icons[row['verdict']]} {cells[-1]}"
        lines.append("| " + " | ".join(c.replace("|", "\\|") for c in cells) + " |")
    lines.append("")
    lines.extend(f"- {note}" for note in notes)
    return "\n".join(lines) + "\n"
