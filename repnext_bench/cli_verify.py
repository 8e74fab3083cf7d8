"""``repnext-bench verify``: exit 1 when a fused model or a backend's output is not right."""
from __future__ import annotations

import json
from pathlib import Path

import typer
from rich import box
from rich.markup import escape
from rich.table import Table

from .cli_common import (UsageProblem, console, err_console, parse_backends, parse_forms, parse_option,
                         parse_variant_names, usable_cores)


def _row(check: dict) -> list[str]:
    error = check["parity"] or {}
    if check["ok"] is None:
        verdict = "[dim]skipped[/]"
    else:
        verdict = "[green]ok[/]" if check["ok"] else "[bold red]FAIL[/]"
    return [check["check"], escape(check["case"]), check["precision"] or "",
            f"{error['rel_l2']:.1e}" if error else "", f"{error['max_abs']:.1e}" if error else "",
            f"{error['top1_agree']:.0%}" if error else "", f"{check['tolerance']:.0e}" if check["tolerance"] else "",
            verdict]


def verify(
    selector: str = typer.Option("m0-m5", "--variants", "-v", help="Which variants, e.g. m0-m5, m0e-m2e or all."),
    backend: str = typer.Option("torch,onnxruntime,openvino", "--backend", "-b", help="Backends to check, comma-separated."),
    device: str = typer.Option("", "--device", "-d", help="Devices, as for run (default: each backend's first)."),
    forms: str = typer.Option("train,fused", "--forms", "-f", help="Forms each backend runs."),
    precision: str = typer.Option("fp32", "--precision", "-p", help="Precisions, comma-separated: fp32, bf16, fp16, auto."),
    resolution: int = typer.Option(224, "--resolution", "-r", help="Input side in pixels (at least 32)."),
    batch: int = typer.Option(2, "--batch", help="Batch size."),
    threads: int = typer.Option(0, "--threads", "-t", help="Threads (default: the usable cores)."),
    seed: int = typer.Option(0, "--seed", help="Seed of the weights, BatchNorm statistics and input."),
    cache_dir: Path | None = typer.Option(None, "--cache-dir", help="Export cache (default: $REPNEXT_BENCH_CACHE or ~/.cache/repnext-bench)."),
    as_json: bool = typer.Option(False, "--json", help="Print the checks as JSON instead of the table."),
) -> None:
    """Check fused vs train-time outputs, and every backend against PyTorch fp32; exit 1 on any failure."""
    from .cases import PRECISIONS, expand, parse_choices
    from .measure.timing import TimingPlan
    from .verify import FUSION_TOLERANCE, TOLERANCES, backend_checks, fusion_checks
    from .lifecycle import Settings

    variants = parse_variant_names(selector)
    backends = parse_backends(backend, device)
    form_list = parse_forms(forms, "--forms")
    precisions = parse_option(parse_choices, precision, "--precision", PRECISIONS)
    if resolution < 32 or batch < 1 or threads < 0:
        raise UsageProblem("--resolution must be >= 32, --batch >= 1 and --threads >= 0")
    cases = expand(variants, form_list, backends, precisions, [batch], [resolution], [threads or usable_cores()],
                   ["latency"])
    settings = Settings(plan=TimingPlan(warmup_s=0, warmup_iters=0), seed=seed,
                        cache_dir=str(cache_dir) if cache_dir else None, randomize=True)
    checks = []
    with err_console.status("checking the fusion") as status:
        checks.extend(fusion_checks(variants, resolution, batch, seed))
        checks.extend(backend_checks(cases, settings, 600.0, on_event=lambda kind, **info: status.update(
            f"[{info['index'] + 1}/{info['total']}] {escape(info['case'].label)}") if kind == "load" else None))
    failures = [c for c in checks if c["ok"] is False]
    if as_json:
        console.out(json.dumps({"tolerances": {"fusion": FUSION_TOLERANCE, **TOLERANCES}, "checks": checks}, indent=1))
    else:
        table = Table(title="Verify: outputs against the PyTorch fp32 train-time model", box=box.SIMPLE_HEAVY)
        for header in ("check", "case", "precision", "rel L2", "max abs", "top-1", "tolerance", "result"):
            table.add_column(header, justify="right" if header in ("rel L2", "max abs", "top-1", "tolerance") else "left")
        for check in checks:
            table.add_row(*_row(check))
        console.print(table)
        console.print(f"tolerances (relative L2 error): fused vs train {FUSION_TOLERANCE:.0e}; against PyTorch fp32: "
                      + ", ".join(f"{p} {t:.0e}" for p, t in TOLERANCES.items())
                      + "; random BatchNorm statistics and biases, seed " + str(seed), highlight=False)
    for check in failures:
        reason = check["error"] or (f"rel L2 {check['parity']['rel_l2']:.1e} above {check['tolerance']:.0e} "
                                    f"({check['precision']})")
        err_console.print(f"[bold red]FAIL[/] {escape(check['case'])}: {escape(reason)}", highlight=False)
    for check in checks:
        if check["ok"] is None and not as_json:
            console.print(f"[dim]skipped {escape(check['case'])}: {escape(check['error'])}[/]", highlight=False)
    if failures:
        raise typer.Exit(1)
