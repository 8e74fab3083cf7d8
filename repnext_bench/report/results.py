"""The results table of a sweep, and the per-case lines shown while it runs."""
from __future__ import annotations

from rich import box
from rich.markup import escape
from rich.table import Table

from ..cases import Case

_STATUS_STYLE = {"ok": "green", "failed": "bold red", "skipped": "yellow", "unavailable": "dim"}
_VARYING = ("resolution", "threads", "mode")  # shown only when they vary within the sweep


def format_ms(value: float | None) -> str:
    return "" if value is None else f"{value:.3f}" if value < 10 else f"{value:.2f}" if value < 100 else f"{value:.1f}"


def _matching_train(result: dict, by_case: dict[Case, dict]) -> dict | None:
    case = Case.from_dict(result["case"])
    if case.form != "fused":
        return None
    return by_case.get(Case.from_dict({**result["case"], "form": "train"}))


def fused_speedup(result: dict, by_case: dict[Case, dict]) -> float | None:
    """How much faster the fused form is than the train-time form of the same case."""
    train = _matching_train(result, by_case)
    if not train or train.get("status") != "ok" or result.get("status") != "ok":
        return None
    if result["latency_ms"] and train["latency_ms"]:
        return train["latency_ms"]["p50"] / result["latency_ms"]["p50"]
    return result["throughput_ips"] / train["throughput_ips"]


def precision_text(result: dict) -> str:
    asked, got = result["case"]["precision"], result.get("precision_effective")
    if got is None:
        return asked
    return got if got == asked else f"{got} ({asked})"


def case_line(result: dict) -> str:
    """One line for a finished case, as printed during the sweep."""
    label = escape(Case.from_dict(result["case"]).label)
    status = result["status"]
    if status != "ok":
        return f"[{_STATUS_STYLE[status]}]{status}[/] {label}: {escape(str(result.get('error')))}"
    latency = result.get("latency_ms")
    timing = f"p50 {format_ms(latency['p50'])} ms, " if latency else ""
    return (f"[green]ok[/] {label}: {timing}{result['throughput_ips']:.1f} img/s, "
            f"{precision_text(result)}, rel err {result['parity']['rel_l2']:.1e}")


def results_table(results: list[dict], title: str = "RepNeXt benchmark") -> Table:
    cases = [r["case"] for r in results]
    varying = [k for k in _VARYING if len({c[k] for c in cases}) > 1]
    by_case = {Case.from_dict(r["case"]): r for r in results}
    table = Table(title=title, box=box.SIMPLE_HEAVY)
    headers = ["variant", "form", "backend", "precision", "batch", *varying,
               "p50 ms", "p90 ms", "p99 ms", "CV", "img/s", "peak RSS", "rel err", "fused\nspeedup", "status"]
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
        speedup = fused_speedup(result, by_case)
        memory = result.get("memory") or {}
        options = [name.replace("_", "-") for name, on in (case.get("options") or {}).items() if on]
        backend = case["backend"] + (f" ({', '.join(options)})" if options else "")
        table.add_row(
            case["variant"], case["form"], backend, precision_text(result), str(case["batch"]),
            *(str(case[k]) for k in varying),
            format_ms(latency.get("p50")), format_ms(latency.get("p90")), format_ms(latency.get("p99")), cv,
            f"{result['throughput_ips']:.1f}" if result.get("throughput_ips") else "",
            f"{memory['peak_rss_mb']:.0f} MB" if memory else "",
            f"{result['parity']['rel_l2']:.1e}" if result.get("parity") else "",
            f"{speedup:.2f}x" if speedup else "",
            f"[{_STATUS_STYLE[status]}]{status}[/]",
        )
    if noisy:
        table.caption = "! noisy: the IQR is more than 10% of the median"
    return table


def problem_lines(results: list[dict]) -> list[str]:
    """Why cases did not run, each distinct reason once with the number of cases it hit."""
    reasons: dict[tuple[str, str], int] = {}
    for result in results:
        if result["status"] != "ok":
            key = (result["status"], str(result.get("error")))
            reasons[key] = reasons.get(key, 0) + 1
    return [f"[{_STATUS_STYLE[status]}]{status}[/] ({count} case{'s' if count > 1 else ''}): {escape(error)}"
            for (status, error), count in reasons.items()]
