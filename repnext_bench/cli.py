"""The ``repnext-bench`` command line. It parses, validates and prints; the work is done elsewhere.

Heavy modules (torch and the runtimes) are imported inside the commands so that ``--help``
and usage errors answer at once.
"""
from __future__ import annotations

import json
import math
import sys
from contextlib import contextmanager
from pathlib import Path

import typer
from rich import box
from rich.markup import escape
from rich.progress import BarColumn, Progress, SpinnerColumn, TextColumn, TimeElapsedColumn
from rich.table import Table

from . import cli_common as common
from .cli_export import export
from .cli_gate import compare, gate
from .cli_profile import profile
from .cli_report import report
from .cli_verify import verify
from .cli_common import (ClickException, UsageError, UsageProblem, check_checkpoint, check_writable, console,
                         default_output, err_console, parse_backends, parse_forms, parse_option, parse_variant_names,
                         usable_cores)

app = typer.Typer(
    name="repnext-bench",
    help="Benchmark and profile the RepNeXt family (M0-M5, M0E-M2E) in its train-time and fused forms.",
    no_args_is_help=True,
    add_completion=False,
    pretty_exceptions_enable=False,
)


def _positive_multiple_of_32(value: int) -> int:
    if value <= 0 or value % 32:
        raise UsageProblem(f"--resolution {value} is not valid: use a positive multiple of 32 (the network downsamples by 32), e.g. 224")
    return value


def _print_version(value: bool) -> None:
    if value:
        from . import __version__

        console.print(f"repnext-bench {__version__}")
        raise typer.Exit()


@app.callback()
def _root(
    version: bool = typer.Option(False, "--version", callback=_print_version, is_eager=True,
                                 help="Print the version and exit."),
) -> None:
    """Benchmark and profile the RepNeXt family (M0-M5, M0E-M2E) in its train-time and fused forms."""


@app.command()
def variants(
    selector: str = typer.Option("all", "--variants", "-v", help="Which variants: m0-m5, m0,m3, M4, m0e-m2e or all."),
    resolution: int = typer.Option(224, "--resolution", "-r", help="Input side in pixels (a multiple of 32)."),
    as_json: bool = typer.Option(False, "--json", help="Print JSON (one object per variant and form) instead of a table."),
) -> None:
    """List the variants: params and MACs of each form, beside the paper's figures."""
    from .models import VariantError, parse_variants

    try:
        chosen = parse_variants(selector)
    except VariantError as exc:
        raise UsageProblem(f"--variants: {exc}") from exc
    _positive_multiple_of_32(resolution)
    from .catalog import form_counts  # counting needs torch: imported once the options are known good
    from .report.variants import variants_notes, variants_table

    rows = []
    with err_console.status("counting parameters and MACs") as status:
        for variant in chosen:
            status.update(f"counting parameters and MACs: {variant.name}")
            rows.append((variant, form_counts(variant, resolution)))
    if as_json:
        records = []
        for variant, counts in rows:
            paper = vars(variant.paper)
            records.extend({**c.to_dict(), "paper": paper} for c in counts.values())
        console.out(json.dumps(records, indent=2))
        return
    console.print(variants_table(rows, resolution))
    for note in variants_notes(rows):
        console.print(f"[yellow]note:[/] {escape(note)}")


