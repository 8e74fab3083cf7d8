"""A worker that crashes, hangs or runs out of memory costs its own case, not the sweep;
Ctrl-C keeps every finished case in a valid report."""
import json
import signal
import subprocess
import sys
import time

import pytest

from repnext_bench.cases import expand
from repnext_bench.measure.timing import TimingPlan
from repnext_bench.report.schema import read_report
from repnext_bench.sweep import run_cases
from repnext_bench.worker import FAULT_ENV, Settings

PLAN = TimingPlan(warmup_s=0, warmup_iters=1, min_duration_s=0, min_iters=3)


@pytest.mark.skipif(not sys.platform.startswith("linux"),
                    reason="the injected out-of-memory needs RLIMIT_AS (Linux) and the kill needs SIGKILL (POSIX)")
def test_crash_and_oom_are_recorded_and_the_sweep_goes_on(monkeypatch, tmp_path):
    monkeypatch.setenv(FAULT_ENV, "segfault@M0,oom@M2,killed@M3")
    cases = expand(["M0", "M2", "M3", "M0E"], ["fused"], [("torch", "cpu")], ["fp32"], [1], [64], [1], ["latency"])
    results = list(run_cases(cases, Settings(PLAN, cache_dir=str(tmp_path)), time_limit_s=120))
    by_variant = {r["case"]["variant"]: r for r in results}
    assert [r["status"] for r in results] == ["failed"] * 3 + ["ok"]
    assert "segmentation fault (SIGSEGV)" in by_variant["M0"]["error"]
    assert by_variant["M2"]["error"].startswith("out of memory")
    assert "SIGKILL" in by_variant["M3"]["error"] and "out-of-memory" in by_variant["M3"]["error"]
    assert by_variant["M0E"]["latency_ms"]["n"] == 3


def test_a_hang_is_stopped_at_the_time_limit_and_the_sweep_goes_on(monkeypatch, tmp_path):
    """The limit is set from how long a healthy case takes on this machine (a worker's whole
    life), so the test waits a few seconds for the hang, not a fixed 20."""
    settings = Settings(PLAN, cache_dir=str(tmp_path))
    healthy = expand(["M0"], ["fused"], [("torch", "cpu")], ["fp32"], [1], [64], [1], ["latency"])
    (calibration,) = run_cases(healthy, settings, time_limit_s=120)
    limit = round(max(3.0, 2.5 * calibration["worker_wall_s"]), 1)
    monkeypatch.setenv(FAULT_ENV, "hang@M1")
    cases = expand(["M1", "M0"], ["fused"], [("torch", "cpu")], ["fp32"], [1], [64], [1], ["latency"])
    started = time.monotonic()
    hung, after = run_cases(cases, settings, time_limit_s=limit)
    assert hung["status"] == "failed" and f"time limit of {limit:g} s" in hung["error"]
    assert after["status"] == "ok" and after["latency_ms"]["n"] == 3
    assert time.monotonic() - started < limit + 2 * calibration["worker_wall_s"] + 10  # stopped, not waited out


def test_an_exception_in_a_case_is_its_error(monkeypatch, tmp_path):
    monkeypatch.setenv(FAULT_ENV, "error")
    case = expand(["M0"], ["train"], [("onnxruntime", "cpu")], ["fp32"], [1], [64], [1], ["latency"])
    (result,) = run_cases(case, Settings(PLAN, cache_dir=str(tmp_path)), time_limit_s=60)
    assert result["status"] == "failed" and result["error"] == "RuntimeError: injected failure"
    assert "_fail" in result["traceback"]


def test_ctrl_c_keeps_the_finished_cases(tmp_path):
    path = tmp_path / "interrupted.json"
    process = subprocess.Popen(
        [sys.executable, "-m", "repnext_bench", "run", "--variants", "all", "--backend", "torch", "--resolution", "64",
         "--duration", "0.05", "--min-iters", "3", "--output", str(path), "--cache-dir", str(tmp_path / "cache")],
        stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
    )
    deadline = time.monotonic() + 120
    while time.monotonic() < deadline:
        if path.exists() and json.loads(path.read_text())["sweep"]["finished"] >= 1:
            break
        time.sleep(0.2)
    process.send_signal(signal.SIGINT)
    _, err = process.communicate(timeout=60)
    assert process.returncode == 130, err
    report = read_report(path)
    assert report["sweep"]["interrupted"] is True
    assert 1 <= report["sweep"]["finished"] == len(report["results"]) < 18
    assert all(r["status"] == "ok" for r in report["results"])
    assert "interrupted" in err and "Traceback" not in err
