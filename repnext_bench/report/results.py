"""The results table of a sweep, and the per-case lines shown while it runs."""
from __future__ import annotations

from dataclasses import replace

from rich import box
from rich.markup import escape
from rich.table import Table

from ..core.records import EXPORT_INCLUDED, MAX_ROUNDS, ArtifactRecord, Ratio, Result, ServerRecord, as_result
from ..measure.ratios import unpaired_ratio

NO_CLEAR_DIFFERENCE = "no clear difference"  # what a ratio whose 95% CI includes 1.0 says instead of a number
_STATUS_STYLE = {"ok": "green", "failed": "bold red", "skipped": "yellow", "unavailable": "dim"}
_VARYING = ("resolution", "threads", "mode")  # shown only when they vary within the sweep


def ratio_text(ratio: Ratio | dict | None) -> str:
    """``1.21x (1.17-1.25)``, or the words when the CI includes 1.0."""
    if not ratio:
        return ""
    if isinstance(ratio, dict):
        ratio = Ratio.from_dict(ratio)
    if not ratio.clear:
        return NO_CLEAR_DIFFERENCE
    low, high = ratio.ci95
    return f"{ratio.ratio:.2f}x ({low:.2f}-{high:.2f})"


def format_ms(value: float | None) -> str:
    return "" if value is None else f"{value:.3f}" if value < 10 else f"{value:.2f}" if value < 100 else f"{value:.1f}"


def export_in_peak(result: Result) -> bool:
    scope = result.memory.peak_scope if result.memory else None
    return bool(scope) and scope.endswith(EXPORT_INCLUDED)


def synthetic_calibration(result: Result) -> bool:
    calibration = result.quantization.calibration if result.quantization else None
    return bool(calibration) and calibration.get("source") == "synthetic"


def precision_text(asked: str, got: str | None) -> str:
    """What ran, and what was asked for when it differs."""
    if got is None:
        return asked
    return got if got == asked else f"{got} ({asked})"


def artifact_text(artifact: ArtifactRecord | None) -> str:
    """What an export made, in a few words: time, size, ops, precision."""
    if not artifact:
        return ""
    made = "reused from the cache" if artifact.cache_hit else f"made in {artifact.export_s or 0:.1f} s"
    parts = [f"{artifact.size_bytes / 1e6:.1f} MB {made}"]
    if artifact.ops_total:
        parts.append(f"{artifact.ops_total} ops")
    if artifact.weight_precision or artifact.precision:
        parts.append(f"{artifact.weight_precision} weights" if artifact.weight_precision else artifact.precision)
    return ", ".join(parts)


def case_line(result: Result | dict, previous: Result | dict | None = None) -> str:
    """One line for a finished case, as printed during the sweep (a reason the ``previous``
    case already gave is not repeated)."""
    result = as_result(result)
    label = escape(result.label)
    if not result.ok:
        made = artifact_text(result.artifact)
        error = str(result.error)
        if previous and as_result(previous).status == result.status and str(as_result(previous).error) == error:
            error = "the same reason"
        return (f"[{_STATUS_STYLE[result.status]}]{result.status}[/] {label}: {escape(error)}"
                + (f" [dim]({escape(made)})[/]" if made else ""))
    timing = f"p50 {format_ms(result.p50_ms)} ms, " if result.latency_ms else ""
    timing += f"GPU p50 {format_ms(result.device_latency_ms.p50)} ms, " if result.device_latency_ms else ""
    return (f"[green]ok[/] {label}: {timing}{result.throughput_ips:.1f} img/s, "
            f"{precision_text(result.case.precision, result.precision_effective)}, rel err {result.rel_l2:.1e}")


