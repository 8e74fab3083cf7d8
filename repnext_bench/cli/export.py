"""``repnext-bench export``: the models as ONNX, OpenVINO IR, Core ML or TensorRT files in a
folder, with a manifest, for use on other machines (an iPhone, a Jetson, a server)."""
from __future__ import annotations

from dataclasses import replace
from pathlib import Path

from rich import box
from rich.markup import escape
from rich.table import Table

from ..quant import DEFAULT_CALIBRATION_SIZE
from . import options as o
from . import validators as v
from .common import ClickException, UsageProblem, check_checkpoint, check_writable, console, err_console, settings_from


def export(
    fmt: o.Format, output: o.Output, selector: o.Variants = "m0", forms: o.Forms = "fused",
    resolution: o.Resolution = "224", batch: o.Batch = "1", precision: o.Precision = "auto",
    coreml_format: o.CoremlFormat = "mlprogram", coreml_weights: o.CoremlWeights = None,
    checkpoint: o.Checkpoint = None, opset: o.Opset = 17,
    seed: o.Seed = 0, cache_dir: o.CacheDir = None, calibration: o.Calibration = None,
    calibration_size: o.CalibrationSize = DEFAULT_CALIBRATION_SIZE,
) -> None:
    """Write the models as ONNX, OpenVINO IR, Core ML or TensorRT files, with a manifest.json
    that says what each file is (input, precision, size, SHA-256, weights, versions).

    ONNX keeps the batch dynamic; --precision auto: fp32 (onnx, openvino), fp16 (Core ML), TF32 (tensorrt);
    int8: ONNX Runtime's QDQ (onnx), NNCF (openvino), 8-bit weights (coreml), INT8 engine (tensorrt)."""
    from ..run.manifest import FORMATS, MANIFEST, new_manifest

    variants, form_list = v.variant_names(selector), v.forms(forms)
    formats = v.choices(fmt, "--format", FORMATS)
    side, batch_size = v.resolution(resolution), v.positive(batch, "--batch")
    coreml_format = _one_coreml_format(coreml_format)
    v.opset(opset)
    precisions = {f: _precision(f, precision.lower(), coreml_format) for f in formats}
    compression = _one_compression(coreml_weights, precisions)
    _check_available(formats)
    if checkpoint is not None:
        check_checkpoint(checkpoint, variants)
    manifest_path = output / MANIFEST
    check_writable(manifest_path)
    quantization = v.quantization_settings(list(precisions.values()), calibration, calibration_size)
    settings = settings_from({}, opset=opset, cache_dir=cache_dir, checkpoint=checkpoint, seed=seed, **quantization)
    weights = f"checkpoint {checkpoint}" if checkpoint else f"random (seed {seed}): for timing, not for accuracy"
    manifest = new_manifest(weights)
    with err_console.status("exporting") as status:
        models = _models(variants, form_list, side, batch_size, settings, status)
        table = _export_all(models, precisions, coreml_format, compression, settings, manifest, manifest_path,
                            status)
    console.print(table)
    if any((r.get("calibration") or {}).get("source") == "synthetic" for r in manifest["artifacts"]):
        console.print("[yellow]INT8 calibrated on synthetic inputs:[/] right for timing, not for accuracy; give "
                      "--calibration DIR (images like the ones the model will see) for a model to ship")
    console.print(f"weights: {weights}")
    console.print(f"manifest: {manifest_path}")


def _export_all(models, precisions: dict[str, str], coreml_format: str, compression: str, settings, manifest: dict,
                manifest_path: Path, status) -> Table:
    """Export each model in each format (with its precision), the manifest written after each
    file so that an interruption keeps what was made; the table of what was written."""
    from ..report.schema import write_report

    table = _table(manifest_path.parent)
    for label, case, model in models:
        for name, precision in precisions.items():
            status.update(f"exporting {label} as {name}")
            options = (("coreml_weights", compression),) if name == "coreml" and precision == "int8" else ()
            record = _export_one(model, replace(case, backend=name, precision=precision, options=options), settings,
                                 coreml_format, manifest_path.parent, label)
            manifest["artifacts"].append(record)
            write_report(manifest, manifest_path)
            _add_row(table, record)
    return table


