"""The results table of a sweep, and the per-case lines shown while it runs."""
from __future__ import annotations

from rich import box
from rich.markup import escape
from rich.table import Table

from ..cases import Case

NO_CLEAR_DIFFERENCE = "no clear difference"  # what a ratio whose 95% CI includes 1.0 says instead of a number
_STATUS_STYLE = {"ok": "green", "failed": "bold red", "skipped": "yellow", "unavailable": "dim"}
_VARYING = ("resolution", "threads", "mode")  # shown only when they vary within the sweep


def ratio_text(ratio: dict | None) -> str:
    """``1.21x (1.17-1.25)``, or the words when the CI includes 1.0."""
    if not ratio:
        return ""
    if not ratio["clear"]:
        return NO_CLEAR_DIFFERENCE
    low, high = ratio["ci95"]
    return f"{ratio['ratio']:.2f}x ({low:.2f}-{high:.2f})"


def format_ms(value: float | None) -> str:
    return "" if value is None else f"{value:.3f}" if value < 10 else f"{value:.2f}" if value < 100 else f"{value:.1f}"


def precision_text(result: dict) -> str:
    asked, got = result["case"]["precision"], result.get("precision_effective")
    if got is None:
        return asked
    return got if got == asked else f"{got} ({asked})"


def artifact_text(artifact: dict | None) -> str:
    """What an export made, in a few words: time, size, ops, precision."""
    if not artifact:
        return ""
    made = "reused from the cache" if artifact.get("cache_hit") else f"made in {artifact.get('export_s', 0):.1f} s"
    parts = [f"{artifact.get('size_bytes', 0) / 1e6:.1f} MB {made}"]
    if artifact.get("ops_total"):
        parts.append(f"{artifact['ops_total']} ops")
    precision = artifact.get("weight_precision") or artifact.get("precision")
    if precision:
        parts.append(f"{precision} weights" if artifact.get("weight_precision") else precision)
    return ", ".join(parts)


def case_line(result: dict, previous: dict | None = None) -> str:
    """One line for a finished case, as printed during the sweep (a reason the ``previous``
    case already gave is not repeated)."""
    label = escape(Case.from_dict(result["case"]).label)
    status = result["status"]
    if status != "ok":
        made = artifact_text(result.get("artifact"))
        error = str(result.get("error"))
        if previous and previous.get("status") == status and str(previous.get("error")) == error:
            error = "the same reason"
        return (f"[{_STATUS_STYLE[status]}]{status}[/] {label}: {escape(error)}"
                + (f" [dim]({escape(made)})[/]" if made else ""))
    latency = result.get("latency_ms")
    device = result.get("device_latency_ms")
    timing = f"p50 {format_ms(latency['p50'])} ms, " if latency else ""
    timing += f"GPU p50 {format_ms(device['p50'])} ms, " if device else ""
    return (f"[green]ok[/] {label}: {timing}{result['throughput_ips']:.1f} img/s, "
            f"{precision_text(result)}, rel err {result['parity']['rel_l2']:.1e}")


def results_table(results: list[dict], title: str = "RepNeXt benchmark") -> Table:
    cases = [r["case"] for r in results]
    varying = [k for k in _VARYING if len({c[k] for c in cases}) > 1]
    table = Table(title=title, box=box.SIMPLE_HEAVY)
    gpu = any(r.get("device_latency_ms") for r in results)
    headers = ["variant", "form", "backend", "precision", "batch", *varying,
               "p50 ms", "p90 ms", "p99 ms", "CV", *(["GPU p50"] if gpu else []), "img/s", "peak RSS", "rel err",
               "fused speedup\n(95% CI)", "status"]
    for header in headers:
        table.add_column(header, justify="left" if header in ("variant", "form", "backend", "status") else "right",
                         no_wrap=True)
    noisy = False
    for result in results:
        case, status = result["case"], result["status"]
        latency = result.get("latency_ms") or {}
        cv = ""
        if latency:
            cv = f"{latency['cv'] * 100:.1f}%"
            if latency.get("noisy"):
                cv, noisy = f"[yellow]{cv} ![/]", True
        speedup = ratio_text(result.get("fused_speedup"))
        if speedup == NO_CLEAR_DIFFERENCE:
            speedup = f"[dim]{speedup}[/]"
        elif speedup and result["fused_speedup"]["ratio"] < 1:
            speedup = f"[yellow]{speedup}[/]"
        unconverged = (result.get("rounds") or {}).get("converged") is False
        memory = result.get("memory") or {}
        words = [w.replace("_", "-") for w in Case.from_dict(case).option_words]
        backend = case["backend"] + (f"/{case['device']}" if case["device"] != "cpu" else "")
        backend += f" ({', '.join(words)})" if words else ""
        table.add_row(
            case["variant"], case["form"], backend, precision_text(result), str(case["batch"]),
            *(str(case[k]) for k in varying),
            format_ms(latency.get("p50")) + (" [yellow]~[/]" if unconverged else ""),
            format_ms(latency.get("p90")), format_ms(latency.get("p99")), cv,
            *([format_ms((result.get("device_latency_ms") or {}).get("p50"))] if gpu else []),
            f"{result['throughput_ips']:.1f}" if result.get("throughput_ips") else "",
            f"{memory['peak_rss_mb']:.0f} MB" if memory.get("peak_rss_mb") else "",
            f"{result['parity']['rel_l2']:.1e}" if result.get("parity") else "",
            speedup,
            f"[{_STATUS_STYLE[status]}]{status}[/]",
        )
    captions = ["! noisy: the IQR is more than 10% of the median"] if noisy else []
    if any((r.get("rounds") or {}).get("converged") is False for r in results):
        captions.append("~ not converged: its 95% CI is wider than --target-ci when the budget ran out")
    if gpu:
        captions.append("p50/p90/p99: host end to end, copies included; GPU p50: CUDA events around the compute")
    table.caption = "\n".join(captions) or None
    return table


