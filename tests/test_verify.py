"""`repnext-bench verify`: passing on real backends, failing on a broken fused model."""
import json

import pytest
from torch import nn

from repnext_bench.cli import main
from repnext_bench.models import network

SMALL = ["verify", "--variants", "m0", "--resolution", "64", "--json"]


@pytest.fixture
def cache(tmp_path):
    return ["--cache-dir", str(tmp_path / "cache")]


def test_verify_passes_on_real_backends(capsys, cache):
    assert main([*SMALL, "--backend", "torch,onnxruntime,openvino", "--precision", "fp32,bf16", *cache]) == 0
    report = json.loads(capsys.readouterr().out)
    checks = report["checks"]
    assert {c["check"] for c in checks} == {"fusion", "backend"}
    ran = [c for c in checks if c["ok"] is not None]
    assert all(c["ok"] for c in ran) and len(ran) >= 2 + 3 * 2 + 2  # fusion x2, fp32 x3 backends x2 forms, bf16
    assert report["tolerances"] == {"fusion": 1e-5, "fp32": 1e-4, "tf32": 5e-3, "fp16": 1e-2, "bf16": 5e-2}
    assert any(c["precision"] == "bf16" and c["ok"] for c in ran)
    skipped = [c for c in checks if c["ok"] is None]  # onnxruntime has no bf16 on the CPU: skipped, not failed
    assert skipped and all("onnxruntime" in c["case"] and c["error"].startswith("skipped") for c in skipped)


def test_verify_fails_on_a_broken_fusion(capsys, monkeypatch, cache):
    def forget_the_norm(block):  # a typical bug: drop the BatchNorm instead of folding it
        block.norm = nn.Identity()

    monkeypatch.setattr(network.MetaNeXtBlock, "fold_norm", forget_the_norm)
    assert main([*SMALL, "--backend", "onnxruntime", "--forms", "train", *cache]) == 1
    captured = capsys.readouterr()
    failed = [c for c in json.loads(captured.out)["checks"] if c["ok"] is False]
    assert [c["case"] for c in failed] == ["M0 fused vs train (torch fp32, 64px)"]
    assert "FAIL M0 fused vs train" in captured.err and "above 1e-05" in captured.err


def test_verify_fails_on_a_wrong_backend_output(capsys, monkeypatch, cache):
    monkeypatch.setenv("REPNEXT_BENCH_FAULT", "corrupt@M0")  # the worker scales a conv's weights
    assert main([*SMALL, "--backend", "openvino", "--forms", "fused", *cache]) == 1
    captured = capsys.readouterr()
    failed = [c["case"] for c in json.loads(captured.out)["checks"] if c["ok"] is False]
    assert len(failed) == 1 and failed[0].startswith("M0 fused openvino/cpu fp32 b2 64px")
    assert "FAIL M0 fused openvino" in captured.err
