"""``repnext-bench report``: merge run reports from any machines into one comparison report."""
from __future__ import annotations

from pathlib import Path

import typer
from rich import box
from rich.markup import escape
from rich.table import Table

from .cli_common import UsageProblem, check_writable, console, err_console, parse_option

FORMATS = ("html", "md", "csv")


def report(
    files: list[Path] = typer.Argument(None, help="Run reports (JSON), from any machines."),
    fmt: str = typer.Option("html", "--format", help="html (one self-contained file), md (with PNG plots beside it) or csv."),
    out: Path | None = typer.Option(None, "--out", "-o", help="Output file (default: reports/comparison.<format>)."),
    labels: list[str] = typer.Option([], "--label", help="A name for each report's machine, in the order of the files "
                                     "(repeat; default: its CPU and GPU)."),
) -> None:
    """Merge run reports from many machines: tables, plots and what to ship on each."""
    from .cases import parse_choices
    from .hardware.merge import best_latency, merge
    from .hardware.render import RENDERERS
    from .report.schema import ReportError, read_report

    if not files:
        raise UsageProblem("give one or more run reports, e.g. repnext-bench report laptop.json server.json")
    fmt = parse_option(parse_choices, fmt, "--format", FORMATS)[0]
    if labels and len(labels) != len(files):
        raise UsageProblem(f"--label given {len(labels)} times for {len(files)} reports: give one per report, in order")
    loaded = []
    for path in files:
        try:
            data = read_report(path)
        except ReportError as exc:
            raise UsageProblem(str(exc)) from None
        if data.get("kind", "run") != "run":
            raise UsageProblem(f"{path}: a {data['kind']} report; report merges run reports (repnext-bench run)")
        loaded.append((path.name, data))
    merged = merge(loaded, labels or None)
    if not any(row["status"] == "ok" for row in merged["rows"]):
        raise UsageProblem("no finished case in these reports: nothing to compare")
    out = out or Path("reports") / f"comparison.{fmt}"
    check_writable(out, "--out")
    with err_console.status("drawing the plots"):
        written = RENDERERS[fmt](merged, out)
    table = Table(title="Best latency at batch 1", box=box.SIMPLE_HEAVY)
    for header in ("variant", "form", "machine", "backend", "p50 ms", "precision", "iPhone 12 ms (paper)"):
        table.add_column(header)
    for row in best_latency(merged["rows"]):
        table.add_row(row["variant"], row["form"], escape(row["machine"]), row["backend"], f"{row['p50_ms']:.3g}",
                      row["precision"], f"{row['iphone12_ms']:g}")
    console.print(table)
    for note in merged["notes"]:
        console.print(f"[yellow]note:[/] {escape(note)}")
    for path in written:
        console.print(f"wrote {path}")
