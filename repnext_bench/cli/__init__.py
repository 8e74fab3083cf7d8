"""The ``repnext-bench`` command line: one module per command, the options they share declared
once (``options``), and one validator per kind of value (``validators``). It parses, validates
and prints; the work is done elsewhere.

Heavy modules (torch and the runtimes) are imported inside the commands so that ``--help``
and usage errors answer at once.
"""
from __future__ import annotations

import sys

import typer
from rich.markup import escape

from . import backends, common, compare, env, export, gate, profile, report, run, variants, verify
from .common import ClickException, UsageError, UsageProblem, console, err_console

HELP = "Benchmark and profile the RepNeXt family (M0-M5, M0E-M2E) in its train-time and fused forms."
# the commands, in the order --help lists them: (name, function)
COMMANDS = (("variants", variants.variants), ("run", run.run), ("backends", backends.backends), ("env", env.env),
            ("profile", profile.profile), ("gate", gate.gate), ("compare", compare.compare),
            ("verify", verify.verify), ("report", report.report), ("export", export.export))

app = typer.Typer(name="repnext-bench", help=HELP, no_args_is_help=True, add_completion=False,
                  pretty_exceptions_enable=False)


def _print_version(value: bool) -> None:
    if value:
        from .. import __version__

        console.print(f"repnext-bench {__version__}")
        raise typer.Exit()


@app.callback()
def _root(
    version: bool = typer.Option(False, "--version", callback=_print_version, is_eager=True,
                                 help="Print the version and exit."),
) -> None:
    """Benchmark and profile the RepNeXt family (M0-M5, M0E-M2E) in its train-time and fused forms."""


for _name, _function in COMMANDS:
    app.command(name=_name)(_function)


def main(argv: list[str] | None = None) -> int:
    """Entry point: runs the app and turns usage errors into one line and exit code 2."""
    common.ARGV = list(sys.argv[1:] if argv is None else argv)
    try:
        result = app(args=argv, prog_name="repnext-bench", standalone_mode=False)
    except ClickException as exc:
        hint = ""
        if isinstance(exc, UsageError) and not isinstance(exc, UsageProblem):
            hint = " (see repnext-bench --help)"
        err_console.print(f"[bold red]error:[/] {escape(exc.format_message())}{hint}", highlight=False, soft_wrap=True)
        return exc.exit_code
    except typer.Abort:
        err_console.print("[red]aborted[/]")
        return 130
    return result if isinstance(result, int) else 0


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())
