"""``repnext-bench run``: a sweep of cases, measured in interleaved rounds, into one report."""
from __future__ import annotations

from dataclasses import dataclass
from typing import Annotated

import typer

from ..measure.timing import SWEEP_WARMUP_S, RoundsPlan
from ..quant import DEFAULT_CALIBRATION_SIZE
from . import backend_options
from . import options as o
from . import validators as v
from .common import (
    UsageProblem,
    check_checkpoint,
    check_writable,
    command_line,
    console,
    default_output,
    err_console,
    settings_from,
)

REPORT_FORMATS = ("repnext", "pytest-benchmark")
PLAN = RoundsPlan()  # the options' defaults

Mode = Annotated[str, typer.Option("--mode", "-m", help="latency (one request in flight), throughput (--streams "
                                    "requests in flight, kept full) or server (Poisson arrivals: --qps or --p99).")]
Streams = Annotated[str, typer.Option("--streams", help="Throughput and server modes: requests served at once, the "
                                      "threads split between them, e.g. 1,2; auto: throughput tries 1, 2, 4... up "
                                      "to one per core (counts that divide the threads) and names the best; server "
                                      "uses 1.")]
Qps = Annotated[float | None, typer.Option("--qps", help="Server mode: requests per second, arriving as a seeded "
                                           "Poisson process.")]
P99 = Annotated[str | None, typer.Option("--p99", help="Server mode: find the highest rate whose p99 latency (queue "
                                         "included) stays under this bound, e.g. 10ms.")]
Requests = Annotated[int, typer.Option("--requests", help="Server mode: requests per trial (each rate tried).")]
MinIters = Annotated[int, typer.Option("--min-iters", help="... and at least this many inferences in all (a "
                                       "budget stop waits for them too).")]
Warmup = Annotated[float, typer.Option("--warmup", help="Warm up each case's process at least this many seconds "
                                       "(and 3 inferences).")]
MinRounds = Annotated[int, typer.Option("--min-rounds", help="Rounds at least.")]
TargetCi = Annotated[str, typer.Option("--target-ci", help="Stop when every case's 95% CI of the median is within "
                                       "this much of it (half-width, percent)...")]
Budget = Annotated[float, typer.Option("--budget", help="... or before the rounds would take longer than this many "
                                       "seconds (blocks and restarts; not the exports, quantization and first loads "
                                       "before them, which are reported apart; two rounds at least).")]
MaxWall = Annotated[float | None, typer.Option("--max-wall", help="A hard limit on the whole sweep's wall time in "
                                               "seconds, first loads included: no round starts that would end past "
                                               "it (one round at least).")]
RestartEvery = Annotated[int, typer.Option("--restart-every", help="Start every case's process afresh after this "
                                           "many rounds.")]
Quiet = Annotated[bool, typer.Option("--quiet", "-q", help="No progress or table; print only the report path.")]
ChannelsLast = Annotated[bool, typer.Option("--channels-last", help="torch and cuda backends: channels-last memory "
                                            "format.")]
Compile = Annotated[bool, typer.Option("--compile", help="torch and cuda backends: torch.compile the model.")]
Autocast = Annotated[bool, typer.Option("--autocast", help="cuda backend: fp16/bf16 by autocast instead of casting "
                                        "the model.")]
CudaGraphs = Annotated[bool, typer.Option("--cuda-graphs", help="cuda and tensorrt backends: replay each inference "
                                          "as a CUDA graph.")]


@dataclass(frozen=True)
class Axes:
    """The sweep's axes, checked: every combination is a case."""

    variants: list[str]
    backends: list[tuple[str, str]]  # (backend, device)
    forms: list[str]
    batches: list[int]
    resolutions: list[int]
    threads: list[int]
    precisions: list[str]
    modes: list[str]

    @property
    def backend_names(self) -> list[str]:
        return list(dict.fromkeys(name for name, _ in self.backends))

    def cases(self, backend_options: dict, streams: list[int] | None = None) -> list:
        from ..core.cases import expand

        return expand(self.variants, self.forms, self.backends, self.precisions, self.batches, self.resolutions,
                      self.threads, self.modes, backend_options=backend_options, streams=streams)


