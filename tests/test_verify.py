"""`repnext-bench verify`: passing on real backends, failing on a broken fused model."""
import json

import pytest
from torch import nn

from repnext_bench.backends.openvino_cpu import cpu_capabilities
from repnext_bench.cli import main
from repnext_bench.models import network

SMALL = ["verify", "--variants", "m0", "--resolution", "64", "--json"]


@pytest.fixture
def cache(tmp_path):
    return ["--cache-dir", str(tmp_path / "cache")]


def test_verify_passes_on_real_backends(capsys, cache, exercised):
    """The fused form on every CPU backend in fp32 and bf16 (the train-time form's outputs on the
    backends are checked by the shared sweeps' parity in test_run)."""
    assert main([*SMALL, "--backend", "torch,onnxruntime,openvino", "--precision", "fp32,bf16", "--forms", "fused",
                 *cache]) == 0
    report = json.loads(capsys.readouterr().out)
    checks = report["checks"]
    assert {c["check"] for c in checks} == {"fusion", "backend"}
    assert report["tolerances"] == {"fusion": 1e-5, "fp32": 1e-4, "tf32": 5e-3, "fp16": 1e-2, "bf16": 5e-2,
                                    "int8": 1e-1}
    # the case label: "M0 fused openvino/cpu bf16 b2 64px t2 latency"
    outcome = {(c["case"].split()[2].split("/")[0], c["case"].split()[1], c["case"].split()[3]): c
               for c in checks if c["check"] == "backend"}
    assert len(outcome) == 3 * 2  # backends x precisions
    openvino_bf16 = "BF16" in cpu_capabilities()
    for (backend, _form, precision), check in outcome.items():
        # torch runs bf16 on every CPU; onnxruntime's CPU provider never; OpenVINO where it lists BF16
        runs = precision == "fp32" or backend == "torch" or backend == "openvino" and openvino_bf16
        if runs:
            assert check["ok"] is True, check
        else:  # skipped with the reason, not failed
            assert check["ok"] is None and check["error"].startswith("skipped"), check
    assert all(c["ok"] for c in checks if c["check"] == "fusion")
    exercised("openvino bf16 (verify)", "ran and passed" if openvino_bf16 else "skipped: OpenVINO lists no BF16")


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


def test_openvino_bf16_is_skipped_with_the_reason_where_the_cpu_lacks_it(monkeypatch):
    """The AVX2-only branch, on any machine: OpenVINO lists no BF16, so the case is skipped and says why."""
    from repnext_bench.backends import CaseSkipped, openvino_cpu
    from repnext_bench.core.cases import Case

    monkeypatch.setattr(openvino_cpu, "cpu_capabilities", lambda: ["FP32", "INT8", "BIN", "EXPORT_IMPORT"])
    case = Case("M0", "fused", "openvino", "cpu", "bf16", 1, 64, 1, "latency")
    with pytest.raises(CaseSkipped, match=r"^this CPU has no bf16 support in OpenVINO \(capabilities: FP32, INT8"):
        openvino_cpu.OpenVinoBackend().prepare(None, case, None, None)  # refused before anything is loaded
    assert openvino_cpu.precision_problem("fp32", ["FP32"]) is None
    assert openvino_cpu.precision_problem("fp16", ["FP32", "BF16"]).startswith("this CPU has no fp16")
