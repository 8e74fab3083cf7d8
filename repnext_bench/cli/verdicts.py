"""How gate and compare show their verdicts: a table (or JSON), notes, and Markdown for CI."""
from __future__ import annotations

from pathlib import Path

from rich.markup import escape

from .common import console


def emit(record: dict, rows: list[dict], title: str, notes: list[str], path: Path | None,
         markdown_path: Path | None, as_json: bool) -> None:
    """Print ``record`` as JSON, or the verdicts' table and the notes the table does not show
    (the first ``len(rows)`` notes are the rows' reasons); write the Markdown when asked."""
    from ..report.comparison_view import markdown, verdict_table

    if markdown_path:
        markdown_path.write_text(markdown(rows, title, notes))
    if as_json:
        from ..report.schema import to_json

        console.out(to_json(record))
        return
    console.print(verdict_table(rows, title))
    for note in notes[len(rows):]:
        console.print(escape(note), highlight=False)
    if path:
        console.print(f"record: {path}")
