"""`repnext-bench run` end to end with real backends at small sizes: the report's fields,
the consistency of its numbers, and the options it refuses."""
import json
import math
from pathlib import Path

import pytest
from helpers import FAST, run_cli

from repnext_bench.backends import availability
from repnext_bench.backends.openvino_cpu import cpu_capabilities
from repnext_bench.cli import main
from repnext_bench.report.schema import read_report
from repnext_bench.system.machine import CPU_FEATURES

CONTRACT_CASE = {"variant", "form", "backend", "device", "precision", "batch", "resolution", "threads", "mode"}
CONTRACT_RESULT = {"case", "status", "error", "latency_ms", "throughput_ips", "precision_effective", "parity",
                   "memory", "cold_start", "model"}


@pytest.fixture(scope="module")
def sweep(real_runs):
    """2 variants x 2 forms x 2 backends, the shared real sweep (conftest)."""
    folder, result, _ = real_runs
    return read_report(folder / "a.json"), result


def test_report_follows_the_contract(sweep):
    report, _ = sweep
    assert report["schema_version"] == 1 and report["tool"]["name"] == "repnext-bench"
    sweep = report["sweep"]
    assert (sweep["planned"], sweep["finished"], sweep["interrupted"]) == (8, 8, False)
    assert sweep["stopped"] == "converged" and sweep["rounds"] == len(sweep["orders"]) == 3
    assert all(sorted(order) == sorted(order_) for order, order_ in zip(sweep["orders"], sweep["orders"][1:]))
    env = report["environment"]
    assert env["cpu"]["model"] and env["python"] and "torch" in env["libraries"] and "onnxruntime" in env["libraries"]
    assert env["command"].startswith("repnext-bench run --variants m0,m1 --backend torch,onnxruntime")
    assert report["config"]["variants"] == ["M0", "M1"]
    seen = set()
    for result in report["results"]:
        assert set(result) >= CONTRACT_RESULT and set(result["case"]) >= CONTRACT_CASE
        assert result["status"] == "ok", result["error"]
        case = result["case"]
        seen.add((case["variant"], case["form"], case["backend"]))
        assert case["device"] == "cpu" and case["batch"] == 1 and case["resolution"] == 64
    assert len(seen) == 8


def test_numbers_are_consistent(sweep):
    report, _ = sweep
    for result in report["results"]:
        latency, samples = result["latency_ms"], result["samples_ms"]
        assert latency["n"] == len(samples) >= 3 and sorted(set(result["samples_round"])) == [0, 1, 2]
        assert latency["min"] <= latency["p50"] <= latency["p90"] <= latency["p99"] <= latency["max"]
        assert latency["min"] == pytest.approx(min(samples), abs=1e-5)
        assert latency["max"] == pytest.approx(max(samples), abs=1e-5)
        assert latency["ci95_median"][0] <= latency["p50"] <= latency["ci95_median"][1]
        run = result["concurrency"]
        assert run["completed"] == len(samples) and run["requests"] == 1
        assert result["throughput_ips"] == pytest.approx(run["completed"] / run["wall_s"])
        # the wall time of the loop covers the timed calls, and not by much more
        assert sum(samples) / 1e3 <= run["wall_s"] < sum(samples) / 1e3 * 1.5 + 0.01
        assert result["precision_effective"] == "fp32"
        assert result["parity"]["rel_l2"] < 1e-5 and result["parity"]["top1_agree"] == 1.0
        memory = result["memory"]
        assert memory["peak_rss_mb"] >= memory["rss_after_load_mb"] > 0
        assert math.isclose(memory["load_added_mb"], memory["rss_after_load_mb"] - memory["rss_before_load_mb"])
        assert result["cold_start"]["first_inference_ms"] > 0 and result["cold_start"]["load_s"] >= 0
        assert result["model"]["params"] > 0 and result["model"]["macs"] > 0