@app.command()
def run(
    selector: str = typer.Option("m0-m5", "--variants", "-v", help="Which variants: m0-m5, m0,m3, M4, m0e-m2e or all."),
    backend: str = typer.Option("onnxruntime", "--backend", "-b",
                                help="Backends, comma-separated: torch, onnxruntime, openvino, cuda, tensorrt, coreml."),
    device: str = typer.Option("", "--device", "-d",
                               help="Devices, comma-separated (default: each backend's first): cpu; cuda or tensorrt "
                                    "(onnxruntime's GPU providers); all, cpu_only, cpu_and_gpu, cpu_and_ne (coreml "
                                    "compute units)."),
    forms: str = typer.Option("train,fused", "--forms", "-f", help="Forms: train, official, fused."),
    batch: str = typer.Option("1", "--batch", help="Batch sizes, e.g. 1,8,32."),
    resolution: str = typer.Option("224", "--resolution", "-r", help="Input sides in pixels (multiples of 32), e.g. 224,256."),
    threads: str = typer.Option("", "--threads", "-t", help="Threads per case, e.g. 1,2 (default: the usable cores)."),
    precision: str = typer.Option("fp32", "--precision", "-p",
                                  help="fp32, bf16, fp16 or auto (the runtime chooses); unsupported combinations are skipped."),
    mode: str = typer.Option("latency", "--mode", "-m", help="latency (one request in flight) or throughput."),
    duration: float = typer.Option(1.0, "--duration", help="Measure each case at least this many seconds in all."),
    min_iters: int = typer.Option(10, "--min-iters", help="... and at least this many inferences in all."),
    warmup: float = typer.Option(0.3, "--warmup", help="Warm up each case's process at least this many seconds "
                                 "(and 3 inferences)."),
    block: float = typer.Option(0.1, "--block", help="Seconds of inferences in one block: each round runs one "
                                "block of every case."),
    min_rounds: int = typer.Option(8, "--min-rounds", help="Rounds at least."),
    target_ci: str = typer.Option("5%", "--target-ci", help="Stop when every case's 95% CI of the median is within "
                                  "this much of it (half-width, percent)..."),
    budget: float = typer.Option(50.0, "--budget", help="... or before the sweep would take longer than this many "
                                 "seconds (loads included; two rounds at least)."),
    restart_every: int = typer.Option(4, "--restart-every", help="Start every case's process afresh after this "
                                      "many rounds."),
    checkpoint: Path | None = typer.Option(None, "--checkpoint", help="Weights for the one selected variant (random otherwise)."),
    output: Path | None = typer.Option(None, "--output", "-o", help="Report path (default: reports/run-<UTC time>.json)."),
    as_json: bool = typer.Option(False, "--json", help="Print the report JSON instead of the table."),
    report_format: str = typer.Option("repnext", "--format", help="Layout of the --output file: repnext (the report "
                                      "contract) or pytest-benchmark (readable by pytest-benchmark compare)."),
    quiet: bool = typer.Option(False, "--quiet", "-q", help="No progress or table; print only the report path."),
    cache_dir: Path | None = typer.Option(None, "--cache-dir", help="Export cache (default: $REPNEXT_BENCH_CACHE or ~/.cache/repnext-bench)."),
    no_cache: bool = typer.Option(False, "--no-cache", help="Export afresh and keep nothing."),
    opset: int = typer.Option(17, "--opset", help="ONNX opset of the export."),
    channels_last: bool = typer.Option(False, "--channels-last", help="torch and cuda backends: channels-last memory format."),
    compile_model: bool = typer.Option(False, "--compile", help="torch and cuda backends: torch.compile the model."),
    autocast: bool = typer.Option(False, "--autocast", help="cuda backend: fp16/bf16 by autocast instead of casting the model."),
    cuda_graphs: bool = typer.Option(False, "--cuda-graphs", help="cuda and tensorrt backends: replay each inference as a CUDA graph."),
    coreml_format: str = typer.Option("mlprogram", "--coreml-format",
                                      help="coreml backend: mlprogram (iOS 16+), neuralnetwork (older devices), or both: mlprogram,neuralnetwork."),
    case_timeout: float = typer.Option(600.0, "--case-timeout", help="Stop a case (and record it failed) whose load or "
                                       "any one block takes longer than this many seconds."),
    seed: int = typer.Option(0, "--seed", help="Seed of the random weights and input."),
) -> None:
    """Measure latency, throughput, memory, cold start and output parity of a sweep of cases."""
    from .cases import MODES, PRECISIONS, expand, parse_choices, parse_int_list
    from .environment import fingerprint
    from .measure.timing import TimingPlan
    from .report.results import artifacts_table, problem_lines, results_table, sweep_lines
    from .report.schema import new_report
    from .sweep import run_sweep
    from .lifecycle import Settings

    variants = parse_variant_names(selector)
    backends = parse_backends(backend, device)
    form_list = parse_forms(forms, "--forms")
    batches = parse_option(parse_int_list, batch, "--batch")
    resolutions = parse_option(parse_int_list, resolution, "--resolution", multiple_of=32)
    thread_list = parse_option(parse_int_list, threads, "--threads") if threads else [usable_cores()]
    precisions = parse_option(parse_choices, precision, "--precision", PRECISIONS)
    modes = parse_option(parse_choices, mode, "--mode", MODES)
    if duration < 0 or warmup < 0 or min_iters < 1 or case_timeout <= 0:
        raise UsageProblem("--duration and --warmup must be >= 0, --min-iters >= 1 and --case-timeout > 0")
    rounds_plan = rounds_plan_from(block, min_rounds, target_ci, budget, restart_every, duration, min_iters, seed)
    from .export import opset_problem

    problem = opset_problem(opset)
    if problem:
        raise UsageProblem(problem)
    if checkpoint is not None:
        check_checkpoint(checkpoint, variants)
    report_format = parse_option(parse_choices, report_format, "--format", ("repnext", "pytest-benchmark"))[0]
    render = None
    if report_format == "pytest-benchmark":
        from .report.pytest_benchmark import to_pytest_benchmark as render
    path = output or default_output()
    check_writable(path)
    from .export.coreml import FORMATS

    coreml_formats = parse_option(parse_choices, coreml_format, "--coreml-format", FORMATS)
    torch_options = {"channels_last": channels_last, "compile": compile_model}
    switches = {"torch": torch_options, "cuda": {**torch_options, "autocast": autocast, "cuda_graphs": cuda_graphs},
                "tensorrt": {"cuda_graphs": cuda_graphs}}
    backend_options = {name: {k: v for k, v in chosen.items() if v} for name, chosen in switches.items()}
    backend_options["coreml"] = [{"coreml_format": f} for f in coreml_formats]
    cases = expand(variants, form_list, backends, precisions, batches, resolutions, thread_list, modes,
                   backend_options=backend_options)
    settings = Settings(
        plan=TimingPlan(warmup_s=warmup, warmup_iters=3), opset=opset,
        cache_dir=str(cache_dir) if cache_dir else None, use_cache=not no_cache,
        checkpoint=str(checkpoint) if checkpoint else None, seed=seed,
    )
    config = {"variants": variants, "backends": [b for b, _ in backends], "forms": form_list, "batch": batches,
              "resolution": resolutions, "threads": thread_list, "precision": precisions, "mode": modes,
              "settings": settings.to_dict(), "rounds": rounds_plan.to_dict(), "case_timeout_s": case_timeout,
              "torch_options": torch_options, "devices": sorted({d for _, d in backends}),
              "backend_options": backend_options}
    report = new_report(fingerprint(["repnext-bench", *common.ARGV]), config)
    show = not (quiet or as_json)
    try:
        with sweep_progress(show, rounds_plan.budget_s) as on_event:
            run_sweep(cases, settings, rounds_plan, case_timeout, report, path, render=render, on_event=on_event)
    except KeyboardInterrupt:
        err_console.print(f"[yellow]interrupted:[/] every finished block of {report['sweep']['finished']} of "
                          f"{len(cases)} cases kept in {path}")
        raise typer.Exit(130) from None
    failed = sum(r["status"] == "failed" for r in report["results"])
    if as_json:
        console.out(json.dumps(report, indent=1))
    elif quiet:
        console.out(str(path))
    else:
        console.print(results_table(report["results"], title=f"RepNeXt benchmark: {report['environment']['cpu']['model']}"))
        exported = artifacts_table(report["results"])
        if exported:
            console.print(exported)
        for line in [*problem_lines(report["results"]), *sweep_lines(report["sweep"])]:
            console.print(line, highlight=False)
        console.print(f"report: {path}" + (f"  [red]{failed} case(s) failed[/]" if failed else ""))
    if failed:
        raise typer.Exit(1)


