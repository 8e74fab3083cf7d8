"""``repnext-bench env``: the environment fingerprint that every report carries."""
from __future__ import annotations

import json

from rich import box
from rich.markup import escape
from rich.table import Table

from . import options as o
from .common import command_line, console


def env(as_json: o.Json = False) -> None:
    """The environment fingerprint that every report carries."""
    from ..system.environment import fingerprint

    data = fingerprint(command_line())
    if as_json:
        console.out(json.dumps(data, indent=2))
        return
    table = Table(title="Environment", box=box.SIMPLE_HEAVY, show_header=False)
    table.add_column("key", style="bold")
    table.add_column("value")
    for key, value in data.items():
        if isinstance(value, dict):
            value = ", ".join(f"{k}: {v}" for k, v in value.items())
        elif isinstance(value, list):
            value = ", ".join(map(str, value)) or "none"
        table.add_row(key, escape(str(value)))
    console.print(table)