def _one_compression(text: str | None, precisions: dict[str, str]) -> str:
    """Core ML INT8's weight compression: one, linear unless --coreml-weights says palettize."""
    if text is None:
        return "linear"
    if precisions.get("coreml") != "int8":
        raise UsageProblem("--coreml-weights applies to --format coreml --precision int8")
    chosen = v.coreml_weights(text, ["int8"])
    if len(chosen) > 1:
        raise UsageProblem(f"--coreml-weights {text}: export writes one compression per run; choose one")
    return chosen[0]


def _one_coreml_format(text: str) -> str:
    from ..export.coreml import FORMATS

    chosen = v.choices(text, "--coreml-format", FORMATS)
    if len(chosen) > 1:
        raise UsageProblem(f"--coreml-format {text}: export writes one Core ML format per run; "
                           f"choose {' or '.join(FORMATS)}")
    return chosen[0]


def _precision(fmt: str, asked: str, coreml_format: str) -> str:
    from ..run.manifest import precisions

    allowed, default = precisions(fmt, coreml_format)
    chosen = default if asked == "auto" else asked
    if chosen not in allowed:
        raise UsageProblem(f"--precision {asked}: {fmt}{' ' + coreml_format if fmt == 'coreml' else ''} "
                           f"exports {', '.join(allowed)} (or auto)")
    return chosen


def _check_available(formats: list[str]) -> None:
    """Core ML and TensorRT export through their runtimes: those must be here."""
    from ..backends import availability

    for name in ("coreml", "tensorrt"):
        found = availability(name) if name in formats else None
        if found is not None and not found.available:
            raise UsageProblem(f"--format {name}: {name} is not available here: {found.reason}"
                               + (f" ({found.install})" if found.install else "")
                               + ("; an engine is built on the GPU that will run it" if name == "tensorrt" else ""))


def _models(variants: list[str], forms: list[str], resolution: int, batch: int, settings, status):
    """(file label, the case to export, the model) for each variant and form."""
    from ..core.cases import Case
    from ..models import convert
    from ..run.lifecycle import reference_model
    from ..system.machine import usable_cores

    for variant in variants:
        for form in forms:
            label = f"{variant.lower()}-{form}-{resolution}px" + (f"-b{batch}" if batch > 1 else "")
            status.update(f"building {label}")
            case = Case(variant, form, "export", "cpu", "fp32", batch, resolution, usable_cores(), "latency")
            yield label, case, convert(reference_model(variant, settings), form)


def _export_one(model, case, settings, coreml_format: str, out: Path, label: str) -> dict:
    """The manifest record of one export; a failed exporter is one line (and the manifest keeps
    what was made before it)."""
    from ..run.manifest import ExportFailed, export_one

    try:
        return export_one(model, case, settings, coreml_format, out, label)
    except ExportFailed as failed:
        exc = failed.__cause__
        if isinstance(exc, ValueError):  # e.g. a precision this TensorRT cannot build
            raise UsageProblem(f"--format {case.backend} --precision {case.precision}: {exc}") from exc
        first = str(exc).strip().splitlines()[0] if str(exc).strip() else ""
        raise ClickException(f"exporting {label} as {case.backend} failed: {type(exc).__name__}: {first}") from exc


def _table(out: Path) -> Table:
    table = Table(title=f"Exported to {out}", box=box.SIMPLE_HEAVY)
    for header in ("file", "format", "precision", "size", "ops", "made in"):
        table.add_column(header, justify="right" if header in ("size", "ops", "made in") else "left")
    return table


def _add_row(table: Table, record: dict) -> None:
    synthetic = (record.get("calibration") or {}).get("source") == "synthetic"
    table.add_row(escape(", ".join(record["files"])), record["format"],
                  record["precision"] + (" (synthetic calibration)" if synthetic else ""),
                  f"{record['size_bytes'] / 1e6:.1f} MB", str(record.get("ops_total", "")),
                  "cache" if record["cache_hit"] else f"{record['export_s']:.1f} s")