def run(
    ctx: typer.Context,
    selector: o.Variants = "m0-m5", backend: o.Backends = "onnxruntime", device: o.Devices = "",
    forms: o.Forms = "train,fused", batch: o.Batch = "1", resolution: o.Resolution = "224", threads: o.Threads = "",
    precision: o.Precision = "fp32", mode: Mode = "latency", streams: Streams = "auto", qps: Qps = None,
    p99: P99 = None, requests: Requests = 1000,
    duration: o.Duration = PLAN.min_duration_s, min_iters: MinIters = PLAN.min_iters,
    warmup: Warmup = SWEEP_WARMUP_S, block: o.Block = PLAN.block_s, min_rounds: MinRounds = PLAN.min_rounds,
    target_ci: TargetCi = f"{PLAN.target_ci:.0%}", budget: Budget = PLAN.budget_s,
    restart_every: RestartEvery = PLAN.restart_every, max_wall: MaxWall = PLAN.max_wall_s,
    checkpoint: o.Checkpoint = None, output: o.Output = None, as_json: o.Json = False,
    report_format: o.Format = "repnext", quiet: Quiet = False,
    cache_dir: o.CacheDir = None, no_cache: o.NoCache = False, opset: o.Opset = 17,
    channels_last: ChannelsLast = False, compile_model: Compile = False, autocast: Autocast = False,
    cuda_graphs: CudaGraphs = False, coreml_format: o.CoremlFormat = "mlprogram",
    coreml_weights: o.CoremlWeights = None,
    case_timeout: o.CaseTimeout = 600.0, seed: o.Seed = 0, calibration: o.Calibration = None,
    calibration_size: o.CalibrationSize = DEFAULT_CALIBRATION_SIZE, eval_dir: o.Eval = None,
    eval_size: o.EvalSize = None,
    class_map: o.ClassMap = None,
) -> None:
    """Measure latency, throughput, memory, cold start and output parity of a sweep of cases."""
    axes = _axes(selector, backend, device, forms, batch, resolution, threads, precision, mode)
    backend_options.check_given(ctx, axes.backend_names)
    stream_list, server = _mode_plan(ctx, axes, streams, qps, p99, requests, seed)
    _check_limits(duration, warmup, min_iters, case_timeout)
    rounds_plan = rounds_plan_from(block, min_rounds, target_ci, budget, restart_every, duration, min_iters, seed,
                                   max_wall)
    v.opset(opset)
    if checkpoint is not None:
        check_checkpoint(checkpoint, axes.variants)
    quantization = v.quantization_settings(axes.precisions, calibration, calibration_size, eval_dir, class_map,
                                           eval_size, checkpoint)
    render = _renderer(v.choice(report_format, "--format", REPORT_FORMATS))
    path = output or default_output()
    check_writable(path)
    values = {"channels_last": channels_last, "compile": compile_model, "autocast": autocast,
              "cuda_graphs": cuda_graphs, "coreml_format": _coreml_formats(coreml_format),
              "coreml_weights": v.coreml_weights(coreml_weights, axes.precisions)}
    per_backend = backend_options.per_backend(values)
    cases = axes.cases(per_backend, stream_list)
    settings = settings_from({"warmup_s": warmup, "warmup_iters": 3}, opset=opset, cache_dir=cache_dir,
                             no_cache=no_cache, checkpoint=checkpoint, seed=seed, **quantization)
    report = _new_report(axes, settings, rounds_plan, case_timeout, values, per_backend, server)
    _sweep(cases, settings, rounds_plan, case_timeout, report, path, render, server, show=not (quiet or as_json))
    failed = sum(r["status"] == "failed" for r in report["results"])
    _show(report, path, failed, as_json, quiet)
    if failed:
        raise typer.Exit(1)


def _axes(selector: str, backend: str, device: str, forms: str, batch: str, resolution: str, threads: str,
          precision: str, mode: str) -> Axes:
    from ..core.cases import MODES

    return Axes(variants=v.variant_names(selector), backends=v.backends(backend, device), forms=v.forms(forms),
                batches=v.positives(batch, "--batch"), resolutions=v.resolutions(resolution),
                threads=v.thread_list(threads), precisions=v.precisions(precision),
                modes=v.choices(mode, "--mode", MODES))