def rounds_plan_from(block: float, min_rounds: int, target_ci: str, budget: float, restart_every: int,
                     duration: float, min_iters: int, seed: int):
    """The sweep's rounds from ``run``'s options, or a usage error."""
    from .sweep import RoundsPlan

    target = common.parse_percent(target_ci, "--target-ci")
    try:
        return RoundsPlan(block_s=block, min_rounds=min_rounds, restart_every=restart_every, target_ci=target,
                          budget_s=budget, min_duration_s=duration, min_iters=min_iters, seed=seed)
    except ValueError:
        raise UsageProblem("--block, --target-ci and --budget must be > 0, --min-rounds and --restart-every >= 1 "
                           f"(got --block {block:g}, --target-ci {target_ci}, --budget {budget:g}, --min-rounds "
                           f"{min_rounds}, --restart-every {restart_every})") from None


@contextmanager
def sweep_progress(show: bool, budget_s: float):
    """A progress bar over the sweep's time budget, and the sweep's events turned into lines."""
    from .report.results import case_line

    progress = Progress(SpinnerColumn(), TextColumn("{task.description}"), BarColumn(), TimeElapsedColumn(),
                        console=err_console, disable=not show, transient=True)
    task = progress.add_task("starting", total=budget_s)

    def on_event(kind: str, **info) -> None:
        if kind == "load":
            progress.update(task, description=escape(f"loading {info['case'].label} ({info['index'] + 1} of "
                                                     f"{info['total']}, process lifetime {info['lifetime'] + 1})"))
        elif kind == "round":
            widest = info["widest"]
            spread = widest.spread() if widest else math.inf
            line = f"round {info['rounds']}: {info['elapsed']:.0f} s"
            if widest and math.isfinite(spread):
                line += f", widest 95% CI +-{spread:.1%} ({escape(widest.case.label)})"
            progress.update(task, completed=min(info["elapsed"], budget_s), description=line)
            if show:
                progress.console.print(f"[dim]{line}[/]", highlight=False)
        elif kind == "loaded" and show:
            cold = info["load"]["cold_start"]
            progress.console.print(f"[green]loaded[/] {escape(info['case'].label)}: load {cold['load_s']:.2f} s, first "
                                   f"inference {cold['first_inference_ms']:.1f} ms, {info['load']['block_n']} "
                                   "inferences per block", highlight=False)
        elif kind == "problem" and show:
            progress.console.print(case_line(info["record"]), highlight=False)

    with progress:
        yield on_event