def results_table(results: list[Result | dict], title: str = "RepNeXt benchmark") -> Table:
    """One row per case; of a ``--streams`` grid only its best point (the grid is in
    :func:`grid_lines`)."""
    results = [r for r in map(as_result, results) if r.best_streams is not False]
    varying = [k for k in _VARYING if len({getattr(r.case, k) for r in results}) > 1]
    concurrent = any(r.case.mode != "latency" for r in results)
    served = any(r.server for r in results)
    table = Table(title=title, box=box.SIMPLE_HEAVY)
    gpu = any(r.device_latency_ms for r in results)
    speedups = any(r.fused_speedup for r in results) or not (concurrent or served)
    headers = ["variant", "form", "backend", "precision", "batch", *varying, *(["streams"] if concurrent else []),
               "p50 ms", "p90 ms", "p99 ms", "CV", *(["GPU p50"] if gpu else []), "img/s",
               *(["req/s\n(offered)", "over\nbound"] if served else []), "peak RSS", "rel err",
               *(["fused speedup\n(95% CI)"] if speedups else []), "status"]
    for header in headers:
        table.add_column(header, justify="left" if header in ("variant", "form", "backend", "status") else "right",
                         no_wrap=True)
    noisy = any(r.latency_ms and r.latency_ms.noisy and r.case.mode == "latency" for r in results)
    for result in results:
        row = _row(result, varying, gpu, concurrent, served)
        table.add_row(*(row if speedups else row[:-2] + row[-1:]))
    captions = ["! noisy: the IQR is more than 10% of the median"] if noisy else []
    if any(r.converged is False for r in results):
        captions.append("~ not converged: its 95% CI is wider than --target-ci when the budget ran out")
    if gpu:
        captions.append("p50/p90/p99: host end to end, copies included; GPU p50: CUDA events around the compute")
    if concurrent:
        captions.append("streams: requests served at once x threads each; img/s: all streams together")
    if served:
        captions.append("server mode: latency from each request's arrival (Poisson) to its end, queue included")
    if any(export_in_peak(r) for r in results):
        captions.append("* peak RSS includes making the export (and quantizing, for INT8): no process of the case "
                        "reused it from the cache")
    if any(synthetic_calibration(r) for r in results):
        captions.append("syn: INT8 calibrated on synthetic inputs, which says nothing about accuracy "
                        "(--calibration DIR)")
    if any(r.case.precision == "int8" and r.parity and r.parity.images for r in results):
        captions.append("rel err of INT8: on its evaluation inputs (the lines below say which), against the fp32 "
                        "train-time model")
    table.caption = "\n".join(captions) or None
    return table


def _row(result: Result, varying: list[str], gpu: bool, concurrent: bool, served: bool) -> list[str]:
    case, latency = result.case, result.latency_ms
    unconverged = " [yellow]~[/]" if result.converged is False else ""  # on what the CI was of
    cv = ""
    if latency and latency.cv is not None and case.mode == "latency":  # a queue's spread is its load
        cv = f"{latency.cv * 100:.1f}%" + (" !" if latency.noisy else "")
        cv = f"[yellow]{cv}[/]" if latency.noisy else cv
    speedup = ratio_text(result.fused_speedup)
    if speedup == NO_CLEAR_DIFFERENCE:
        speedup = f"[dim]{speedup}[/]"
    elif speedup and result.fused_speedup.ratio < 1:
        speedup = f"[yellow]{speedup}[/]"
    words = [w.replace("_", "-") for w in case.option_words]
    backend = case.backend + (f"/{case.device}" if case.device != "cpu" else "")
    backend += f" ({', '.join(words)})" if words else ""
    return [
        case.variant, case.form, backend, precision_text(case.precision, result.precision_effective)
        + (" syn" if synthetic_calibration(result) else ""), str(case.batch),
        *(str(getattr(case, k)) for k in varying),
        *([f"{case.streams}x{case.threads_per_stream}" if case.mode != "latency" else ""] if concurrent else []),
        format_ms(result.p50_ms) + (unconverged if case.mode == "latency" else ""),
        format_ms(latency.p90 if latency else None), format_ms(latency.p99 if latency else None), cv,
        *([format_ms(result.device_latency_ms.p50 if result.device_latency_ms else None)] if gpu else []),
        (f"{result.throughput_ips:.1f}" if result.throughput_ips else "")
        + (unconverged if case.mode == "throughput" else ""),
        *(_server_cells(result.server) if served else []),
        (f"{result.peak_rss_mb:.0f} MB" + (" *" if export_in_peak(result) else "")) if result.peak_rss_mb else "",
        f"{result.rel_l2:.1e}" if result.parity else "",
        speedup,
        f"[{_STATUS_STYLE[result.status]}]{result.status}[/]",
    ]


