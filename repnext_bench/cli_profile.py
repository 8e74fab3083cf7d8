"""``repnext-bench profile``: one case (in one or more forms) through the runtime's own
profiler, in a worker process, with every node placed in the model's structure."""
from __future__ import annotations

import json
from contextlib import nullcontext
from pathlib import Path

import typer
from rich.markup import escape

from . import cli_common as common
from .cli_common import (UsageProblem, check_checkpoint, check_writable, console, default_output, err_console,
                         parse_forms, parse_option, parse_variant_names, usable_cores)
from .report.profile_view import accounting_lines, forms_table, rollup_table, top_table

PROFILED_BACKENDS = ("torch", "onnxruntime", "openvino")


def profile(
    variant: str = typer.Option("m0", "--variant", "-v", help="One variant, e.g. m4."),
    backend: str = typer.Option("onnxruntime", "--backend", "-b", help="torch, onnxruntime or openvino."),
    forms: str = typer.Option("fused", "--form", "--forms", "-f",
                              help="Forms, comma-separated: train, official, fused (train,fused puts them side by side)."),
    batch: int = typer.Option(1, "--batch", help="Batch size."),
    resolution: int = typer.Option(224, "--resolution", "-r", help="Input side in pixels (a multiple of 32)."),
    precision: str = typer.Option("fp32", "--precision", "-p", help="fp32, bf16, fp16 or auto, where the backend supports it."),
    threads: int = typer.Option(0, "--threads", "-t", help="Threads (default: the usable cores)."),
    iterations: int = typer.Option(20, "--iterations", help="Profiled inferences (after 3 unprofiled warm-up runs)."),
    duration: float = typer.Option(1.0, "--duration", help="Seconds of the timed loop without the profiler, before it."),
    top: int = typer.Option(15, "--top", help="How many of the slowest nodes to list."),
    as_json: bool = typer.Option(False, "--json", help="Print the report JSON instead of the tables."),
    output: Path | None = typer.Option(None, "--output", "-o", help="Report path (default: reports/profile-<UTC time>.json)."),
    trace: Path | None = typer.Option(None, "--trace", help="Also write a Chrome trace (chrome://tracing, ui.perfetto.dev)."),
    checkpoint: Path | None = typer.Option(None, "--checkpoint", help="Weights for the variant (random otherwise)."),
    cache_dir: Path | None = typer.Option(None, "--cache-dir", help="Export cache (default: $REPNEXT_BENCH_CACHE or ~/.cache/repnext-bench)."),
    no_cache: bool = typer.Option(False, "--no-cache", help="Export afresh and keep nothing."),
    opset: int = typer.Option(17, "--opset", help="ONNX opset of the export."),
    case_timeout: float = typer.Option(600.0, "--case-timeout", help="Stop a form's profile after this many seconds."),
    seed: int = typer.Option(0, "--seed", help="Seed of the random weights and input."),
) -> None:
    """Where the time goes, node by node, placed in RepNeXt's stages, blocks and mixers."""
    from .backends import get_backend
    from .cases import PRECISIONS, Case, parse_choices
    from .environment import fingerprint
    from .measure.timing import TimingPlan
    from .profiling.rollup import summarize_profile
    from .profiling.trace import chrome_trace
    from .report.schema import new_report, write_report
    from .case_process import run_once
    from .sweep import case_record, precheck
    from .lifecycle import Settings

    chosen = parse_variant_names(variant, "--variant")
    if len(chosen) != 1:
        raise UsageProblem(f"--variant takes one variant, not {len(chosen)} ({variant!r}); e.g. --variant m4")
    name = chosen[0]
    backend = parse_option(parse_choices, backend, "--backend", PROFILED_BACKENDS)[0]
    form_list = parse_forms(forms, "--form")
    precision = parse_option(parse_choices, precision, "--precision", PRECISIONS)[0]
    if batch < 1 or resolution <= 0 or resolution % 32 or threads < 0 or iterations < 1 or top < 1 or duration < 0:
        raise UsageProblem("--batch, --iterations and --top must be >= 1, --threads and --duration >= 0 and "
                           "--resolution a positive multiple of 32")
    if checkpoint is not None:
        check_checkpoint(checkpoint, [name])
    path = output or default_output("profile")
    check_writable(path)
    if trace is not None:
        check_writable(trace, "--trace")
    cases = [Case(name, form, backend, get_backend(backend).device, precision, batch, resolution,
                  threads or usable_cores(), "latency") for form in form_list]
    settings = Settings(plan=TimingPlan(warmup_s=min(0.3, duration), warmup_iters=3, min_duration_s=duration, min_iters=5),
                        opset=opset, cache_dir=str(cache_dir) if cache_dir else None, use_cache=not no_cache,
                        checkpoint=str(checkpoint) if checkpoint else None, seed=seed)
    report = new_report(fingerprint(["repnext-bench", *common.ARGV]),
                        {"variant": name, "backend": backend, "forms": form_list, "batch": batch,
                         "resolution": resolution, "precision": precision, "threads": cases[0].threads,
                         "iterations": iterations, "settings": settings.to_dict()})
    report["kind"] = "profile"
    availability_cache: dict = {}
    show = not as_json
    try:
        for case in cases:
            with err_console.status(f"profiling {escape(case.label)}", spinner="dots") if show else nullcontext():
                result = precheck(case, availability_cache)
                if result is None:
                    reply = run_once(case, settings, case_timeout, "profile", iterations=iterations)
                    result = reply if "status" in reply else case_record(case, "failed", reply["error"])
            if result["status"] == "ok":
                result["summary"] = summarize_profile(result)
            report["results"].append(result)
            write_report(report, path)
    except KeyboardInterrupt:
        err_console.print(f"[yellow]interrupted:[/] {len(report['results'])} of {len(cases)} profiles kept in {path}")
        raise typer.Exit(130) from None
    if trace is not None:
        trace.write_text(json.dumps(chrome_trace([r for r in report["results"] if r["status"] == "ok"])))
    ok = [r for r in report["results"] if r["status"] == "ok"]
    if as_json:
        console.out(json.dumps(report, indent=1))
    else:
        _print(ok, report["results"], top)
        console.print(f"report: {path}" + (f"\ntrace: {trace}" if trace else ""))
    if len(ok) < len(report["results"]):
        raise typer.Exit(1)


def _print(ok: list[dict], results: list[dict], top: int) -> None:
    for result in results:
        if result["status"] != "ok":
            console.print(f"[red]{result['status']}[/] {escape(result['case']['form'])}: {escape(str(result['error']))}")
    for profile in ok:
        for line in accounting_lines(profile):
            console.print(line, highlight=False)
        console.print(top_table(profile, top))
        console.print(rollup_table(profile, "component"))
        console.print(rollup_table(profile, "stage"))
    if len(ok) > 1:
        console.print(forms_table(ok, "component"))
        console.print(forms_table(ok, "stage"))
