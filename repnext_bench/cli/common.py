"""What the commands share: the consoles, usage errors, the command line of this invocation, and
the checks of files the commands read or write."""
from __future__ import annotations

import os
import sys
import tempfile
from datetime import datetime, timezone
from pathlib import Path

import typer
from rich.console import Console

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


def command_line() -> list[str]:
    """This invocation as a user typed it, for the reports' environment."""
    return ["repnext-bench", *ARGV]


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


def check_checkpoint(path: Path, variants: list[str]) -> None:
    """``--checkpoint`` must hold the weights of the one selected variant (loading it needs torch)."""
    if len(variants) != 1:
        raise UsageProblem(f"--checkpoint holds one variant's weights: select exactly one variant, not {len(variants)}")
    from ..models import CheckpointError, create_model, load_checkpoint

    try:
        load_checkpoint(create_model(variants[0]), path)
    except CheckpointError as exc:
        raise UsageProblem(f"--checkpoint: {exc}") from exc


def settings_from(plan: dict, *, cache_dir: Path | None = None, no_cache: bool = False, checkpoint: Path | None = None,
                  **fields):
    """The Settings every case of a command shares, from its options: ``plan`` holds the
    TimingPlan's fields; paths go as text (the settings cross process boundaries)."""
    from ..measure.timing import TimingPlan
    from ..run.lifecycle import Settings

    return Settings(plan=TimingPlan(**plan), cache_dir=str(cache_dir) if cache_dir else None, use_cache=not no_cache,
                    checkpoint=str(checkpoint) if checkpoint else None, **fields)
