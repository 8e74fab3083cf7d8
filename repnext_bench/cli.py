"""The ``repnext-bench`` command line. It parses, validates and prints; the work is done elsewhere.

Heavy modules (torch and the runtimes) are imported inside the commands so that ``--help``
and usage errors answer at once.
"""
from __future__ import annotations

import json
import os
import sys

import typer
from rich.console import Console
from rich.markup import escape

app = typer.Typer(
    name="repnext-bench",
    help="Benchmark and profile the RepNeXt family (M0-M5, M0E-M2E) in its train-time and fused forms.",
    no_args_is_help=True,
    add_completion=False,
    pretty_exceptions_enable=False,
)
# Piped into a file or another program, rich would wrap tables at 80 columns; use a width
# that fits the widest table instead (COLUMNS still wins when set).
_PIPE_WIDTH = None if sys.stdout.isatty() or "COLUMNS" in os.environ else 160
console = Console(width=_PIPE_WIDTH)
err_console = Console(stderr=True)


# Typer vendors click in recent releases and depends on it in older ones: find its
# exception classes through a public one rather than importing either click.
_ClickException = next(c for c in typer.BadParameter.__mro__ if c.__name__ == "ClickException")
_UsageError = next(c for c in typer.BadParameter.__mro__ if c.__name__ == "UsageError")


class UsageProblem(_UsageError):
    """Bad input from the user: one line on stderr, exit code 2."""


def _positive_multiple_of_32(value: int) -> int:
    if value <= 0 or value % 32:
        raise UsageProblem(f"--resolution {value} is not valid: use a positive multiple of 32 (the network downsamples by 32), e.g. 224")
    return value


def _print_version(value: bool) -> None:
    if value:
        from . import __version__

        console.print(f"repnext-bench {__version__}")
        raise typer.Exit()


@app.callback()
def _root(
    version: bool = typer.Option(False, "--version", callback=_print_version, is_eager=True,
                                 help="Print the version and exit."),
) -> None:
    """Benchmark and profile the RepNeXt family (M0-M5, M0E-M2E) in its train-time and fused forms."""


@app.command()
def variants(
    selector: str = typer.Option("all", "--variants", "-v", help="Which variants: m0-m5, m0,m3, M4, m0e-m2e or all."),
    resolution: int = typer.Option(224, "--resolution", "-r", help="Input side in pixels (a multiple of 32)."),
    as_json: bool = typer.Option(False, "--json", help="Print JSON (one object per variant and form) instead of a table."),
) -> None:
    """List the variants: params and MACs of each form, beside the paper's figures."""
    from .catalog import form_counts
    from .models import VariantError, parse_variants
    from .report.variants import variants_notes, variants_table

    try:
        chosen = parse_variants(selector)
    except VariantError as exc:
        raise UsageProblem(f"--variants: {exc}") from exc
    _positive_multiple_of_32(resolution)
    rows = []
    with err_console.status("counting parameters and MACs") as status:
        for variant in chosen:
            status.update(f"counting parameters and MACs: {variant.name}")
            rows.append((variant, form_counts(variant, resolution)))
    if as_json:
        records = []
        for variant, counts in rows:
            paper = vars(variant.paper)
            records.extend({**c.to_dict(), "paper": paper} for c in counts.values())
        console.out(json.dumps(records, indent=2))
        return
    console.print(variants_table(rows, resolution))
    for note in variants_notes(rows):
        console.print(f"[yellow]note:[/] {escape(note)}")


def main(argv: list[str] | None = None) -> int:
    """Entry point: runs the app and turns usage errors into one line and exit code 2."""
    try:
        result = app(args=argv, prog_name="repnext-bench", standalone_mode=False)
    except _ClickException as exc:
        hint = ""
        if isinstance(exc, _UsageError) and not isinstance(exc, UsageProblem):
            hint = " (see repnext-bench --help)"
        err_console.print(f"[bold red]error:[/] {escape(exc.format_message())}{hint}", highlight=False, soft_wrap=True)
        return exc.exit_code
    except typer.Abort:
        err_console.print("[red]aborted[/]")
        return 130
    return result if isinstance(result, int) else 0


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())