def test_every_backend_and_form_matches_the_reference(real_runs):
    """Both forms on torch, ONNX Runtime (a) and OpenVINO (b) stay within fp32 tolerance of the
    PyTorch fp32 train-time model on the same input."""
    folder, _, _ = real_runs
    seen = set()
    for name in ("a.json", "b.json"):
        for result in read_report(folder / name)["results"]:
            assert result["status"] == "ok" and result["precision_effective"] == "fp32", result["error"]
            assert result["parity"]["rel_l2"] < 1e-5 and result["parity"]["top1_agree"] == 1.0
            seen.add((result["case"]["backend"], result["case"]["form"]))
    assert seen == {(b, f) for b in ("torch", "onnxruntime", "openvino") for f in ("train", "fused")}


def test_a_batch_counts_its_images(real_runs):
    folder, _, _ = real_runs
    batch2 = [r for r in read_report(folder / "c.json")["results"] if r["case"]["batch"] == 2]
    assert len(batch2) == 2
    for result in batch2:
        run = result["concurrency"]
        assert result["status"] == "ok"
        assert result["throughput_ips"] == pytest.approx(2 * run["completed"] / run["wall_s"])
        assert result["parity"]["rel_l2"] < 1e-5 and result["parity"]["top1_agree"] == 1.0


def test_backends_record_what_ran(sweep):
    report, _ = sweep
    for result in report["results"]:
        backend = result["backend"]
        if result["case"]["backend"] == "onnxruntime":
            assert backend["providers"] == ["CPUExecutionProvider"]
            assert backend["graph_optimization_level"] == "ORT_ENABLE_ALL"
            assert result["memory"]["artifact_bytes"] > 100_000
            assert result["cold_start"]["export_cache_hit"] in (True, False)
        else:
            assert backend["versions"]["torch"] and result["memory"]["artifact_bytes"] is None
        assert backend["threads"] == result["case"]["threads"]


def test_fused_model_counts_come_from_the_fused_form(sweep):
    report, _ = sweep
    params = {(r["case"]["variant"], r["case"]["form"]): r["model"]["params"] for r in report["results"]}
    assert params[("M0", "fused")] == 2_328_080 and params[("M0", "train")] == 2_716_480


def test_table_and_live_lines(sweep):
    _, completed = sweep
    assert "fused" in completed.stdout and "speedup" in completed.stdout and "report:" in completed.stdout
    assert completed.stderr.count("loaded M0 ") == completed.stderr.count("loaded M1 ") == 4  # a line per case
    assert [line.split(":")[0] for line in completed.stderr.splitlines() if line.startswith("round")] == \
        ["round 1", "round 2", "round 3"]  # and one per round
    assert "3 rounds in" in completed.stdout and "stopped: every case's 95% CI within" in completed.stdout


def test_export_cache_is_reused(real_runs):
    folder, _, second = real_runs
    cache = Path(read_report(folder / "a.json")["config"]["settings"]["cache_dir"])
    assert len(list((cache / "onnx").glob("*/model.onnx"))) == 4  # 2 variants x 2 forms
    assert second.stdout.strip() == str(folder / "b.json")  # --quiet prints the report's path only
    openvino = [r for r in read_report(folder / "b.json")["results"] if r["case"]["backend"] == "openvino"]
    assert len(openvino) == 2  # M0 train and fused, exported to ONNX by the first sweep
    assert all(r["cold_start"]["export_cache_hit"] is True and r["cold_start"]["export_s"] == 0 for r in openvino)


