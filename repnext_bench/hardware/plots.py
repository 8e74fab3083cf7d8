"""The comparison plots (matplotlib, drawn off-screen): latency per variant, the
latency-accuracy trade-off after the paper's Figure 1, and the fused-over-train speedup.
Each returns PNG bytes, so the same image goes into the HTML file and beside the Markdown."""
from __future__ import annotations

import io

from ..models import get_variant
from .peers import PEERS

_SERIES_LIMIT = 12  # beyond this many machine/backend series the bars get unreadable


def _pyplot():
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    return plt


def _png(figure) -> bytes:
    buffer = io.BytesIO()
    figure.savefig(buffer, format="png", dpi=110, bbox_inches="tight")
    _pyplot().close(figure)
    return buffer.getvalue()


def _plain_log_ticks(axis) -> None:
    """Log-scale ticks as plain numbers (0.6, 1, 2), not 6x10^-1."""
    from matplotlib.ticker import FuncFormatter

    def minor(value, _):  # label 2, 3 and 5 of each decade, not every minor tick
        leading = f"{value:.0e}"[0]
        return f"{value:g}" if leading in "235" else ""

    axis.set_major_formatter(FuncFormatter(lambda value, _: f"{value:g}"))
    axis.set_minor_formatter(FuncFormatter(minor))


def _finish(figure, ax, xlabel: str, ylabel: str, title: str, legend_size: int = 8) -> bytes:
    ax.set_xlabel(xlabel)
    ax.set_ylabel(ylabel)
    ax.set_title(title)
    if ax.get_legend_handles_labels()[0]:  # a plot with no labelled series gets no empty legend
        ax.legend(fontsize=legend_size, loc="upper left", bbox_to_anchor=(1.01, 1))
    return _png(figure)


def _series(best: list[dict], form: str) -> tuple[list[str], dict[str, dict[str, float]]]:
    variants = list(dict.fromkeys(r["variant"] for r in best if r["form"] == form))
    series: dict[str, dict[str, float]] = {}
    for row in best:
        if row["form"] == form:
            int8 = " int8" + (" (synthetic calibration)" if row.get("calibration") == "synthetic" else "")
            series.setdefault(f"{row['machine']} / {row['backend']}{int8 if row['asked'] == 'int8' else ''}",
                              {})[row["variant"]] = row
    return variants, dict(list(series.items())[:_SERIES_LIMIT])


def _bars(ax, variants: list[str], series: dict[str, dict[str, float]], value, interval) -> None:
    """Bars of ``value(row)`` with error bars from ``interval(row)`` (a 95% CI, or None)."""
    width = 0.8 / max(1, len(series))
    for index, (name, by_variant) in enumerate(series.items()):
        rows = [by_variant[v] for v in variants if v in by_variant]
        xs = [i + (index - (len(series) - 1) / 2) * width for i, v in enumerate(variants) if v in by_variant]
        ys = [value(r) for r in rows]
        spans = [interval(r) or (y, y) for r, y in zip(rows, ys)]
        errors = [[y - low for y, (low, _) in zip(ys, spans)], [high - y for y, (_, high) in zip(ys, spans)]]
        ax.bar(xs, ys, width=width, label=name, yerr=errors, capsize=2, error_kw={"elinewidth": 0.8})
    ax.set_xticks(range(len(variants)), variants)


def latency_plot(best: list[dict], resolution: int) -> bytes:
    plt = _pyplot()
    rows = [r for r in best if r["resolution"] == resolution]
    variants, series = _series(rows, "fused")
    figure, ax = plt.subplots(figsize=(9, 4.8))
    _bars(ax, variants, series, lambda r: r["p50_ms"], lambda r: r.get("p50_ci"))
    ax.plot(range(len(variants)), [get_variant(v).paper.iphone12_latency_ms for v in variants], "k*--",
            label="paper: iPhone 12, Core ML")
    ax.set_yscale("log")
    _plain_log_ticks(ax.yaxis)
    ax.tick_params(axis="y", which="minor", labelsize=7)
    ax.grid(axis="y", which="both", alpha=0.3)
    return _finish(figure, ax, "variant (fused form)", "latency at batch 1, median and 95% CI (ms, log scale)",
                   f"Latency per variant, {resolution}x{resolution}, best precision per machine and backend")


def tradeoff_plot(best: list[dict], resolution: int) -> bytes:
    """x: measured latency (each machine/backend) or the paper's iPhone 12 latency (paper and
    peers); y: the paper's ImageNet top-1 (distilled)."""
    plt = _pyplot()
    rows = [r for r in best if r["resolution"] == resolution]
    variants, series = _series(rows, "fused")
    figure, ax = plt.subplots(figsize=(9, 5.5))
    for name, by_variant in series.items():
        rows = [by_variant[v] for v in variants if v in by_variant]
        xs = [r["p50_ms"] for r in rows]
        spans = [r.get("p50_ci") or (x, x) for r, x in zip(rows, xs)]
        ax.errorbar(xs, [get_variant(r["variant"]).paper.top1_distilled for r in rows], fmt="o-", capsize=2,
                    xerr=[[x - low for x, (low, _) in zip(xs, spans)], [high - x for x, (_, high) in zip(xs, spans)]],
                    label=f"RepNeXt on {name}")
    paper = [(get_variant(v).paper.iphone12_latency_ms, get_variant(v).paper.top1_distilled, v) for v in variants]
    ax.plot([p[0] for p in paper], [p[1] for p in paper], "k*-", markersize=9, label="RepNeXt, paper: iPhone 12")
    for x, y, name in paper:
        ax.annotate(name, (x, y), textcoords="offset points", xytext=(-4, 6), fontsize=7, ha="right")
    for (peer, points), marker, colour in zip(PEERS.items(), ("s", "^", "D", "v"),
                                              ("#8c8c8c", "#b07aa1", "#9c755f", "#76b7b2")):
        ax.plot([p[1] for p in points], [p[2] for p in points], marker=marker, linestyle=":", color=colour,
                alpha=0.8, markersize=4, label=f"{peer}, paper: iPhone 12")
    ax.set_xscale("log")
    _plain_log_ticks(ax.xaxis)
    ax.tick_params(axis="x", which="minor", labelsize=7)
    ax.grid(which="both", alpha=0.3)
    return _finish(figure, ax, "latency at batch 1 (ms, log scale): measured, or iPhone 12 from the paper",
                   "ImageNet-1K top-1, distilled (%, from the paper)",
                   f"Latency-accuracy trade-off, {resolution}x{resolution} (after the paper's Figure 1)", legend_size=7)


def speedup_plot(best: list[dict], resolution: int) -> bytes:
    plt = _pyplot()
    rows = [r for r in best if r["resolution"] == resolution and r.get("fused_speedup")]
    variants, series = _series(rows, "fused")
    figure, ax = plt.subplots(figsize=(9, 4.5))
    _bars(ax, variants, series, lambda r: r["fused_speedup"]["ratio"], lambda r: r["fused_speedup"]["ci95"])
    ax.axhline(1.0, color="black", linewidth=0.8)
    ax.grid(axis="y", alpha=0.3)
    return _finish(figure, ax, "variant", "fused over train-time speedup (x), with its 95% CI",
                   f"What reparameterization buys, {resolution}x{resolution}, batch 1")


PLOTS = {"latency": latency_plot, "tradeoff": tradeoff_plot, "speedup": speedup_plot}
