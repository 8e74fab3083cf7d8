"""The comparison report as Markdown (with PNG plots beside it), one self-contained HTML
file (plots embedded as data URIs, no external resources), or CSV (every merged case)."""
from __future__ import annotations

import base64
import csv
import html
import io
from pathlib import Path

from ..report.results import ratio_text
from ..run.verify import TOLERANCES
from ..system.identity import FIELDS
from . import serving
from .merge import best_latency, coverage, ship
from .plots import PLOTS

CSV_FIELDS = ("machine", "report", "status", "runtime", "variant", "form", "backend", "device", "asked", "precision",
              "batch", "resolution", "threads", "mode", "streams", "options", "p50_ms", "throughput_ips", "peak_rss_mb",
              "rel_l2")


def _f(value, digits: int = 3) -> str:
    if value is None:
        return "—"
    return f"{value:.{digits}g}" if isinstance(value, float) else str(value)


def tables(merged: dict) -> list[tuple[str, list[str], list[list[str]]]]:
    """(title, headers, rows) of every table, in order."""
    rows = merged["rows"]
    best = best_latency(rows)
    machines = [("Machines (what tells them apart in bold)", ["machine", *FIELDS, "torch", "onnxruntime",
                                                                "openvino", "reports"], _machine_rows(merged))]
    lines, columns, cells = coverage(merged["input_rows"])
    gaps = [("Coverage: which cases each machine and backend has (— = not in any report)", ["case", *columns],
             [[line, *(cells.get((line, column), "—") for column in columns)] for line in lines])]
    latency = [("Best latency per variant, form, machine and backend (batch 1)",
                ["variant", "form", "px", "machine", "backend", "runtime", "p50 ms (95% CI)", "runs", "precision",
                 "threads", "best img/s", "peak RSS MB", "fused speedup (95% CI)", "iPhone 12 ms (paper)"],
                [[r["variant"], r["form"], str(r["resolution"]), r["machine"], r["backend"], r["runtime"] or "—",
                  _ms_ci(r), _runs(r),
                  r["precision"], str(r["threads"]), _f(r.get("best_throughput_ips"), 4), _f(r["peak_rss_mb"], 4),
                  ratio_text(r.get("fused_speedup")) or "—", _f(r["iphone12_ms"])]
                 for r in best])]
    bound = merged.get("max_rel_err")
    within = (f"rel err at most {bound:g} against the fp32 train-time model" if bound is not None else
              "within the tolerance of its precision (" + ", ".join(f"{p} {t:g}" for p, t in TOLERANCES.items()) + ")")
    answers = [(f"What should I ship: the fastest batch-1 configuration {within}",
                ["variant", "px", "machine", "backend", "form", "precision", "threads", "p50 ms (95% CI)", "rel err",
                 "tied with (overlapping CIs)", "torch fp32 train ms", "speedup (95% CI)"],
                [[r["variant"], str(r["resolution"]), r["machine"], r["backend"], r["form"], _precision(r),
                  str(r["threads"]), _ms_ci(r), f"{r['rel_l2']:.1e}", "; ".join(r["tied_with"]) or "no tie",
                  _f(r["baseline_ms"]), ratio_text(r["speedup_over_baseline"]) or "not measured"]
                 for r in ship(rows, bound)])]
    return machines + gaps + latency + answers + serving.tables(rows)


def _precision(row: dict) -> str:
    """What ran; an INT8 row says when it was calibrated on synthetic inputs (its parity then says
    nothing about accuracy on real images)."""
    return row["precision"] + (" (synthetic calibration)" if row.get("calibration") == "synthetic" else "")


def _machine_rows(merged: dict) -> list[list[str]]:
    """Each machine's identity, the fields that differ between the machines in **bold**."""
    machines = list(merged["machines"].values())
    differ = {f for f in FIELDS if len({m.identity[f] for m in machines}) > 1}
    libraries = lambda m: [_f(m.environment.get("libraries", {}).get(lib))  # noqa: E731
                           for lib in ("torch", "onnxruntime", "openvino")]
    return [[m.label, *(f"**{m.identity[f]}**" if f in differ else m.identity[f] for f in FIELDS), *libraries(m),
             ", ".join(m.reports)] for m in machines]


def _runs(row: dict) -> str:
    """How many reports a row pools, their spread, and whether they disagree."""
    if row.get("runs", 1) < 2 or not row.get("run_p50s"):
        return str(row.get("runs", 1))
    return f"{row['runs']} (spread {row['run_spread']:.0%}{', disagree' if row['runs_disagree'] else ''})"


