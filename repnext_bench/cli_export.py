"""The export command: the models as ONNX, OpenVINO IR, Core ML or TensorRT files in a folder,
with a manifest, for use on other machines (an iPhone, a Jetson, a server)."""
from __future__ import annotations

import hashlib
import shutil
from dataclasses import replace
from datetime import datetime, timezone
from importlib.metadata import version
from pathlib import Path

import typer
from rich import box
from rich.markup import escape
from rich.table import Table

from .cli_common import (ClickException, UsageProblem, check_checkpoint, check_writable, console, err_console, parse_forms, parse_option,
                         parse_variant_names, usable_cores)

_IO_TYPES = {"fp16": "float16", "bf16": "bfloat16"}
FORMATS = ("onnx", "openvino", "coreml", "tensorrt")
_LIBRARIES = {"onnx": "onnx", "openvino": "openvino", "coreml": "coremltools", "tensorrt": "tensorrt"}
MANIFEST = "manifest.json"


def _digest(path: Path) -> str:
    """SHA-256 of a file; of a folder (a Core ML package), over its files' paths inside it and
    their contents, in path order."""
    if path.is_file():
        return hashlib.sha256(path.read_bytes()).hexdigest()
    digest = hashlib.sha256()
    for file in sorted(f for f in path.rglob("*") if f.is_file()):
        digest.update(file.relative_to(path).as_posix().encode())
        digest.update(file.read_bytes())
    return digest.hexdigest()


def _precisions(fmt: str, coreml_format: str) -> tuple[tuple[str, ...], str]:
    """(what the format exports, what ``auto`` means for it), from the exporters themselves."""
    if fmt == "coreml":
        from .export.coreml import PRECISIONS

        return PRECISIONS[coreml_format], PRECISIONS[coreml_format][0]
    if fmt == "openvino":
        from .export.openvino import PRECISIONS

        return PRECISIONS, PRECISIONS[0]
    if fmt == "tensorrt":
        from .backends.tensorrt_gpu import TensorRTBackend

        return TensorRTBackend.precisions, "auto"
    return ("fp32", "fp16"), "fp32"  # a typed bf16 ONNX Conv needs opset 22, beyond the TorchScript exporter


def _precision(fmt: str, asked: str, coreml_format: str) -> str:
    allowed, default = _precisions(fmt, coreml_format)
    chosen = default if asked == "auto" else asked
    if chosen not in allowed:
        raise UsageProblem(f"--precision {asked}: {fmt}{' ' + coreml_format if fmt == 'coreml' else ''} "
                           f"exports {', '.join(allowed)} (or auto)")
    return chosen


def _make(fmt: str, model, case, context, coreml_format: str):
    """(artifact, files to copy as (source, suffix)) for one format."""
    if fmt == "onnx":
        from .export import export_onnx

        artifact = export_onnx(model, case.resolution, context.opset, context.cache, context.weights,
                               dtype=case.precision)
        return artifact, [(artifact.path, ".onnx")]
    if fmt == "openvino":
        from .export.openvino import export_openvino

        artifact = export_openvino(model, case.batch, case.resolution, case.precision, context.opset,
                                   context.cache, context.weights)
        return artifact, [(artifact.path / "model.xml", ".xml"), (artifact.path / "model.bin", ".bin")]
    if fmt == "coreml":
        from .export.coreml import SUFFIXES, export_coreml

        artifact = export_coreml(model, case.batch, case.resolution, coreml_format, case.precision,
                                 context.cache, context.weights)
        return artifact, [(artifact.path, SUFFIXES[coreml_format])]
    from .export.tensorrt import export_tensorrt

    artifact = export_tensorrt(model, case.batch, case.resolution, case.precision, context.opset,
                               context.cache, context.weights)
    return artifact, [(artifact.path, ".engine")]


def _place(source: Path, target: Path) -> None:
    if target.is_dir():
        shutil.rmtree(target)
    if source.is_dir():
        shutil.copytree(source, target)
    else:
        shutil.copyfile(source, target)