def _mode_plan(ctx: typer.Context, axes: Axes, streams: str, qps: float | None, p99: str | None,
               requests: int, seed: int):
    """(the streams to sweep, None for auto; the server plan, None without server mode)."""
    from ..run.serving import ServerPlan

    modes = axes.modes
    given = {name for name in ("streams", "qps", "p99", "requests")
             if ctx.get_parameter_source(name).name not in ("DEFAULT", "DEFAULT_MAP")}
    server_only = sorted(given & {"qps", "p99", "requests"})
    if server_only and "server" not in modes:
        raise UsageProblem(f"--{server_only[0]} applies to --mode server")
    if modes == ["latency"] and "streams" in given:
        raise UsageProblem("--streams applies to --mode throughput or server, not latency (one request in flight)")
    stream_list = v.streams(streams)
    if stream_list and max(stream_list) > min(axes.threads):
        raise UsageProblem(f"--streams {max(stream_list)} is more than --threads {min(axes.threads)}: each stream "
                           "needs a thread of its own")
    if "server" not in modes:
        return stream_list, None
    bound = v.milliseconds(p99, "--p99") if p99 is not None else None
    try:
        return stream_list, ServerPlan(qps=qps, p99_ms=bound, requests=requests, seed=seed)
    except ValueError as exc:
        raise UsageProblem(str(exc)) from None


def _coreml_formats(text: str) -> list[str]:
    from ..export.coreml import FORMATS  # imports torch: after the options that need no runtime

    return v.choices(text, "--coreml-format", FORMATS)


def _check_limits(duration: float, warmup: float, min_iters: int, case_timeout: float) -> None:
    if duration < 0 or warmup < 0 or min_iters < 1 or case_timeout <= 0:
        raise UsageProblem("--duration and --warmup must be >= 0, --min-iters >= 1 and --case-timeout > 0")


def rounds_plan_from(block: float, min_rounds: int, target_ci: str, budget: float, restart_every: int,
                     duration: float, min_iters: int, seed: int, max_wall: float | None = None):
    """The sweep's rounds from ``run``'s options, or a usage error."""
    target = v.percent(target_ci, "--target-ci")
    try:
        return RoundsPlan(block_s=block, min_rounds=min_rounds, restart_every=restart_every, target_ci=target,
                          budget_s=budget, min_duration_s=duration, min_iters=min_iters, seed=seed,
                          max_wall_s=max_wall)
    except ValueError as exc:
        raise UsageProblem(str(exc)) from None


def _renderer(report_format: str):
    """How the report file is written: None for the report contract, else a converter."""
    if report_format == "pytest-benchmark":
        from ..report.pytest_benchmark import to_pytest_benchmark

        return to_pytest_benchmark
    return None


def _new_report(axes: Axes, settings, rounds_plan, case_timeout: float, values: dict, per_backend: dict,
                server) -> dict:
    from ..report.schema import new_report
    from ..system.environment import fingerprint

    config = {"variants": axes.variants, "backends": [b for b, _ in axes.backends], "forms": axes.forms,
              "batch": axes.batches, "resolution": axes.resolutions, "threads": axes.threads,
              "precision": axes.precisions, "mode": axes.modes, "settings": settings.to_dict(),
              "rounds": rounds_plan.to_dict(), "case_timeout_s": case_timeout,
              "torch_options": {k: values[k] for k in backend_options.declared("torch")},
              "devices": sorted({d for _, d in axes.backends}), "backend_options": per_backend}
    if server is not None:
        config["server"] = server.to_dict()
    return new_report(fingerprint(command_line()), config)


def _sweep(cases: list, settings, rounds_plan, case_timeout: float, report: dict, path, render, server,
           show: bool) -> None:
    from ..run.sweep import run_sweep
    from .progress import sweep_progress

    try:
        with sweep_progress(show, rounds_plan.budget_s) as on_event:
            run_sweep(cases, settings, rounds_plan, case_timeout, report, path, render=render, on_event=on_event,
                      server=server)
    except KeyboardInterrupt:
        err_console.print(f"[yellow]interrupted:[/] every finished block of {report['sweep']['finished']} of "
                          f"{len(cases)} cases kept in {path}")
        raise typer.Exit(130) from None


def _show(report: dict, path, failed: int, as_json: bool, quiet: bool) -> None:
    from ..report.quant_view import quant_lines
    from ..report.results import artifacts_table, grid_lines, problem_lines, results_table, sweep_lines

    if as_json:
        from ..report.schema import to_json

        console.out(to_json(report))
        return
    if quiet:
        console.out(str(path))
        return
    console.print(results_table(report["results"], title=f"RepNeXt benchmark: {report['environment']['cpu']['model']}"))
    exported = artifacts_table(report["results"])
    if exported:
        console.print(exported)
    for line in [*problem_lines(report["results"]), *grid_lines(report["results"]), *quant_lines(report["results"]),
                 *sweep_lines(report["sweep"])]:
        console.print(line, highlight=False)
    console.print(f"report: {path}" + (f"  [red]{failed} case(s) failed[/]" if failed else ""))
