"""``repnext-bench compare``: two stored reports, case by case, from their raw samples. Exit codes
0 pass, 1 regression, 3 inconclusive, 2 bad input."""
from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer
from rich.markup import escape

from . import options as o
from . import validators as v
from .common import UsageProblem, check_writable, err_console
from .verdicts import emit

FailOn = Annotated[str, typer.Option("--fail-on", help="Regression threshold in percent: fail when the change and "
                                     "its whole 95% CI are above it.")]
CrossMachine = Annotated[bool, typer.Option("--cross-machine", help="Give verdicts even when the reports come from "
                                            "different machines or runtime versions (by default: inconclusive, "
                                            "exit 3).")]


def compare(
    base: Annotated[Path, typer.Argument(help="The baseline report (a run report, JSON).")],
    new: Annotated[Path, typer.Argument(help="The candidate report.")],
    fail_on: FailOn = "10", markdown_path: o.Markdown = None, as_json: o.Json = False,
    cross_machine: CrossMachine = False,
) -> None:
    """Compare two stored reports case by case, from their raw samples."""
    from ..gate.compare import compare_reports, exit_code
    from ..report.schema import ReportError, read_report

    threshold = v.percent(fail_on, "--fail-on")
    if threshold <= 0:
        raise UsageProblem("--fail-on must be above 0")
    try:
        reports = [read_report(base), read_report(new)]
    except ReportError as exc:
        raise UsageProblem(str(exc)) from None
    if markdown_path:
        check_writable(markdown_path, "--markdown")
    result = compare_reports(*reports, threshold=threshold, cross_machine=cross_machine)
    if result["machine_differences"] and not as_json:
        _warn_machines(result["machine_differences"], cross_machine)
    if not result["rows"]:
        err_console.print("[yellow]no case is in both reports with latency samples[/]")
    title = f"Compare: {new} vs {base}" + (" (different machines or runtimes)" if result["machine_differences"] else "")
    emit(result, result["rows"], title, _notes(result, threshold), None, markdown_path, as_json)
    raise typer.Exit(exit_code(result["rows"]) if result["rows"] else 3)


def _warn_machines(differences: list[str], cross_machine: bool) -> None:
    verb = "compared anyway (--cross-machine)" if cross_machine else "no verdict on timing (--cross-machine to compare)"
    err_console.print(f"[yellow]different machines or runtimes[/]: {escape('; '.join(differences))} - {verb}",
                      highlight=False)


def _notes(result: dict, threshold: float) -> list[str]:
    """The rows' reasons (shown in the table, listed in Markdown), then what else to know."""
    notes = [f"{row['case']}: {row['why']}" for row in result["rows"]]
    notes += [f"different machines or runtimes: {line}" for line in result["machine_differences"]]
    notes += [f"environment differs: {line}" for line in result["environment_differences"]]
    notes += [f"only in the baseline: {label}" for label in result["only_in_baseline"]]
    notes += [f"only in the candidate: {label}" for label in result["only_in_candidate"]]
    notes += [f"not compared: {item['case']} ({item['why']})" for item in result["not_compared"]]
    notes.append(f"threshold {threshold:.0%}: reports from two jobs carry noise no statistic inside one report can "
                 "see; the gate command measures both sides in one job")
    return notes