def test_openvino_reads_back_the_precision_it_used(tmp_path, exercised):
    path = tmp_path / "ov.json"
    result = run_cli("--variants", "m0", "--forms", "fused", "--backend", "openvino", "--precision", "fp32,auto",
                     *FAST, "--output", str(path), "--cache-dir", str(tmp_path / "cache"))
    assert result.returncode == 0, result.stderr
    by_precision = {r["case"]["precision"]: r for r in read_report(path)["results"]}
    fp32, auto = by_precision["fp32"], by_precision["auto"]
    assert fp32["precision_effective"] == "fp32" and fp32["parity"]["rel_l2"] < 1e-5
    assert fp32["backend"]["performance_hint"] == "LATENCY"
    # with no hint the runtime chooses (bf16 on AVX512-BF16 and AMX, f16 on Arm with fp16, else
    # f32); whatever it chose is what the report says, checked by the size of the error
    chosen = auto["precision_effective"]
    capabilities = cpu_capabilities()
    assert chosen == "fp32" or {"bf16": "BF16", "fp16": "FP16"}[chosen] in capabilities
    if chosen == "fp32":
        assert auto["parity"]["rel_l2"] < 1e-5
    else:
        assert 1e-4 < auto["parity"]["rel_l2"] < 0.1
    exercised("openvino --precision auto", f"ran {chosen} (capabilities: {', '.join(capabilities)})")


def test_openvino_throughput_mode_keeps_a_queue(tmp_path):
    path = tmp_path / "tp.json"
    result = run_cli("--variants", "m0", "--forms", "fused", "--backend", "openvino", "--mode", "throughput",
                     *FAST, "--output", str(path), "--cache-dir", str(tmp_path / "cache"))
    assert result.returncode == 0, result.stderr
    record = read_report(path)["results"][0]
    run = record["concurrency"]
    assert record["backend"]["performance_hint"] == "THROUGHPUT"
    assert run["requests"] >= 1 and run["streams"] >= 1 and run["completed"] % run["requests"] == 0
    assert record["throughput_ips"] == pytest.approx(run["completed"] / run["wall_s"])
    assert record["latency_ms"] is None


def test_unsupported_and_unavailable_cases_need_no_worker(tmp_path, capsys):
    path = tmp_path / "skip.json"
    code = main(["run", "--variants", "m0", "--backend", "torch,onnxruntime,cuda", "--precision", "fp16,bf16",
                 "--forms", "fused", "--output", str(path), *FAST])
    results = read_report(path)["results"]
    status = {(r["case"]["backend"], r["case"]["precision"]): (r["status"], r["error"]) for r in results}
    assert status[("torch", "fp16")][0] == "skipped" and "supports fp32, bf16, auto" in status[("torch", "fp16")][1]
    assert status[("onnxruntime", "bf16")][0] == "skipped"
    # torch runs bf16 on any CPU: fast kernels with AVX512-BF16 or AMX, emulated elsewhere
    assert status[("torch", "bf16")][0] == "ok", status[("torch", "bf16")]
    assert code == 0
    cuda = availability("cuda")
    if not cuda.available:  # a CPU machine: one clear reason, with the way to get it
        assert status[("cuda", "fp16")] == ("unavailable", f"cuda is not available: {cuda.reason} ({cuda.install})")
        assert "CPU-only build" in cuda.reason or "no CUDA device is visible" in cuda.reason
        assert "a CUDA build of torch" in cuda.install
        assert "cuda is not available" in capsys.readouterr().out
    else:
        assert status[("cuda", "fp16")][0] == "ok"


def test_a_device_the_backend_lacks_here_is_unavailable_with_the_install_line(tmp_path):
    found = availability("onnxruntime")
    if "cuda" in found.devices:
        pytest.skip("this onnxruntime has the CUDA provider")
    path = tmp_path / "gpu.json"
    assert main(["run", "-v", "m0", "-b", "onnxruntime", "--device", "cuda", "-f", "fused", "-o", str(path), "-q",
                 *FAST]) == 0
    (result,) = read_report(path)["results"]
    assert result["case"]["device"] == "cuda" and result["status"] == "unavailable"
    assert "has no CUDAExecutionProvider" in result["error"] and "pip install onnxruntime-gpu" in result["error"]


