"""Throughput and serving across machines: images/s against streams (each ``--streams`` grid),
p99 against the offered rate (each ``--p99`` search), and, for a latency bound, the highest
rate each machine sustains."""
from __future__ import annotations

from .plots import _finish, _plain_log_ticks, _pyplot

_LINE_LIMIT = 12  # machine/backend/variant lines per plot


def _label(row: dict) -> str:
    return f"{row['machine']} / {row['backend']} / {row['variant']} {row['form']}"


def _case_text(row: dict) -> str:
    """Everything that makes a case but its streams (and the machine's runtime, when it differs)."""
    device = f"/{row['device']}" if row["device"] != "cpu" else ""
    options = f" {row['options']}" if row["options"] else ""
    return (f"{row['machine']} / {row['backend']}{device} / {row['variant']} {row['form']} {row['asked']} "
            f"b{row['batch']} {row['resolution']}px t{row['threads']}{options} [{row['runtime'] or '?'}]")


def streams_curves(rows: list[dict]) -> dict[str, list[dict]]:
    """Each throughput grid (one case at 1, 2, 4... streams), its points by streams."""
    curves: dict[str, list[dict]] = {}
    for row in rows:
        if row["status"] == "ok" and row["mode"] == "throughput" and row["throughput_ips"]:
            curves.setdefault(_case_text(row), []).append(row)
    return {key: sorted(points, key=lambda r: r["streams"]) for key, points in curves.items() if len(points) > 1}


def searches(rows: list[dict]) -> list[dict]:
    """The served rows whose rate was searched for a p99 bound."""
    return [r for r in rows if r["status"] == "ok" and r["server"] and r["server"].get("search")]


def rate_under_bound(rows: list[dict]) -> list[dict]:
    """Per machine, variant, resolution, batch and bound: the configuration that sustained the highest
    rate with its p99 under the bound, with the others tried."""
    grouped: dict[tuple, list[dict]] = {}
    for row in searches(rows):
        search = row["server"]["search"]
        key = (row["machine"], row["variant"], row["resolution"], row["batch"], search["bound_ms"])
        grouped.setdefault(key, []).append(row)
    answers = []
    for (machine, variant, resolution, batch, bound), group in grouped.items():
        group.sort(key=lambda r: -(r["server"]["search"]["best_qps"] or 0))
        best = group[0]
        answers.append({"machine": machine, "variant": variant, "resolution": resolution, "batch": batch,
                        "bound_ms": bound, "row": best, "others": group[1:]})
    return sorted(answers, key=lambda a: (a["variant"], a["machine"], a["resolution"], a["bound_ms"]))


def tables(rows: list[dict]) -> list[tuple[str, list[str], list[list[str]]]]:
    """The serving tables, when the reports have throughput grids or p99 searches."""
    found = []
    curves = streams_curves(rows)
    if curves:
        headers = ["case", "img/s by streams", "best (over the next, 95% CI)"]
        found.append(("Throughput against streams (requests in flight x threads each)", headers,
                      [[key, ", ".join(f"{r['streams']}x{r['threads_per_stream']}: {r['throughput_ips']:.0f}"
                                       for r in points), _best(points)]
                       for key, points in curves.items()]))
    answers = rate_under_bound(rows)
    if answers:
        found.append(("What should I ship for a latency bound: the highest rate whose p99 stays under it",
                      ["variant", "px", "batch", "machine", "p99 bound ms", "backend", "form", "precision", "streams",
                       "requests/s", "p99 ms there", "search", "others tried (requests/s)"],
                      [[a["variant"], str(a["resolution"]), str(a["batch"]), a["machine"], f"{a['bound_ms']:g}",
                        a["row"]["backend"], a["row"]["form"], a["row"]["precision"],
                        f"{a['row']['streams']}x{a['row']['threads_per_stream']}", _rate(a["row"]),
                        f"{a['row']['server']['p99_ms']:.3g}", a["row"]["server"]["search"]["stopped"],
                        "; ".join(f"{o['backend']} {o['form']} {o['streams']}x{o['threads_per_stream']}: "
                                  f"{_rate(o)}" for o in a["others"]) or "—"]
                       for a in answers]))
    return found


def _best(points: list[dict]) -> str:
    """The point with the most images/s, and its lead over the next with a 95% CI from the
    blocks of both (or no clear difference)."""
    from ..report.results import streams_lead

    ranked = sorted(points, key=lambda r: -r["throughput_ips"])
    best, runner_up = ranked[0], ranked[1]
    return (f"{best['streams']}x{best['threads_per_stream']} over {runner_up['streams']}x"
            f"{runner_up['threads_per_stream']}: "
            f"{streams_lead(best['throughput_blocks_ips'], runner_up['throughput_blocks_ips'])}")


def _rate(row: dict) -> str:
    best = row["server"]["search"]["best_qps"]
    return f"{best:.0f}" if best else "none under the bound"


def streams_plot(rows: list[dict]) -> bytes:
    plt = _pyplot()
    figure, ax = plt.subplots(figsize=(9, 4.5))
    for key, points in list(streams_curves(rows).items())[:_LINE_LIMIT]:
        ax.plot([r["streams"] for r in points], [r["throughput_ips"] for r in points], "o-", label=key)
    ax.set_xscale("log", base=2)
    ax.set_xticks(sorted({r["streams"] for points in streams_curves(rows).values() for r in points}))
    _plain_log_ticks(ax.xaxis)
    ax.grid(alpha=0.3)
    return _finish(figure, ax, "streams (requests in flight; the threads split between them)", "images/s",
                   "Throughput against streams")


def p99_plot(rows: list[dict]) -> bytes:
    plt = _pyplot()
    figure, ax = plt.subplots(figsize=(9, 4.5))
    bounds = set()
    for row in searches(rows)[:_LINE_LIMIT]:
        curve = row["server"]["search"]["curve"]
        bounds.add(row["server"]["search"]["bound_ms"])
        ax.plot([t["qps_offered"] for t in curve], [t["p99_ms"] for t in curve], "o-",
                label=f"{_label(row)} {row['streams']}x{row['threads_per_stream']}")
    for bound in sorted(bounds):
        ax.axhline(bound, color="black", linewidth=0.8, linestyle="--")
    ax.set_xscale("log")
    ax.set_yscale("log")
    _plain_log_ticks(ax.xaxis)
    _plain_log_ticks(ax.yaxis)
    ax.grid(which="both", alpha=0.3)
    return _finish(figure, ax, "offered rate (requests/s, Poisson arrivals)", "p99 latency, queue included (ms)",
                   "p99 against the request rate (dashed: the bound searched for)")


def plots(rows: list[dict]) -> dict[str, bytes]:
    found = {}
    if streams_curves(rows):
        found["throughput-streams"] = streams_plot(rows)
    if searches(rows):
        found["server-p99"] = p99_plot(rows)
    return found
