"""``repnext-bench report``: merge run reports from any machines into one comparison report."""
from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer
from rich import box
from rich.markup import escape
from rich.table import Table

from . import options as o
from . import validators as v
from .common import UsageProblem, check_writable, console, err_console

FORMATS = ("html", "md", "csv")

Labels = Annotated[list[str] | None, typer.Option("--label", help="A name for each report's machine, in the order of "
                                                  "the files (repeat; default: its CPU and GPU).")]


MaxRelErr = Annotated[float | None, typer.Option(
    "--max-rel-err", help="What should I ship: the largest relative L2 error against the fp32 train-time model a "
    "configuration may have (INT8: on its evaluation inputs). Default: the tolerance of its precision, as verify "
    "(fp32 1e-4, tf32 5e-3, fp16 1e-2, bf16 5e-2, int8 1e-1).")]


def report(
    files: Annotated[list[Path] | None, typer.Argument(help="Run reports (JSON), from any machines.")] = None,
    fmt: o.Format = "html", output: o.Output = None, labels: Labels = None, max_rel_err: MaxRelErr = None,
) -> None:
    """Merge run reports from many machines: tables, plots and what to ship on each."""
    from ..hardware.merge import merge
    from ..hardware.render import RENDERERS

    if not files:
        raise UsageProblem("give one or more run reports, e.g. repnext-bench report laptop.json server.json")
    fmt = v.choice(fmt, "--format", FORMATS)
    if labels and len(labels) != len(files):
        raise UsageProblem(f"--label given {len(labels)} times for {len(files)} reports: give one per report, in order")
    if max_rel_err is not None and not 0 <= max_rel_err < float("inf"):
        raise UsageProblem(f"--max-rel-err {max_rel_err:g} is not valid: use a relative L2 error of 0 or more, "
                           "e.g. 0.05")
    merged = merge(_read_run_reports(files), labels or None)
    merged["max_rel_err"] = max_rel_err
    if not any(row["status"] == "ok" for row in merged["rows"]):
        raise UsageProblem("no finished case in these reports: nothing to compare")
    output = output or Path("reports") / f"comparison.{fmt}"
    check_writable(output)
    with err_console.status("drawing the plots"):
        written = RENDERERS[fmt](merged, output)
    _show(merged)
    for path in written:
        console.print(f"wrote {path}")


def _read_run_reports(files: list[Path]) -> list[tuple[str, dict]]:
    from ..report.schema import ReportError, read_report

    loaded = []
    for path in files:
        try:
            data = read_report(path)
        except ReportError as exc:
            raise UsageProblem(str(exc)) from None
        if data.get("kind", "run") != "run":
            raise UsageProblem(f"{path}: a {data['kind']} report; report merges run reports (repnext-bench run)")
        loaded.append((path.name, data))
    return loaded


def _show(merged: dict) -> None:
    from ..hardware.merge import best_latency

    table = Table(title="Best latency at batch 1", box=box.SIMPLE_HEAVY)
    for header in ("variant", "form", "machine", "backend", "p50 ms", "precision", "iPhone 12 ms (paper)"):
        table.add_column(header)
    for row in best_latency(merged["rows"]):
        table.add_row(row["variant"], row["form"], escape(row["machine"]), row["backend"], f"{row['p50_ms']:.3g}",
                      row["precision"], f"{row['iphone12_ms']:g}")
    console.print(table)
    for note in merged["notes"]:
        console.print(f"[yellow]note:[/] {escape(note)}")