@pytest.mark.parametrize("args,message", [
    (["--batch", "0"], "--batch '0' is not valid"),
    (["--batch", "one"], "--batch 'one' is not valid"),
    (["--resolution", "100"], "--resolution '100' is not valid: use positive multiples of 32"),
    (["--backend", "tflite"], "--backend 'tflite' is not valid: choose from torch, onnxruntime, openvino, cuda"),
    (["--backend", "openvino", "--device", "cuda"], "--device 'cuda' is not valid: choose from cpu"),
    (["--backend", "onnxruntime,openvino", "--device", "cuda"], "--device cuda: openvino runs on cpu"),
    (["--backend", "coreml", "--coreml-format", "onnx"], "--coreml-format 'onnx' is not valid"),
    (["--precision", "int4"], "--precision 'int4' is not valid"),
    (["--mode", "both"], "--mode 'both' is not valid: choose from latency, throughput"),
    (["--forms", "half"], "--forms 'half' is not valid"),
    (["--variants", "m9"], "unknown variant 'm9'"),
    (["--threads", "0"], "--threads '0' is not valid"),
    (["--duration", "-1"], "--duration and --warmup must be >= 0"),
    (["--target-ci", "lots"], "--target-ci 'lots' is not a percentage"),
    (["--block", "0"], "--block, --target-ci, --budget and --max-wall must be > 0"),
    (["--budget", "-5"], "--block, --target-ci, --budget and --max-wall must be > 0"),
    (["--max-wall", "0"], "(got --block 0.12, --target-ci 5%, --budget 45, --max-wall 0,"),
    (["--restart-every", "0"], "--min-rounds and --restart-every >= 1"),
    (["--checkpoint", "/nonexistent.pth", "--variants", "m0"], "no checkpoint file at /nonexistent.pth"),
    (["--checkpoint", "/nonexistent.pth"], "select exactly one variant, not 6"),
    (["--output", "/proc/forbidden/report.json"], "cannot write there"),
])
def test_bad_options_are_one_line_and_exit_2(capsys, args, message):
    assert main(["run", *args]) == 2
    captured = capsys.readouterr()
    lines = captured.err.strip().splitlines()
    assert len(lines) == 1 and message in lines[0], captured.err
    assert "Traceback" not in captured.err + captured.out


def test_a_rounds_plan_refuses_from_the_api_in_the_words_of_the_command_line(capsys):
    from repnext_bench.measure.timing import RoundsPlan

    with pytest.raises(ValueError) as refused:
        RoundsPlan(restart_every=0, max_wall_s=30.0)
    assert main(["run", "--restart-every", "0", "--max-wall", "30"]) == 2
    assert capsys.readouterr().err.strip().endswith(str(refused.value))
    assert "--restart-every 0" in str(refused.value) and "--max-wall 30" in str(refused.value)


def test_backends_and_env_commands(capsys):
    assert main(["backends", "--json"]) == 0
    infos = {b["name"]: b for b in json.loads(capsys.readouterr().out)}
    assert infos["onnxruntime"]["available"] and infos["onnxruntime"]["version"]
    assert infos["openvino"]["available"] and infos["torch"]["devices"] == ["cpu"]
    for name in ("cuda", "tensorrt"):  # on a CPU machine: why not, and how to get it
        info = availability(name)
        assert infos[name]["available"] == info.available and infos[name]["devices"] == ["cuda"]
        if not info.available:
            assert infos[name]["reason"] and infos[name]["install"]
    assert infos["onnxruntime"]["devices"][0] == "cpu"
    assert set(infos["coreml"]["devices"]) == {"all", "cpu_only", "cpu_and_gpu", "cpu_and_ne"}
    assert main(["env", "--json"]) == 0
    env = json.loads(capsys.readouterr().out)
    assert env["cpu"]["logical_cores"] >= 1 and env["command"] == "repnext-bench env --json"
    assert set(env["cpu"]["features"]) <= set(CPU_FEATURES)
    assert env["cpu"]["architecture"] and env["memory_gib"] > 0 and env["cpu"]["usable_cores"] >= 1
