"""Core ML: conversion works on Linux too, so it is tested here on the saved packages; only
prediction (timing) needs macOS, where ``run --backend coreml`` measures instead of skipping."""
import json
import platform

import pytest
import torch

from repnext_bench.cli import main
from repnext_bench.export import ExportCache, size_on_disk
from repnext_bench.models import convert, create_model
from repnext_bench.report.schema import read_report

ct = pytest.importorskip("coremltools")

from repnext_bench.export.coreml import describe_spec, export_coreml  # noqa: E402  (needs coremltools)

LINUX_ONLY = pytest.mark.skipif(platform.system() == "Darwin", reason="on macOS Core ML predicts instead")


@pytest.fixture(scope="module")
def converted(tmp_path_factory):
    """M0 fused at 64 px as an fp16 and an fp32 ML program and an fp32 neural network."""
    model = convert(create_model("M0", "train"), "fused").eval()
    cache = ExportCache(tmp_path_factory.mktemp("cache"))
    made = {(fmt, precision): export_coreml(model, 1, 64, fmt, precision, cache)
            for fmt, precision in (("mlprogram", "fp16"), ("mlprogram", "fp32"), ("neuralnetwork", "fp32"))}
    return model, cache, made


def test_saved_packages_hold_what_is_reported(converted):
    model, _, made = converted
    convolutions = sum(isinstance(m, torch.nn.Conv2d) for m in model.modules())
    for (fmt, precision), artifact in made.items():
        assert artifact.path.exists() and artifact.path.suffix == (".mlpackage" if fmt == "mlprogram" else ".mlmodel")
        assert artifact.size_bytes == size_on_disk(artifact.path) > 1_000_000
        info = artifact.describe()
        spec = ct.models.MLModel(str(artifact.path), skip_model_load=True).get_spec()  # read back from disk
        assert describe_spec(spec) == {k: info[k] for k in describe_spec(spec)}
        assert info["weight_precision"] == precision and info["compute_precision"] == precision
        conv = info["op_counts"]["conv" if fmt == "mlprogram" else "convolution"]
        assert conv == convolutions  # every Conv2d of the fused model, one op each
        assert [i.name for i in spec.description.input] == ["images"]
        assert [o.name for o in spec.description.output] == ["logits"]
    fp16, fp32 = made["mlprogram", "fp16"].size_bytes, made["mlprogram", "fp32"].size_bytes
    assert 0.4 < fp16 / fp32 < 0.6  # fp16 weights take half the bytes


def test_a_second_conversion_is_a_cache_hit_with_the_same_facts(converted):
    model, cache, made = converted
    again = export_coreml(model, 1, 64, "mlprogram", "fp16", cache)
    first = made["mlprogram", "fp16"]
    assert again.cache_hit and again.export_s == 0 and again.path == first.path
    assert again.info == first.info and again.size_bytes == first.size_bytes
    with pytest.raises(ValueError, match="neuralnetwork converts in fp32"):
        export_coreml(model, 1, 64, "neuralnetwork", "fp16", cache)


@LINUX_ONLY
def test_run_on_linux_converts_reports_and_skips(tmp_path, capsys):
    path = tmp_path / "coreml.json"
    code = main(["run", "-v", "m0", "-b", "coreml", "-f", "fused", "-r", "64", "-p", "auto",
                 "--device", "cpu_and_ne,all", "--coreml-format", "mlprogram",
                 "--cache-dir", str(tmp_path / "cache"), "-o", str(path)])
    assert code == 0
    results = read_report(path)["results"]
    # (both formats are converted and read back in test_saved_packages_hold_what_is_reported)
    assert [(r["case"]["device"], r["case"]["options"]["coreml_format"]) for r in results] == [
        ("cpu_and_ne", "mlprogram"), ("all", "mlprogram")]
    for result in results:
        assert result["status"] == "skipped" and "prediction needs macOS" in result["error"]
        artifact = result["artifact"]
        assert artifact["size_bytes"] == result["memory"]["artifact_bytes"] > 1_000_000
        assert artifact["weight_precision"] == ("fp16" if artifact["model_format"] == "mlprogram" else "fp32")
        assert artifact["ops_total"] > 100 and result["cold_start"]["export_s"] >= 0
    # the second device reuses the conversions of the first
    assert [r["artifact"]["cache_hit"] for r in results] == [False, True]
    out = capsys.readouterr().out
    assert "skipped (2 cases): Core ML prediction needs macOS" in out and "Traceback" not in out


def test_export_writes_the_package_and_its_manifest(tmp_path, capsys):
    out = tmp_path / "out"
    code = main(["export", "-v", "m0", "--format", "coreml", "-r", "64", "--output", str(out),
                 "--cache-dir", str(tmp_path / "cache")])
    assert code == 0
    manifest = json.loads((out / "manifest.json").read_text())
    (entry,) = manifest["artifacts"]
    assert entry["files"] == ["m0-fused-64px-fp16-mlprogram.mlpackage"]
    package = out / entry["files"][0]
    assert package.is_dir() and size_on_disk(package) == entry["size_bytes"]
    assert entry["weight_precision"] == "fp16" and entry["input"]["shape"] == [1, 3, 64, 64]
    assert entry["input"]["batch"] == "static" and entry["input"]["dtype"] == "float32"
    assert entry["versions"]["coremltools"] == ct.__version__ and "opset" not in entry
    assert "random (seed 0)" in manifest["weights"]
    spec = ct.models.MLModel(str(package), skip_model_load=True).get_spec()
    assert spec.WhichOneof("Type") == "mlProgram"
    assert main(["export", "-v", "m0", "--format", "coreml", "--coreml-format", "neuralnetwork", "-p", "fp16",
                 "--output", str(out)]) == 2
    assert "neuralnetwork exports fp32" in capsys.readouterr().err


def test_a_precision_the_format_cannot_convert_is_skipped_without_a_worker():
    from repnext_bench.backends import get_backend
    from repnext_bench.core.cases import Case

    coreml = get_backend("coreml")
    case = Case("M0", "fused", "coreml", "all", "fp16", 1, 64, 1, "latency", (("coreml_format", "neuralnetwork"),))
    assert coreml.unsupported(case) == "coreml neuralnetwork on all does not run fp16; it supports fp32, int8, auto"
    assert coreml.unsupported(Case(**{**case.__dict__, "options": (("coreml_format", "mlprogram"),)})) is None
