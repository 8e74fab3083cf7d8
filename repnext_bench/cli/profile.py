"""``repnext-bench profile``: one case (in one or more forms) through the runtime's own
profiler, in a worker process, with every node placed in the model's structure."""
from __future__ import annotations

import json
from contextlib import nullcontext
from pathlib import Path
from typing import Annotated

import typer
from rich.markup import escape

from ..quant import DEFAULT_CALIBRATION_SIZE
from . import options as o
from . import validators as v
from .common import check_checkpoint, check_writable, command_line, console, default_output, err_console, settings_from

PROFILED_BACKENDS = ("torch", "onnxruntime", "openvino")

Iterations = Annotated[int, typer.Option("--iterations", help="Profiled inferences (after 3 unprofiled warm-up "
                                         "runs).")]
Top = Annotated[int, typer.Option("--top", help="How many of the slowest nodes to list.")]
Trace = Annotated[Path | None, typer.Option("--trace", help="Also write a Chrome trace (chrome://tracing, "
                                            "ui.perfetto.dev).")]


def profile(
    selector: o.Variants = "m0", backend: o.Backends = "onnxruntime", forms: o.Forms = "fused",
    batch: o.Batch = "1", resolution: o.Resolution = "224", precision: o.Precision = "fp32", threads: o.Threads = "",
    iterations: Iterations = 20, duration: o.Duration = 1.0, top: Top = 15,
    as_json: o.Json = False, output: o.Output = None, trace: Trace = None, checkpoint: o.Checkpoint = None,
    cache_dir: o.CacheDir = None, no_cache: o.NoCache = False, opset: o.Opset = 17,
    case_timeout: o.CaseTimeout = 600.0, seed: o.Seed = 0, calibration: o.Calibration = None,
    calibration_size: o.CalibrationSize = DEFAULT_CALIBRATION_SIZE,
) -> None:
    """Where the time goes, node by node, placed in RepNeXt's stages, blocks and mixers.

    One variant, on torch, onnxruntime or openvino; --forms train,fused puts the forms side by side."""
    cases = _cases(selector, backend, forms, batch, resolution, precision, threads)
    v.positive(iterations, "--iterations")
    v.positive(top, "--top")
    v.at_least(duration, 0, "--duration")
    v.at_least(case_timeout, 0, "--case-timeout", strictly=True)
    v.opset(opset)
    if checkpoint is not None:
        check_checkpoint(checkpoint, [cases[0].variant])
    quantization = v.quantization_settings([cases[0].precision], calibration, calibration_size)
    path = output or default_output("profile")
    check_writable(path)
    if trace is not None:
        check_writable(trace, "--trace")
    plan = {"warmup_s": min(0.3, duration), "warmup_iters": 3, "min_duration_s": duration, "min_iters": 5}
    settings = settings_from(plan, opset=opset, cache_dir=cache_dir, no_cache=no_cache, checkpoint=checkpoint,
                             seed=seed, **quantization)
    report = _new_report(cases, iterations, settings)
    _profile_all(cases, settings, case_timeout, iterations, report, path, show=not as_json)
    results = report["results"]
    ok = [r for r in results if r["status"] == "ok"]
    if trace is not None:
        from ..profiling.trace import chrome_trace

        trace.write_text(json.dumps(chrome_trace(ok)))
    _show(report, ok, top, as_json, path, trace)
    if len(ok) < len(results):
        raise typer.Exit(1)


def _cases(selector: str, backend: str, forms: str, batch: str, resolution: str, precision: str,
           threads: str) -> list:
    """One case per form, from the checked options."""
    from ..backends import get_backend
    from ..core.cases import Case

    name = v.one_variant(selector)
    backend = v.choice(backend, "--backend", PROFILED_BACKENDS)
    form_list = v.forms(forms)
    precision = v.precision(precision)
    batch_size, side, thread_count = v.positive(batch, "--batch"), v.resolution(resolution), v.threads(threads)
    device = get_backend(backend).device
    return [Case(name, form, backend, device, precision, batch_size, side, thread_count, "latency")
            for form in form_list]


def _new_report(cases: list, iterations: int, settings) -> dict:
    from ..report.schema import new_report
    from ..system.environment import fingerprint

    first = cases[0]
    report = new_report(fingerprint(command_line()),
                        {"variant": first.variant, "backend": first.backend, "forms": [c.form for c in cases],
                         "batch": first.batch, "resolution": first.resolution, "precision": first.precision,
                         "threads": first.threads, "iterations": iterations, "settings": settings.to_dict()})
    report["kind"] = "profile"
    return report


def _profile_all(cases: list, settings, case_timeout: float, iterations: int, report: dict, path: Path,
                 show: bool) -> None:
    """Profile each case in a process of its own, writing the report after each."""
    from ..profiling.rollup import summarize_profile
    from ..report.schema import write_report
    from ..run.case_process import run_once
    from ..run.case_run import case_record
    from ..run.sweep import precheck

    availability_cache: dict = {}
    try:
        for case in cases:
            with err_console.status(f"profiling {escape(case.label)}", spinner="dots") if show else nullcontext():
                skipped = precheck(case, availability_cache)
                if skipped is None:
                    reply = run_once(case, settings, case_timeout, "profile", iterations=iterations)
                    result = reply if "status" in reply else case_record(case, "failed", reply["error"]).to_dict()
                else:
                    result = skipped.to_dict()
            if result["status"] == "ok":
                result["summary"] = summarize_profile(result)
            report["results"].append(result)
            write_report(report, path)
    except KeyboardInterrupt:
        err_console.print(f"[yellow]interrupted:[/] {len(report['results'])} of {len(cases)} profiles kept in {path}")
        raise typer.Exit(130) from None


def _show(report: dict, ok: list[dict], top: int, as_json: bool, path: Path, trace: Path | None) -> None:
    if as_json:
        from ..report.schema import to_json

        console.out(to_json(report))
        return
    from ..report.profile_view import accounting_lines, forms_table, rollup_table, top_table

    for result in report["results"]:
        if result["status"] != "ok":
            console.print(f"[red]{result['status']}[/] {escape(result['case']['form'])}: "
                          f"{escape(str(result['error']))}")
    for profile in ok:
        for line in accounting_lines(profile):
            console.print(line, highlight=False)
        console.print(top_table(profile, top))
        console.print(rollup_table(profile, "component"))
        console.print(rollup_table(profile, "stage"))
    if len(ok) > 1:
        console.print(forms_table(ok, "component"))
        console.print(forms_table(ok, "stage"))
    console.print(f"report: {path}" + (f"\ntrace: {trace}" if trace else ""))