def _export_one(model, case, settings, coreml_format: str, out: Path, label: str) -> dict:
    """Export ``model`` in the case's format (its backend) and precision, copy the files into
    ``out`` named after ``label``, and return the manifest record."""
    from .lifecycle import export_context

    context = export_context(model, settings)
    name = case.backend
    try:
        try:
            artifact, files = _make(name, model, case, context, coreml_format)
        except ValueError as exc:  # e.g. a precision this TensorRT cannot build
            raise UsageProblem(f"--format {name} --precision {case.precision}: {exc}") from exc
        except Exception as exc:  # the exporter failed: one line, and the manifest keeps what was made
            first = str(exc).strip().splitlines()[0] if str(exc).strip() else ""
            raise ClickException(f"exporting {label} as {name} failed: {type(exc).__name__}: {first}") from exc
        stem = f"{label}-{case.precision}" + (f"-{coreml_format}" if name == "coreml" else "")
        placed = []
        for source, suffix in files:
            _place(source, out / (stem + suffix))
            placed.append(stem + suffix)
    finally:
        context.cache.close()
    from . import __version__

    typed = artifact.info.get("onnx_dtype") or (case.precision if name == "onnx" else "fp32")
    shape = [case.batch, 3, case.resolution, case.resolution]
    facts = {k: v for k, v in artifact.describe().items() if k not in ("path", "size_bytes", "files", "input")}
    versions = {"repnext_bench": __version__, "torch": version("torch"), _LIBRARIES[name]: version(_LIBRARIES[name])}
    return {**facts, "files": placed, "format": name, "variant": case.variant, "form": case.form,
            "precision": case.precision, "size_bytes": artifact.size_bytes,
            "sha256": {f: _digest(out / f) for f in placed}, "weights_sha256": context.weights,
            "input": {"name": "images", "shape": shape, "dtype": _IO_TYPES.get(typed, "float32"),
                      "batch": "dynamic" if name == "onnx" else "static"},
            "output": {"name": "logits", "shape": [case.batch, model.num_classes]},
            **({} if name == "coreml" else {"opset": context.opset}), "versions": versions}


