"""The ONNX export and its content-addressed cache."""
import json

import onnxruntime as ort
import pytest
import torch

import repnext_bench
from repnext_bench.export import CACHE_ENV, ExportCache, default_cache_dir, export_onnx, weights_hash


@pytest.fixture(scope="module")
def model():
    torch.manual_seed(0)
    return repnext_bench.create_model("M0", form="fused")


def test_export_is_cached_by_content(model, tmp_path):
    cache = ExportCache(tmp_path)
    first = export_onnx(model, 64, 17, cache)
    again = export_onnx(model, 64, 17, cache)
    assert not first.cache_hit and first.export_s > 0 and first.size_bytes == first.path.stat().st_size
    assert again.cache_hit and again.export_s == 0 and again.path == first.path
    key = json.loads((first.path.parent / "key.json").read_text())
    assert key["variant"] == "M0" and key["form"] == "fused" and key["opset"] == 17
    assert key["weights_sha256"] == weights_hash(model) and key["input_shape"] == ["batch", 3, 64, 64]
    assert key["torch"] == torch.__version__ and key["exporter"]
    # any change of what the file depends on is another entry
    assert export_onnx(model, 64, 18, cache).path != first.path
    assert export_onnx(model, 96, 17, cache).path != first.path
    other = repnext_bench.create_model("M0", form="fused")
    assert export_onnx(other, 64, 17, cache).path != first.path  # other weights


def test_exported_model_has_a_dynamic_batch_and_matches_torch(model, tmp_path):
    artifact = export_onnx(model, 64, 17, ExportCache(tmp_path))
    session = ort.InferenceSession(str(artifact.path), providers=["CPUExecutionProvider"])
    for batch in (1, 3):
        x = torch.randn(batch, 3, 64, 64)
        (out,) = session.run(None, {"images": x.numpy()})
        with torch.no_grad():
            expected = model(x).numpy()
        assert out.shape == (batch, 1000)
        assert abs(out - expected).max() < 1e-4


def test_disabled_cache_leaves_nothing(model):
    cache = ExportCache(enabled=False)
    artifact = export_onnx(model, 64, 17, cache)
    assert artifact.path.is_file() and not artifact.cache_hit
    cache.close()
    assert not cache.root.exists()


def test_cache_location(monkeypatch, tmp_path):
    monkeypatch.setenv(CACHE_ENV, str(tmp_path / "from-env"))
    assert default_cache_dir() == tmp_path / "from-env"
    monkeypatch.delenv(CACHE_ENV)
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path / "xdg"))
    assert default_cache_dir() == tmp_path / "xdg" / "repnext-bench"
