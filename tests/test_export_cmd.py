"""The export command: files another machine can load, described by a manifest that matches them."""
import hashlib
import json

import numpy as np
import onnxruntime as ort
import pytest

from repnext_bench.backends import availability
from repnext_bench.cli import main


@pytest.fixture(scope="module")
def exported(tmp_path_factory):
    out = tmp_path_factory.mktemp("out")
    cache = tmp_path_factory.mktemp("cache")
    assert main(["export", "-v", "m0", "--format", "onnx,openvino", "-r", "64", "--batch", "2", "--output", str(out),
                 "--cache-dir", str(cache)]) == 0
    return out, json.loads((out / "manifest.json").read_text())


def test_onnx_and_openvino_files_load_and_agree(exported):
    out, manifest = exported
    by_format = {entry["format"]: entry for entry in manifest["artifacts"]}
    assert by_format["onnx"]["files"] == ["m0-fused-64px-b2-fp32.onnx"]
    assert by_format["openvino"]["files"] == ["m0-fused-64px-b2-fp32.xml", "m0-fused-64px-b2-fp32.bin"]
    images = np.random.default_rng(0).standard_normal((2, 3, 64, 64), dtype=np.float32)
    session = ort.InferenceSession(str(out / "m0-fused-64px-b2-fp32.onnx"), providers=["CPUExecutionProvider"])
    from_onnx = session.run(None, {"images": images})[0]
    ov = pytest.importorskip("openvino")
    compiled = ov.Core().compile_model(str(out / "m0-fused-64px-b2-fp32.xml"), "CPU",
                                       {"INFERENCE_PRECISION_HINT": "f32"})
    from_ir = compiled(images)[0]
    assert from_onnx.shape == from_ir.shape == (2, 1000)
    assert np.linalg.norm(from_ir - from_onnx) / np.linalg.norm(from_onnx) < 1e-4
    assert list(compiled.inputs[0].shape) == by_format["openvino"]["input"]["shape"] == [2, 3, 64, 64]


def test_the_manifest_matches_the_files(exported):
    out, manifest = exported
    for entry in manifest["artifacts"]:
        total = 0
        for name, digest in entry["sha256"].items():
            data = (out / name).read_bytes()
            assert hashlib.sha256(data).hexdigest() == digest
            total += len(data)
        assert total == entry["size_bytes"]
        assert entry["weights_sha256"] == manifest["artifacts"][0]["weights_sha256"]  # one model, two formats
        assert entry["output"] == {"name": "logits", "shape": [2, 1000]}
        assert entry["opset"] == 17 and entry["versions"]["torch"] and entry["versions"][entry["format"]]


def test_a_typed_fp16_onnx_says_so(tmp_path):
    assert main(["export", "-v", "m0", "--format", "onnx", "-p", "fp16", "-r", "64", "--output", str(tmp_path),
                 "--cache-dir", str(tmp_path / "cache")]) == 0
    (entry,) = json.loads((tmp_path / "manifest.json").read_text())["artifacts"]
    assert entry["input"]["dtype"] == "float16"
    session = ort.InferenceSession(str(tmp_path / entry["files"][0]), providers=["CPUExecutionProvider"])
    assert session.get_inputs()[0].type == "tensor(float16)"
    assert session.run(None, {"images": np.zeros((1, 3, 64, 64), np.float16)})[0].dtype == np.float16


@pytest.mark.parametrize("args,message", [
    (["--format", "tflite"], "--format 'tflite' is not valid: choose from onnx, openvino, coreml, tensorrt"),
    (["--format", "onnx", "-r", "100"], "--resolution '100' is not valid"),
    (["--format", "openvino", "-p", "bf16"], "--precision bf16: openvino exports fp32, fp16"),
    (["--format", "onnx", "-v", "m9"], "unknown variant 'm9'"),
    (["--format", "onnx", "--opset", "99"], "--opset 99 is not valid: use 7 to"),
    (["--format", "coreml", "--coreml-format", "mlprogram,neuralnetwork"], "export writes one Core ML format per run"),
    (["--format", "onnx", "--batch", "0"], "--batch '0' is not valid"),
])
def test_bad_export_options_are_one_line_and_exit_2(tmp_path, capsys, args, message):
    assert main(["export", "--output", str(tmp_path), *args]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and message in err[0], err
    assert not (tmp_path / "manifest.json").exists()


def test_tensorrt_export_without_tensorrt_says_what_is_missing(tmp_path, capsys):
    found = availability("tensorrt")
    if found.available:
        pytest.skip("TensorRT is usable here (the GPU tests build engines)")
    assert main(["export", "--format", "tensorrt", "--output", str(tmp_path)]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and found.reason in err[0] and "repnext-bench[tensorrt]" in err[0]


def test_a_failing_exporter_is_one_line_and_keeps_the_earlier_files(tmp_path, capsys, monkeypatch):
    from repnext_bench.export import openvino as ov_export

    def broken(*args, **kwargs):
        raise RuntimeError("converter crashed\nwith a long second line")

    monkeypatch.setattr(ov_export, "export_openvino", broken)
    assert main(["export", "-v", "m0", "--format", "onnx,openvino", "-r", "64", "--output", str(tmp_path),
                 "--cache-dir", str(tmp_path / "cache")]) == 1
    err = capsys.readouterr().err.strip().splitlines()
    assert err == ["error: exporting m0-fused-64px as openvino failed: RuntimeError: converter crashed"]
    (entry,) = json.loads((tmp_path / "manifest.json").read_text())["artifacts"]
    assert entry["format"] == "onnx" and (tmp_path / entry["files"][0]).is_file()


def test_output_names_the_folder_under_either_spelling(tmp_path, capsys):
    """--output/-o, as in every command that writes; the old --out is gone."""
    for flag in ("--output", "-o"):
        out = tmp_path / flag.strip("-")
        assert main(["export", "-v", "m0", "--format", "onnx", "-r", "64", flag, str(out),
                     "--cache-dir", str(tmp_path / "cache")]) == 0
        (entry,) = json.loads((out / "manifest.json").read_text())["artifacts"]
        assert (out / entry["files"][0]).is_file() and f"manifest: {out / 'manifest.json'}" in capsys.readouterr().out
    assert main(["export", "--format", "onnx", "--out", str(tmp_path / "old")]) == 2
    assert "No such option: --out" in capsys.readouterr().err and not (tmp_path / "old").exists()
    assert main(["export", "--format", "onnx", "-o", "/proc/forbidden"]) == 2
    assert "--output /proc/forbidden/manifest.json: cannot write there" in capsys.readouterr().err


def test_the_manifest_helpers_moved_out_of_the_command(tmp_path):
    from repnext_bench.run.manifest import FORMATS, digest, precisions

    assert FORMATS == ("onnx", "openvino", "coreml", "tensorrt")
    (tmp_path / "pkg" / "sub").mkdir(parents=True)
    (tmp_path / "pkg" / "sub" / "w.bin").write_bytes(b"abc")
    (tmp_path / "one.bin").write_bytes(b"abc")
    assert digest(tmp_path / "one.bin") == hashlib.sha256(b"abc").hexdigest()
    assert digest(tmp_path / "pkg") == hashlib.sha256(b"sub/w.bin" + b"abc").hexdigest()
    assert precisions("onnx", "mlprogram") == (("fp32", "fp16", "int8"), "fp32")
    assert precisions("coreml", "neuralnetwork") == (("fp32", "int8"), "fp32")