def export(
    selector: str = typer.Option("m0", "--variants", "-v", help="Which variants: m0-m5, m0,m3, M4, m0e-m2e or all."),
    fmt: str = typer.Option(..., "--format", help="onnx, openvino, coreml or tensorrt (comma-separated for several)."),
    out: Path = typer.Option(..., "--out", help="Folder to write the files and manifest.json into."),
    forms: str = typer.Option("fused", "--forms", "-f", help="Forms: fused (deployment), train, official."),
    resolution: int = typer.Option(224, "--resolution", "-r", help="Input side in pixels (a multiple of 32)."),
    batch: int = typer.Option(1, "--batch", help="Batch size of the static input (ONNX keeps the batch dynamic)."),
    precision: str = typer.Option("auto", "--precision", "-p",
                                  help="fp32, fp16, bf16 or auto: fp32 for onnx/openvino, fp16 for a Core ML ML "
                                       "program, TensorRT's default (TF32) for tensorrt."),
    coreml_format: str = typer.Option("mlprogram", "--coreml-format", help="mlprogram (iOS 16+) or neuralnetwork (iOS 14)."),
    checkpoint: Path | None = typer.Option(None, "--checkpoint", help="Weights for the one selected variant (random otherwise)."),
    opset: int = typer.Option(17, "--opset", help="ONNX opset (also of the ONNX that OpenVINO and TensorRT start from)."),
    seed: int = typer.Option(0, "--seed", help="Seed of the random weights when no checkpoint is given."),
    cache_dir: Path | None = typer.Option(None, "--cache-dir", help="Export cache (default: $REPNEXT_BENCH_CACHE or ~/.cache/repnext-bench)."),
) -> None:
    """Write the models as ONNX, OpenVINO IR, Core ML or TensorRT files, with a manifest.json
    that says what each file is (input, precision, size, SHA-256, weights, versions)."""
    from . import __version__
    from .backends import availability
    from .cases import Case, parse_choices
    from .export import opset_problem
    from .export.coreml import FORMATS as COREML_FORMATS
    from .measure.timing import TimingPlan
    from .report.schema import write_report
    from .models import convert
    from .lifecycle import Settings, reference_model

    variants = parse_variant_names(selector)
    form_list = parse_forms(forms, "--forms")
    formats = parse_option(parse_choices, fmt, "--format", FORMATS)
    coreml_formats = parse_option(parse_choices, coreml_format, "--coreml-format", COREML_FORMATS)
    if len(coreml_formats) > 1:
        raise UsageProblem(f"--coreml-format {coreml_format}: export writes one Core ML format per run; "
                           f"choose {' or '.join(COREML_FORMATS)}")
    coreml_format = coreml_formats[0]
    problem = opset_problem(opset)
    if problem:
        raise UsageProblem(problem)
    if resolution <= 0 or resolution % 32:
        raise UsageProblem(f"--resolution {resolution} is not valid: use a positive multiple of 32, e.g. 224")
    if batch < 1:
        raise UsageProblem(f"--batch {batch} is not valid: use 1 or more")
    precisions = {f: _precision(f, precision.lower(), coreml_format) for f in formats}
    for name, backend in (("coreml", "coreml"), ("tensorrt", "tensorrt")):
        found = availability(backend) if name in formats else None
        if found is not None and not found.available:
            raise UsageProblem(f"--format {name}: {backend} is not available here: {found.reason}"
                               + (f" ({found.install})" if found.install else "")
                               + ("; an engine is built on the GPU that will run it" if name == "tensorrt" else ""))
    if checkpoint is not None:
        check_checkpoint(checkpoint, variants)
    manifest_path = out / MANIFEST
    check_writable(manifest_path, "--out")

    settings = Settings(plan=TimingPlan(), opset=opset, cache_dir=str(cache_dir) if cache_dir else None,
                        checkpoint=str(checkpoint) if checkpoint else None, seed=seed)
    weights_source = f"checkpoint {checkpoint}" if checkpoint else f"random (seed {seed}): for timing, not for accuracy"
    manifest = {"tool": {"name": "repnext-bench", "version": __version__},
                "created": datetime.now(timezone.utc).isoformat(timespec="seconds"),
                "weights": weights_source, "artifacts": []}
    table = Table(title=f"Exported to {out}", box=box.SIMPLE_HEAVY)
    for header in ("file", "format", "precision", "size", "ops", "made in"):
        table.add_column(header, justify="right" if header in ("size", "ops", "made in") else "left")
    with err_console.status("exporting") as status:
        for variant in variants:
            for form in form_list:
                label = f"{variant.lower()}-{form}-{resolution}px" + (f"-b{batch}" if batch > 1 else "")
                status.update(f"building {label}")
                case = Case(variant, form, "export", "cpu", "fp32", batch, resolution, usable_cores(), "latency")
                model = convert(reference_model(variant, settings), form)
                for name in formats:
                    status.update(f"exporting {label} as {name}")
                    record = _export_one(model, replace(case, backend=name, precision=precisions[name]), settings,
                                         coreml_format, out, label)
                    manifest["artifacts"].append(record)
                    write_report(manifest, manifest_path)  # after each file: an interruption keeps what was made
                    table.add_row(escape(", ".join(record["files"])), name, record["precision"],
                                  f"{record['size_bytes'] / 1e6:.1f} MB", str(record.get("ops_total", "")),
                                  "cache" if record["cache_hit"] else f"{record['export_s']:.1f} s")
    console.print(table)
    console.print(f"weights: {weights_source}")
    console.print(f"manifest: {manifest_path}")
