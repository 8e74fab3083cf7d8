"""The progress of a sweep on stderr: a bar over its time budget, and its events as lines."""
from __future__ import annotations

import math
from contextlib import contextmanager

from rich.markup import escape
from rich.progress import BarColumn, Progress, SpinnerColumn, TextColumn, TimeElapsedColumn

from .common import err_console


def _round_line(info: dict) -> str:
    widest = info["widest"]
    spread = widest.spread() if widest else math.inf
    line = (f"round {info['rounds']}: measuring {info['measuring']:.0f} s of the {info['budget']:.0f} s budget, "
            f"prepared in {info['preparing']:.0f} s")
    if widest and math.isfinite(spread):
        line += f", widest 95% CI +-{spread:.1%} ({escape(widest.case.label)})"
    return line


def _loaded_line(info: dict) -> str:
    cold = info["load"]["cold_start"]
    return (f"[green]loaded[/] {escape(info['case'].label)}: load {cold['load_s']:.2f} s, first inference "
            f"{cold['first_inference_ms']:.1f} ms, {info['load']['block_n']} inferences per block")


@contextmanager
def sweep_progress(show: bool, budget_s: float):
    """Yields the sweep's ``on_event``: the bar and lines while ``show``, nothing otherwise."""
    from ..report.results import case_line

    progress = Progress(SpinnerColumn(), TextColumn("{task.description}"), BarColumn(), TimeElapsedColumn(),
                        console=err_console, disable=not show, transient=True)
    task = progress.add_task("starting", total=budget_s)

    def on_event(kind: str, **info) -> None:
        if kind == "load":
            progress.update(task, description=escape(f"loading {info['case'].label} ({info['index'] + 1} of "
                                                     f"{info['total']}, process lifetime {info['lifetime'] + 1})"))
        elif kind == "round":
            line = _round_line(info)
            progress.update(task, completed=min(info["elapsed"], budget_s), description=line)
            if show:
                progress.console.print(f"[dim]{line}[/]", highlight=False)
        elif kind == "prepared" and show:
            progress.console.print(f"prepared {info['cases']} cases in {info['seconds']:.0f} s (exports "
                                   f"{info['exports']:.0f} s); the budget counts from here", highlight=False)
        elif kind == "loaded" and show:
            progress.console.print(_loaded_line(info), highlight=False)
        elif kind == "evaluate":
            progress.update(task, description=escape(f"evaluating {info['case'].label} ({info['index'] + 1} of "
                                                     f"{info['total']})"))
        elif kind == "note" and show:
            progress.console.print(f"[yellow]{escape(info['text'])}[/]", highlight=False)
        elif kind == "problem" and show:
            progress.console.print(case_line(info["record"]), highlight=False)
        elif kind == "trial":
            stats = info["stats"]
            line = (f"serving {info['case'].label}: {stats.qps_offered:.0f} requests/s offered, "
                    f"{stats.qps_achieved:.0f} served, p99 {stats.p99_ms:.3g} ms"
                    + (f" (bound {stats.bound_ms:g} ms: {'met' if stats.p99_ms <= stats.bound_ms else 'missed'})"
                       if stats.bound_ms is not None else ""))
            progress.update(task, description=escape(line))
            if show:
                progress.console.print(f"[dim]{escape(line)}[/]", highlight=False)

    with progress:
        yield on_event
