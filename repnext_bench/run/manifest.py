"""Files for other machines: each format's export copied into one folder under a name that says
what it is, and the manifest.json record of each (input, precision, size, SHA-256, weights,
versions). The ``export`` command drives this; heavy modules load only when exporting."""
from __future__ import annotations

import hashlib
import shutil
from datetime import datetime, timezone
from importlib.metadata import version
from pathlib import Path

FORMATS = ("onnx", "openvino", "coreml", "tensorrt")
MANIFEST = "manifest.json"
_LIBRARIES = {"onnx": "onnx", "openvino": "openvino", "coreml": "coremltools", "tensorrt": "tensorrt"}
_IO_TYPES = {"fp16": "float16", "bf16": "bfloat16"}


class ExportFailed(Exception):
    """An exporter raised; the exception is the ``__cause__`` (a ValueError: the exporter cannot
    make what was asked, e.g. a precision this TensorRT cannot build)."""


def digest(path: Path) -> str:
    """SHA-256 of a file; of a folder (a Core ML package), over its files' paths inside it and
    their contents, in path order."""
    if path.is_file():
        return hashlib.sha256(path.read_bytes()).hexdigest()
    total = hashlib.sha256()
    for file in sorted(f for f in path.rglob("*") if f.is_file()):
        total.update(file.relative_to(path).as_posix().encode())
        total.update(file.read_bytes())
    return total.hexdigest()


def precisions(fmt: str, coreml_format: str) -> tuple[tuple[str, ...], str]:
    """(what the format exports, what ``auto`` means for it), from the exporters themselves."""
    if fmt == "coreml":
        from ..export.coreml import PRECISIONS

        return PRECISIONS[coreml_format], PRECISIONS[coreml_format][0]
    if fmt == "openvino":
        from ..export.openvino import PRECISIONS

        return (*PRECISIONS, "int8"), PRECISIONS[0]
    if fmt == "tensorrt":
        from ..backends.tensorrt_gpu import TensorRTBackend

        return TensorRTBackend.precisions, "auto"
    return ("fp32", "fp16", "int8"), "fp32"  # a typed bf16 ONNX Conv needs opset 22, beyond the TorchScript exporter


def new_manifest(weights_source: str) -> dict:
    from .. import __version__

    return {"tool": {"name": "repnext-bench", "version": __version__},
            "created": datetime.now(timezone.utc).isoformat(timespec="seconds"),
            "weights": weights_source, "artifacts": []}


def _make(fmt: str, model, case, context, coreml_format: str):
    """(artifact, files to copy as (source, suffix)) for one format."""
    if case.precision == "int8" and fmt in ("onnx", "openvino"):
        return _quantized(fmt, model, case, context)
    if fmt == "onnx":
        from ..export import export_onnx

        artifact = export_onnx(model, case.resolution, context.opset, context.cache, context.weights,
                               dtype=case.precision)
        return artifact, [(artifact.path, ".onnx")]
    if fmt == "openvino":
        from ..export.openvino import export_openvino

        artifact = export_openvino(model, case.batch, case.resolution, case.precision, context.opset,
                                   context.cache, context.weights)
        return artifact, [(artifact.path / "model.xml", ".xml"), (artifact.path / "model.bin", ".bin")]
    if fmt == "coreml":
        from ..backends.coreml import weight_compression
        from ..export.coreml import SUFFIXES, export_coreml

        artifact = export_coreml(model, case.batch, case.resolution, coreml_format, case.precision,
                                 context.cache, context.weights, compression=weight_compression(case))
        return artifact, [(artifact.path, SUFFIXES[coreml_format])]
    from ..backends.tensorrt_engine import export_tensorrt

    artifact = export_tensorrt(model, case.batch, case.resolution, case.precision, context.opset,
                               context.cache, context.weights, calibration=context.calibration_set())
    return artifact, [(artifact.path, ".engine")]


def _quantized(fmt: str, model, case, context):
    """INT8: ONNX Runtime's static QDQ quantization of the ONNX export, or NNCF's of the IR."""
    if fmt == "onnx":
        from ..quant.onnx_qdq import quantized_onnx

        artifact = quantized_onnx(model, case.resolution, context.opset, context.cache, context.weights,
                                  context.calibration_set())
        return artifact, [(artifact.path, ".onnx")]
    from ..quant.nncf_ov import quantized_ir

    artifact = quantized_ir(model, case.resolution, context.opset, context.cache, context.weights,
                            context.calibration_set(), case.batch)
    return artifact, [(artifact.path / "model.xml", ".xml"), (artifact.path / "model.bin", ".bin")]


def _place(source: Path, target: Path) -> None:
    if target.is_dir():
        shutil.rmtree(target)
    if source.is_dir():
        shutil.copytree(source, target)
    else:
        shutil.copyfile(source, target)


def export_one(model, case, settings, coreml_format: str, out: Path, label: str) -> dict:
    """Export ``model`` in the case's format (its backend) and precision, copy the files into
    ``out`` named after ``label``, and return the manifest record. An exporter's failure is
    raised as ExportFailed."""
    from .lifecycle import export_context

    context = export_context(model, settings)
    fmt = case.backend
    try:
        try:
            artifact, files = _make(fmt, model, case, context, coreml_format)
        except Exception as exc:
            raise ExportFailed(str(exc)) from exc
        stem = f"{label}-{case.precision}" + (f"-{coreml_format}" if fmt == "coreml" else "")
        if fmt == "coreml" and case.precision == "int8":
            from ..backends.coreml import weight_compression

            stem += "" if weight_compression(case) == "linear" else f"-{weight_compression(case)}"
        placed = []
        for source, suffix in files:
            _place(source, out / (stem + suffix))
            placed.append(stem + suffix)
    finally:
        context.cache.close()
    return _record(artifact, placed, model, case, context, out)


def _record(artifact, placed: list[str], model, case, context, out: Path) -> dict:
    from .. import __version__

    fmt = case.backend
    typed = artifact.info.get("onnx_dtype") or (case.precision if fmt == "onnx" else "fp32")
    shape = [case.batch, 3, case.resolution, case.resolution]
    facts = {k: v for k, v in artifact.describe().items() if k not in ("path", "size_bytes", "files", "input")}
    versions = {"repnext_bench": __version__, "torch": version("torch"), _LIBRARIES[fmt]: version(_LIBRARIES[fmt])}
    if case.precision == "int8":  # what quantized it
        versions.update({"onnx": {"onnxruntime": version("onnxruntime")}, "openvino": {"nncf": version("nncf")}}
                        .get(fmt, {}))
    return {**facts, "files": placed, "format": fmt, "variant": case.variant, "form": case.form,
            "precision": case.precision, "size_bytes": artifact.size_bytes,
            "sha256": {f: digest(out / f) for f in placed}, "weights_sha256": context.weights,
            "input": {"name": "images", "shape": shape, "dtype": _IO_TYPES.get(typed, "float32"),
                      "batch": "dynamic" if fmt == "onnx" else "static"},
            "output": {"name": "logits", "shape": [case.batch, model.num_classes]},
            **({} if fmt == "coreml" else {"opset": context.opset}), "versions": versions}
