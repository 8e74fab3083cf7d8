"""The tables of ``repnext-bench profile``: the time accounting, the top nodes, the rollups
by stage and component, and train vs fused side by side."""
from __future__ import annotations

from rich import box
from rich.markup import escape
from rich.table import Table

from ..core.cases import Case
from ..profiling.rollup import accounting, rollup, side_by_side, top_nodes
from .results import format_ms, precision_text


def _share(value: float | None) -> str:
    return "" if value is None else f"{value * 100:.1f}%"


def _place(node: dict) -> str:
    place = node.get("place")
    if not place:
        return "[red]unattributed[/]"
    parts = [p for p in (place["stage"], place["block"], place["component"], place["part"]) if p]
    text = " / ".join(p for i, p in enumerate(parts) if i == 0 or p != parts[i - 1])
    return text + (" [dim](via graph)[/]" if node.get("attributed_by") == "graph" else "")


def short_name(name: str) -> str:
    """``/stages/stages.3/blocks/blocks.2/norm/Conv`` -> ``stages.3/blocks.2/norm/Conv``: the
    exporter writes each container twice."""
    parts = name.split("/")
    kept = [p for i, p in enumerate(parts) if not (i + 1 < len(parts) and parts[i + 1].startswith(p + "."))]
    return "/".join(kept).lstrip("/") or name


def accounting_lines(profile: dict) -> list[str]:
    """Where the time per inference went, in a few lines: the margin the tables stand on."""
    label = escape(Case.from_dict(profile["case"]).label)
    account = accounting(profile)
    total, node_sum = account["total_ms"], account["node_sum_ms"]
    lines = [
        f"[bold]{label}[/]: p50 {format_ms(profile['latency_ms']['p50'])} ms without the profiler; "
        f"{format_ms(total)} ms per inference with it ({profile['profiled']['iterations']} profiled runs, "
        f"x{total / profile['latency_ms']['p50']:.2f}), "
        f"{precision_text(profile['case']['precision'], profile['precision_effective'])}",
        f"  nodes {format_ms(node_sum)} ms = placed by name {format_ms(account['attributed_by_name_ms'])} ms"
        f" + through the graph {format_ms(account['attributed_by_graph_ms'])} ms"
        f" + unattributed {format_ms(account['unattributed_ms'])} ms ({len(account['unattributed_nodes'])} nodes);"
        f" outside any node {format_ms(account['outside_nodes_ms'])} ms = margin {_share(account['margin'])}"
        " of the measured total",
    ]
    mix: dict[str, float] = {}
    for node in profile["nodes"]:
        mix[node["precision"] or "not stated"] = mix.get(node["precision"] or "not stated", 0.0) + node["time_ms"]
    lines.append("  kernel precision: " + ", ".join(
        f"{name} {format_ms(ms)} ms ({_share(ms / node_sum if node_sum else None)})"
        for name, ms in sorted(mix.items(), key=lambda item: -item[1])))
    if profile.get("quantization"):
        from .quant_view import calibration_text, layers_text, parity_text

        quant = profile["quantization"]
        synthetic = (quant.get("calibration") or {}).get("source") == "synthetic"
        lines.append(f"  INT8: {layers_text(quant.get('layers'))}; {calibration_text(quant.get('calibration'))}"
                     + (", which says nothing about accuracy" if synthetic else "")
                     + f"; {parity_text(profile.get('parity'))}")
    if profile["profiled"].get("runtime_ms"):
        lines.append(f"  the runtime's own total: {format_ms(profile['profiled']['runtime_ms'])} ms "
                     f"({escape(profile['profiled']['runtime_total'])})")
    for node in account["unattributed_nodes"][:5]:
        lines.append(f"  [red]unattributed[/] {escape(node['name'])} ({escape(node['op_type'])}): "
                     f"{format_ms(node['time_ms'])} ms")
    return lines


def top_table(profile: dict, count: int) -> Table:
    total = sum(n["time_ms"] for n in profile["nodes"]) or 1.0
    table = Table(title=f"Top {count} nodes", box=box.SIMPLE_HEAVY)
    for header in ("node", "op type", "kernel", "precision", "place", "ms", "share", "calls"):
        table.add_column(header, justify="right" if header in ("ms", "share", "calls") else "left",
                         overflow="fold", no_wrap=header in ("place", "kernel", "op type"))
    for node in top_nodes(profile, count):
        table.add_row(escape(short_name(node["name"])), escape(node["op_type"]),
                      escape(node["kernel"].replace("ExecutionProvider", " EP")),
                      node["precision"] or "", _place(node), format_ms(node["time_ms"]),
                      _share(node["time_ms"] / total), f"{node['calls']:g}")
    return table


def rollup_table(profile: dict, level: str) -> Table:
    """Time, nodes, MACs and GMAC/s per stage or component; an INT8 profile adds which nodes ran
    INT8 and which did not (float, quantize/dequantize, reorder), and INT8's share of the time."""
    int8 = profile["case"]["precision"] == "int8"
    table = Table(title=f"By {level}", box=box.SIMPLE_HEAVY)
    kinds = ("int8", "float", "q/dq", "reorder", "int8 time") if int8 else ()
    for header in (level, "ms", "share", "nodes", *kinds, "MMACs", "GMAC/s"):
        table.add_column(header, justify="left" if header == level else "right")
    for row in rollup(profile, level):
        counts = row["kinds"]
        mix = [str(counts["int8"]), str(counts["float"]), str(counts["qdq"]), str(counts["reorder"]),
               _share(row["kind_ms"]["int8"] / row["time_ms"] if row["time_ms"] else None)] if int8 else []
        table.add_row(row["name"], format_ms(row["time_ms"]), _share(row["share"]), str(row["nodes"]), *mix,
                      f"{row['macs'] * profile['case']['batch'] / 1e6:.1f}" if row["macs"] else "",
                      f"{row['gmacs_per_s']:.1f}" if row["gmacs_per_s"] else "")
    if int8:
        table.caption = ("nodes by what ran: int8 kernels; float (fell back to, or stayed in, floating point); "
                         "q/dq: quantize/dequantize; reorder: layout or precision reorders")
    return table


def forms_table(profiles: list[dict], level: str) -> Table:
    forms = [p["case"]["form"] for p in profiles]
    table = Table(title=f"Forms side by side, by {level}", box=box.SIMPLE_HEAVY)
    table.add_column(level)
    for form in forms:
        table.add_column(f"{form} ms", justify="right")
    for form in forms:
        table.add_column(f"{form} nodes", justify="right")
    int8 = profiles[0]["case"]["precision"] == "int8"
    for form in forms if int8 else []:
        table.add_column(f"{form} int8 nodes", justify="right")
    table.add_column("train/fused", justify="right")
    for row in side_by_side(profiles, level):
        cells = row["forms"]
        table.add_row(row["name"], *(format_ms(cells[f]["time_ms"]) if f in cells else "" for f in forms),
                      *(str(cells[f]["nodes"]) if f in cells else "" for f in forms),
                      *(str(cells[f]["int8_nodes"]) if f in cells else "" for f in (forms if int8 else [])),
                      f"{row['speedup']:.2f}x" if row["speedup"] else "")
    return table