def _server_cells(server: ServerRecord | None) -> list[str]:
    if server is None:
        return ["", ""]
    missed = "" if server.missed is None else f"{server.missed} of {server.requests}"
    return [f"{server.qps_achieved:.0f} ({server.qps_offered:.0f})", missed]


def streams_lead(best_blocks: list[float] | None, runner_up_blocks: list[float] | None) -> str:
    """The best streams point's lead over the next in images/s, with a 95% CI from the blocks of
    both (or no clear difference): the results table and the hardware report say it alike."""
    return ratio_text(unpaired_ratio(best_blocks or [], runner_up_blocks or [])) or "too few blocks to tell"


def grid_lines(results: list[Result | dict]) -> list[str]:
    """Each ``--streams`` grid: images/s at every point tried, the best one named; and each
    ``--p99`` search: p99 at every rate tried, and the highest rate that met the bound."""
    lines = []
    results = [as_result(r) for r in results]
    for best in (r for r in results if r.best_streams):
        points = sorted((r for r in results if r.best_streams is not None and r.ok
                         and replace(r.case, streams=1) == replace(best.case, streams=1)),
                        key=lambda r: r.case.streams)
        curve = ", ".join(f"{r.case.streams}x{r.case.threads_per_stream} {r.throughput_ips:.0f}" for r in points)
        runner_up = max((r for r in points if r is not best), key=lambda r: r.throughput_ips)
        lead = streams_lead(best.throughput_blocks_ips, runner_up.throughput_blocks_ips)
        lines.append(f"[dim]streams x threads, img/s: {curve}; best {best.case.streams}x"
                     f"{best.case.threads_per_stream}, over {runner_up.case.streams}x"
                     f"{runner_up.case.threads_per_stream}: {lead}[/] ({escape(replace(best.case, streams=1).label)})")
    for result in results:
        search = result.server.search if result.server else None
        if search:
            curve = ", ".join(f"{t['qps_offered']:.0f}/s p99 {format_ms(t['p99_ms'])}" + _ci(t.get("p99_ci_ms"))
                              for t in search["curve"])
            found = (f"highest rate under {search['bound_ms']:g} ms: {search['best_qps']:.0f}/s"
                     if search["best_qps"] else f"no rate tried kept p99 under {search['bound_ms']:g} ms")
            lines.append(f"[dim]{escape(result.label)}: {found} (stopped: {search['stopped']}); tried {curve}[/]")
    return lines


def _ci(interval: list[float] | None) -> str:
    return f" ({format_ms(interval[0])}-{format_ms(interval[1])})" if interval else ""


def artifacts_table(results: list[Result | dict]) -> Table | None:
    """Cases whose model was exported but could not be timed here (Core ML off macOS): what the
    export made. None when there are none."""
    rows = [r for r in map(as_result, results) if not r.ok and r.artifact]
    if not rows:
        return None
    table = Table(title="Exported, not timed here", box=box.SIMPLE_HEAVY)
    for header in ("variant", "form", "backend", "format", "weights", "size", "ops", "export s", "MACs"):
        table.add_column(header, justify="left" if header in ("variant", "form", "backend", "format") else "right")
    for result in rows:
        case, artifact = result.case, result.artifact
        table.add_row(case.variant, case.form, f"{case.backend}/{case.device}",
                      artifact.model_format or "", artifact.weight_precision or "",
                      f"{artifact.size_bytes / 1e6:.1f} MB", str(artifact.ops_total or ""),
                      "cached" if artifact.cache_hit else f"{artifact.export_s or 0:.1f}",
                      f"{result.model.macs / 1e6:.0f} M" if result.model else "")
    return table