@app.command()
def backends(as_json: bool = typer.Option(False, "--json", help="Print JSON instead of a table.")) -> None:
    """Each backend: available or not and why, its version, the devices it can use here, and
    the install line for what is missing."""
    from .backends import availability, backend_names

    infos = [availability(name) for name in backend_names()]
    if as_json:
        console.out(json.dumps([i.to_dict() for i in infos], indent=2))
        return
    table = Table(title="Backends", box=box.SIMPLE_HEAVY)
    for header in ("backend", "available", "version", "devices", "notes"):
        table.add_column(header)
    for info in infos:
        problems = [info.reason] if not info.available else [f"{d}: {why}" for d, why in info.unusable.items()]
        notes = "; ".join(filter(None, [*problems, info.note]))
        if problems and info.install:
            notes += f"; install: {info.install}"
        table.add_row(info.name, "[green]yes[/]" if info.available else "[red]no[/]", info.version or "",
                      ", ".join(info.devices), escape(notes))
    console.print(table)


@app.command()
def env(as_json: bool = typer.Option(False, "--json", help="Print JSON instead of a table.")) -> None:
    """The environment fingerprint that every report carries."""
    from .environment import fingerprint

    data = fingerprint(["repnext-bench", *common.ARGV])
    if as_json:
        console.out(json.dumps(data, indent=2))
        return
    table = Table(title="Environment", box=box.SIMPLE_HEAVY, show_header=False)
    table.add_column("key", style="bold")
    table.add_column("value")
    for key, value in data.items():
        if isinstance(value, dict):
            value = ", ".join(f"{k}: {v}" for k, v in value.items())
        elif isinstance(value, list):
            value = ", ".join(map(str, value)) or "none"
        table.add_row(key, escape(str(value)))
    console.print(table)


app.command()(profile)
app.command()(gate)
app.command()(compare)
app.command()(verify)
app.command()(report)
app.command()(export)


def main(argv: list[str] | None = None) -> int:
    """Entry point: runs the app and turns usage errors into one line and exit code 2."""
    common.ARGV = list(sys.argv[1:] if argv is None else argv)
    try:
        result = app(args=argv, prog_name="repnext-bench", standalone_mode=False)
    except ClickException as exc:
        hint = ""
        if isinstance(exc, UsageError) and not isinstance(exc, UsageProblem):
            hint = " (see repnext-bench --help)"
        err_console.print(f"[bold red]error:[/] {escape(exc.format_message())}{hint}", highlight=False, soft_wrap=True)
        return exc.exit_code
    except typer.Abort:
        err_console.print("[red]aborted[/]")
        return 130
    return result if isinstance(result, int) else 0


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())