def artifacts_table(results: list[dict]) -> Table | None:
    """Cases whose model was exported but could not be timed here (Core ML off macOS): what the
    export made. None when there are none."""
    rows = [r for r in results if r["status"] != "ok" and r.get("artifact")]
    if not rows:
        return None
    table = Table(title="Exported, not timed here", box=box.SIMPLE_HEAVY)
    for header in ("variant", "form", "backend", "format", "weights", "size", "ops", "export s", "MACs"):
        table.add_column(header, justify="left" if header in ("variant", "form", "backend", "format") else "right")
    for result in rows:
        case, artifact = result["case"], result["artifact"]
        hit = artifact.get("cache_hit")
        table.add_row(case["variant"], case["form"], f"{case['backend']}/{case['device']}",
                      str(artifact.get("model_format", "")), str(artifact.get("weight_precision", "")),
                      f"{artifact['size_bytes'] / 1e6:.1f} MB", str(artifact.get("ops_total", "")),
                      "cached" if hit else f"{artifact.get('export_s', 0):.1f}",
                      f"{result['model']['macs'] / 1e6:.0f} M" if result.get("model") else "")
    return table


def problem_lines(results: list[dict]) -> list[str]:
    """Why cases did not run, each distinct reason once with the number of cases it hit; and
    every case in which ONNX Runtime ran nodes on the CPU behind a GPU provider."""
    reasons: dict[tuple[str, str], int] = {}
    for result in results:
        if result["status"] != "ok":
            key = (result["status"], str(result.get("error")))
            reasons[key] = reasons.get(key, 0) + 1
    lines = [f"[{_STATUS_STYLE[status]}]{status}[/] ({count} case{'s' if count > 1 else ''}): {escape(error)}"
             for (status, error), count in reasons.items()]
    for result in results:
        backend = result.get("backend") or {}
        fallback = backend.get("cpu_fallback_nodes")
        if fallback:
            total = sum(backend.get("placement", {}).values())
            lines.append(f"[yellow]CPU fallback[/] {escape(Case.from_dict(result['case']).label)}: {len(fallback)} of "
                         f"{total} nodes ran on the CPU: {escape(', '.join(fallback[:8]))}"
                         + (" ..." if len(fallback) > 8 else ""))
    return lines


def sweep_lines(sweep: dict) -> list[str]:
    """How the rounds went: how many, why they stopped, and which cases did not converge."""
    plan = sweep.get("plan") or {}
    why = {"converged": f"every case's 95% CI within +-{plan.get('target_ci', 0):.0%}",
           "budget": f"the {plan.get('budget_s', 0):g} s budget was spent",
           "interrupted": "interrupted"}.get(sweep.get("stopped", ""), "")
    lines = [f"[dim]{sweep.get('rounds', 0)} rounds in {sweep.get('wall_s', 0):.0f} s, in a shuffled order per "
             f"round (seed {plan.get('seed', 0)}); stopped: {why}[/]"]
    missed = sweep.get("not_converged") or []
    if missed:
        lines.append(f"[yellow]not converged[/] ({len(missed)}): {escape(', '.join(missed))} (more --budget, a longer "
                     "--block or a quieter machine)")
    return lines