def problem_lines(results: list[Result | dict]) -> list[str]:
    """Why cases did not run, each distinct reason once with the number of cases it hit; and
    every case in which ONNX Runtime ran nodes on the CPU behind a GPU provider."""
    results = [as_result(r) for r in results]
    reasons: dict[tuple[str, str], int] = {}
    for result in results:
        if not result.ok:
            key = (result.status, str(result.error))
            reasons[key] = reasons.get(key, 0) + 1
    lines = [f"[{_STATUS_STYLE[status]}]{status}[/] ({count} case{'s' if count > 1 else ''}): {escape(error)}"
             for (status, error), count in reasons.items()]
    for result in results:
        backend = result.backend or {}  # the backend's own facts: ONNX Runtime's GPU placement
        fallback = backend.get("cpu_fallback_nodes")
        if fallback:
            total = sum(backend.get("placement", {}).values())
            lines.append(f"[yellow]CPU fallback[/] {escape(result.label)}: {len(fallback)} of "
                         f"{total} nodes ran on the CPU: {escape(', '.join(fallback[:8]))}"
                         + (" ..." if len(fallback) > 8 else ""))
    return lines


def short_labels(labels: list[str]) -> tuple[str, list[str]]:
    """(what every label shares, each one's rest): "M0 train onnxruntime/cpu fp32 ..." and its
    kin shortened to "M0 train" and "onnxruntime/cpu fp32 ..."; a variant with the same rest in
    a row of its family becomes a range ("M0-M5 train")."""
    if len(labels) < 2:
        return "", list(labels)
    split = [label.split(" ") for label in labels]
    width = min(map(len, split), default=0)
    shared = [i for i in range(1, width) if len({words[i] for words in split}) == 1]
    rests: dict[str, list[str]] = {}
    for words in split:
        rest = " ".join(w for i, w in enumerate(words) if i and i not in shared)
        rests.setdefault(rest, []).append(words[0])
    common = " ".join(split[0][i] for i in shared) if split else ""
    return common, [f"{_variant_range(names)} {rest}".strip() for rest, names in rests.items()]


def _variant_range(names: list[str]) -> str:
    """"M0, M1, M2" -> "M0-M2" where the names are consecutive variants of one family."""
    import re

    parsed = [re.fullmatch(r"M(\d+)(E?)", name) for name in names]
    if len(names) > 2 and all(parsed) and len({m.group(2) for m in parsed}) == 1:
        numbers = [int(m.group(1)) for m in parsed]
        if numbers == list(range(numbers[0], numbers[0] + len(numbers))):
            return f"{names[0]}-{names[-1]}"
    return ",".join(names)


def stop_reason(stopped: str, plan: dict) -> str:
    """Why the rounds stopped, in words, for each of STOP_REASONS (a reason this version does
    not know, from a newer report, as it is written)."""
    return {"converged": f"every case's 95% CI within +-{plan.get('target_ci', 0):.0%}",
            "budget": f"the {plan.get('budget_s', 0):g} s budget of rounds was spent",
            "wall limit": f"the {plan.get('max_wall_s') or 0:g} s --max-wall limit",
            "max rounds": f"the most rounds a sweep runs ({MAX_ROUNDS}), before every case's CI was within "
                          f"+-{plan.get('target_ci', 0):.0%}",
            "interrupted": "interrupted"}.get(stopped, stopped or "not recorded")


def sweep_lines(sweep: dict) -> list[str]:
    """How the sweep went: its rounds, why they stopped, where its time went, and (on one line)
    which cases did not converge."""
    plan = sweep.get("plan") or {}
    why = stop_reason(sweep.get("stopped") or "", plan)
    lines = []
    if sweep.get("rounds"):
        line = f"{sweep['rounds']} rounds in a shuffled order per round (seed {plan.get('seed', 0)}); stopped: {why}"
        if "timed_s" in sweep:
            wall = sweep.get("wall_s") or 0
            share = sweep["timed_s"] / wall if wall else 0
            line += (f". {wall:.0f} s in all: prepared in {sweep['prepare_s']:.0f} s (exports "
                     f"{sweep['export_s']:.0f} s), measured {sweep['measure_s']:.0f} s, of it {sweep['timed_s']:.0f} s "
                     f"of timed inferences ({share:.0%} of the wall clock)")
        lines.append(f"[dim]{line}[/]")
    missed = sweep.get("not_converged") or []
    if missed:
        common, parts = short_labels(missed)
        lines.append(f"[yellow]not converged[/] ({len(missed)}{', ' + escape(common) if common else ''}): "
                     f"{escape('; '.join(parts))}: more --budget, a longer --block or a quieter machine")
    return lines
