"""``repnext-bench verify``: exit 1 when a fused model or a backend's output is not right."""
from __future__ import annotations

import json

import typer
from rich import box
from rich.markup import escape
from rich.table import Table

from ..quant import DEFAULT_CALIBRATION_SIZE
from . import options as o
from . import validators as v
from .common import console, err_console, settings_from


def verify(
    selector: o.Variants = "m0-m5", backend: o.Backends = "torch,onnxruntime,openvino", device: o.Devices = "",
    forms: o.Forms = "train,fused", precision: o.Precision = "fp32", resolution: o.Resolution = "224",
    batch: o.Batch = "2", threads: o.Threads = "", seed: o.Seed = 0, cache_dir: o.CacheDir = None,
    as_json: o.Json = False, calibration: o.Calibration = None,
    calibration_size: o.CalibrationSize = DEFAULT_CALIBRATION_SIZE,
) -> None:
    """Check fused vs train-time outputs, and every backend against PyTorch fp32; exit 1 on any failure."""
    from ..core.cases import expand
    from ..run.verify import backend_checks, fusion_checks

    variants, backends, form_list = v.variant_names(selector), v.backends(backend, device), v.forms(forms)
    precisions = v.precisions(precision)
    side, batch_size, thread_count = v.resolution(resolution), v.positive(batch, "--batch"), v.threads(threads)
    cases = expand(variants, form_list, backends, precisions, [batch_size], [side], [thread_count], ["latency"])
    quantization = v.quantization_settings(precisions, calibration, calibration_size)
    settings = settings_from({"warmup_s": 0, "warmup_iters": 0}, seed=seed, cache_dir=cache_dir, randomize=True,
                             **quantization)
    checks = []
    with err_console.status("checking the fusion") as status:
        checks.extend(fusion_checks(variants, side, batch_size, seed))
        checks.extend(backend_checks(cases, settings, 600.0, on_event=lambda kind, **info: status.update(
            f"[{info['index'] + 1}/{info['total']}] {escape(info['case'].label)}") if kind == "load" else None))
    failures = [c for c in checks if c["ok"] is False]
    _show(checks, seed, as_json)
    for check in failures:
        reason = check["error"] or (f"rel L2 {check['parity']['rel_l2']:.1e} above {check['tolerance']:.0e} "
                                    f"({check['precision']})")
        err_console.print(f"[bold red]FAIL[/] {escape(check['case'])}: {escape(reason)}", highlight=False)
    if not as_json:
        for check in checks:
            if check["ok"] is None:
                console.print(f"[dim]skipped {escape(check['case'])}: {escape(check['error'])}[/]", highlight=False)
    if failures:
        raise typer.Exit(1)


def _show(checks: list[dict], seed: int, as_json: bool) -> None:
    from ..run.verify import FUSION_TOLERANCE, TOLERANCES

    if as_json:
        console.out(json.dumps({"tolerances": {"fusion": FUSION_TOLERANCE, **TOLERANCES}, "checks": checks}, indent=1))
        return
    table = Table(title="Verify: outputs against the PyTorch fp32 train-time model", box=box.SIMPLE_HEAVY)
    for header in ("check", "case", "precision", "rel L2", "max abs", "top-1", "tolerance", "result"):
        table.add_column(header, justify="right" if header in ("rel L2", "max abs", "top-1", "tolerance") else "left")
    for check in checks:
        table.add_row(*_row(check))
    console.print(table)
    console.print(f"tolerances (relative L2 error): fused vs train {FUSION_TOLERANCE:.0e}; against PyTorch fp32: "
                  + ", ".join(f"{p} {t:.0e}" for p, t in TOLERANCES.items())
                  + "; random BatchNorm statistics and biases, seed " + str(seed), highlight=False)


def _row(check: dict) -> list[str]:
    error = check["parity"] or {}
    if check["ok"] is None:
        verdict = "[dim]skipped[/]"
    else:
        verdict = "[green]ok[/]" if check["ok"] else "[bold red]FAIL[/]"
    synthetic = " (synthetic calibration)" if check.get("calibration") == "synthetic" else ""
    return [check["check"], escape(check["case"]), (check["precision"] or "") + synthetic,
            f"{error['rel_l2']:.1e}" if error else "", f"{error['max_abs']:.1e}" if error else "",
            f"{error['top1_agree']:.0%}" if error else "", f"{check['tolerance']:.0e}" if check["tolerance"] else "",
            verdict]
