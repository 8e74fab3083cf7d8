"""What the commands share: the consoles, usage errors and the parsing of common options."""
from __future__ import annotations

import os
import sys
import tempfile
from datetime import datetime, timezone
from pathlib import Path

import typer
from rich.console import Console

from .machine import usable_cores  # noqa: F401  (re-exported for the commands)

# Piped into a file or another program, rich would wrap tables at 80 columns; use a width
# that fits the widest table instead (COLUMNS still wins when set).
_PIPE_WIDTH = None if sys.stdout.isatty() or "COLUMNS" in os.environ else 160
console = Console(width=_PIPE_WIDTH)
err_console = Console(stderr=True, width=None if sys.stderr.isatty() or "COLUMNS" in os.environ else 160)
ARGV: list[str] = []  # the arguments of this invocation, recorded in reports (set by cli.main)


# Typer vendors click in recent releases and depends on it in older ones: find its
# exception classes through a public one rather than importing either click.
ClickException = next(c for c in typer.BadParameter.__mro__ if c.__name__ == "ClickException")
UsageError = next(c for c in typer.BadParameter.__mro__ if c.__name__ == "UsageError")


class UsageProblem(UsageError):
    """Bad input from the user: one line on stderr, exit code 2."""


def parse_percent(text: str, name: str) -> float:
    """``"5"`` or ``"5%"`` -> 0.05, or a usage error naming the option."""
    try:
        value = float(text.strip().rstrip("%"))
    except ValueError:
        raise UsageProblem(f"{name} {text!r} is not a percentage (e.g. 5 or 5%)") from None
    return value / 100


def parse_option(parser, *args, **kwargs):
    """Run a parser from cases.py, turning its ValueError into a usage error."""
    try:
        return parser(*args, **kwargs)
    except ValueError as exc:
        raise UsageProblem(str(exc)) from exc


def parse_backends(text: str, devices: str = "") -> list[tuple[str, str]]:
    """``--backend`` (and ``--device``) -> (backend, device) pairs. Without ``--device`` each
    backend runs on its default device; with it, each backend takes the listed devices it
    supports, and a backend that supports none of them (or a device no backend takes) is an error."""
    from .backends import backend_names, get_backend
    from .cases import parse_choices

    chosen = [get_backend(name) for name in parse_option(parse_choices, text, "--backend", tuple(backend_names()))]
    if not devices:
        return [(backend.name, backend.device) for backend in chosen]
    known = tuple(dict.fromkeys(d for backend in chosen for d in backend.devices))
    wanted = parse_option(parse_choices, devices, "--device", known)
    pairs = []
    for backend in chosen:
        mine = [d for d in wanted if d in backend.devices]
        if not mine:
            raise UsageProblem(f"--device {devices}: {backend.name} runs on {', '.join(backend.devices)}")
        pairs.extend((backend.name, d) for d in mine)
    return pairs


def check_checkpoint(path: Path, variants: list[str]) -> None:
    if len(variants) != 1:
        raise UsageProblem(f"--checkpoint holds one variant's weights: select exactly one variant, not {len(variants)}")
    from .models import CheckpointError, create_model, load_checkpoint

    try:
        load_checkpoint(create_model(variants[0]), path)
    except CheckpointError as exc:
        raise UsageProblem(f"--checkpoint: {exc}") from exc


def default_output(kind: str = "run") -> Path:
    stamp = datetime.now(timezone.utc).strftime("%Y%m%d-%H%M%S")
    return Path("reports") / f"{kind}-{stamp}.json"


def check_writable(path: Path, option: str = "--output") -> None:
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        with tempfile.NamedTemporaryFile(dir=path.parent, prefix=".write-test-"):
            pass
    except OSError as exc:
        raise UsageProblem(f"{option} {path}: cannot write there ({exc.strerror or exc})") from exc




def parse_variant_names(selector: str, option: str = "--variants") -> list[str]:
    """A variant selector (``m0-m5``, ``all``...) -> names, or a usage error naming the option."""
    from .models import VariantError, parse_variants

    try:
        return [v.name for v in parse_variants(selector)]
    except VariantError as exc:
        raise UsageProblem(f"{option}: {exc}") from exc


def parse_forms(text: str, option: str = "--forms") -> list[str]:
    from .cases import parse_choices
    from .models import FORMS

    return parse_option(parse_choices, text, option, FORMS)