def _ms_ci(row: dict) -> str:
    low_high = row.get("p50_ci")
    return f"{_f(row['p50_ms'])} ({_f(low_high[0])}-{_f(low_high[1])})" if low_high else _f(row["p50_ms"])


def resolutions(merged: dict) -> list[int]:
    return sorted({r["resolution"] for r in merged["rows"] if r["status"] == "ok" and r["mode"] == "latency"})


def plots(merged: dict) -> dict[str, bytes]:
    best = best_latency(merged["rows"])
    drawn = {f"{name}-{px}px": draw(best, px) for px in resolutions(merged) for name, draw in PLOTS.items()}
    return {**drawn, **serving.plots(merged["rows"])}


def _md_table(title: str, headers: list[str], rows: list[list[str]]) -> str:
    escape = lambda text: str(text).replace("|", "\\|")  # noqa: E731
    lines = [f"### {title}", "", "| " + " | ".join(headers) + " |", "|" + "---|" * len(headers)]
    lines += ["| " + " | ".join(escape(c) for c in row) + " |" for row in rows]
    return "\n".join(lines) + "\n"


def to_markdown(merged: dict, out: Path) -> list[Path]:
    """Write ``out`` and the plots beside it; returns every file written."""
    written = []
    parts = ["# RepNeXt hardware comparison", ""]
    for name, png in plots(merged).items():
        path = out.with_name(f"{out.stem}-{name}.png")
        path.write_bytes(png)
        written.append(path)
        parts.append(f"![{name}]({path.name})\n")
    parts += [_md_table(*table) for table in tables(merged)]
    parts += _notes(merged, lambda text: f"- {text}")
    out.write_text("\n".join(parts) + "\n")
    return [out, *written]


def _notes(merged: dict, item) -> list[str]:
    lines = ["### Commands", ""]
    for machine in merged["machines"].values():
        lines += [item(f"{machine.label}: `{command}`") for command in machine.commands]
    if merged["notes"]:
        lines += ["", "### Notes", ""] + [item(note) for note in merged["notes"]]
    return lines


def _html_cell(text: str) -> str:
    """A table cell: ``**value**`` (a field that differs between machines) in bold."""
    if text.startswith("**") and text.endswith("**") and len(text) > 4:
        return f"<strong>{html.escape(text[2:-2])}</strong>"
    return html.escape(text)


def to_html(merged: dict, out: Path) -> list[Path]:
    body = ["<h1>RepNeXt hardware comparison</h1>"]
    for name, png in plots(merged).items():
        data = base64.b64encode(png).decode()
        body.append(f'<figure><img alt="{name}" src="data:image/png;base64,{data}"><figcaption>{name}</figcaption>'
                    "</figure>")
    for title, headers, rows in tables(merged):
        body.append(f"<h2>{html.escape(title)}</h2><table><tr>"
                    + "".join(f"<th>{html.escape(h)}</th>" for h in headers) + "</tr>"
                    + "".join("<tr>" + "".join(f"<td>{_html_cell(c)}</td>" for c in row) + "</tr>" for row in rows)
                    + "</table>")
    body.append("<h2>Environment of each machine</h2>")
    for machine in merged["machines"].values():
        items = "".join(f"<tr><th>{html.escape(k)}</th><td>{html.escape(str(v))}</td></tr>"
                        for k, v in machine.environment.items() if k != "command")
        commands = "".join(f"<li><code>{html.escape(c)}</code></li>" for c in machine.commands)
        body.append(f"<h3>{html.escape(machine.label)}</h3><table>{items}</table><p>Commands:</p><ul>{commands}</ul>")
    if merged["notes"]:
        body.append("<h2>Notes</h2><ul>" + "".join(f"<li>{html.escape(n)}</li>" for n in merged["notes"]) + "</ul>")
    style = ("body{font-family:sans-serif;margin:2em;max-width:1400px}table{border-collapse:collapse;margin:1em 0}"
             "td,th{border:1px solid #ccc;padding:3px 8px;text-align:left;font-size:13px}img{max-width:100%}"
             "figure{margin:1em 0}")
    out.write_text(f"<!DOCTYPE html><html><head><meta charset=\"utf-8\"><title>RepNeXt hardware comparison</title>"
                   f"<style>{style}</style></head><body>{''.join(body)}</body></html>\n")
    return [out]


def to_csv(merged: dict, out: Path) -> list[Path]:
    buffer = io.StringIO()
    writer = csv.DictWriter(buffer, fieldnames=CSV_FIELDS, extrasaction="ignore")
    writer.writeheader()
    writer.writerows(merged["input_rows"])  # every input row, pooled or not
    out.write_text(buffer.getvalue())
    return [out]


RENDERERS = {"md": to_markdown, "html": to_html, "csv": to_csv}
