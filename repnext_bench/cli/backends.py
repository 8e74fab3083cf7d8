"""``repnext-bench backends``: which backends run here, on which devices, and how to get the rest."""
from __future__ import annotations

import json

from rich import box
from rich.markup import escape
from rich.table import Table

from . import options as o
from .common import console


def backends(as_json: o.Json = False) -> None:
    """Each backend: available or not and why, its version, the devices it can use here, and
    the install line for what is missing."""
    from ..backends import availability, backend_names

    infos = [availability(name) for name in backend_names()]
    if as_json:
        console.out(json.dumps([i.to_dict() for i in infos], indent=2))
        return
    table = Table(title="Backends", box=box.SIMPLE_HEAVY)
    for header in ("backend", "available", "version", "devices", "notes"):
        table.add_column(header)
    for info in infos:
        table.add_row(info.name, "[green]yes[/]" if info.available else "[red]no[/]", info.version or "",
                      ", ".join(info.devices), escape(_notes(info)))
    console.print(table)


def _notes(info) -> str:
    problems = [info.reason] if not info.available else [f"{d}: {why}" for d, why in info.unusable.items()]
    notes = "; ".join(filter(None, [*problems, info.note]))
    if problems and info.install:
        notes += f"; install: {info.install}"
    return notes
