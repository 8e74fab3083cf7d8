"""A case whose process crashes, hangs or runs out of memory costs that case, not the sweep;
Ctrl-C keeps every finished block in a valid report."""
import json
import os
import signal
import subprocess
import sys
import time

import pytest

from repnext_bench.core.cases import expand
from repnext_bench.measure.timing import TimingPlan
from repnext_bench.report.schema import read_report
from repnext_bench.run.lifecycle import FAULT_ENV, Settings
from repnext_bench.run.sweep import RoundsPlan, run_cases

SETTINGS = TimingPlan(warmup_s=0, warmup_iters=1)
ROUNDS = RoundsPlan(block_s=0.01, min_rounds=2, budget_s=0.5, min_duration_s=0, min_iters=3, restart_every=100)


def torch_cases(*variants):
    return expand(list(variants), ["fused"], [("torch", "cpu")], ["fp32"], [1], [64], [1], ["latency"])


@pytest.mark.skipif(not sys.platform.startswith("linux"),
                    reason="the injected out-of-memory needs RLIMIT_AS (Linux) and the kill needs SIGKILL (POSIX)")
def test_crash_and_oom_are_recorded_and_the_sweep_goes_on(monkeypatch, tmp_path):
    monkeypatch.setenv(FAULT_ENV, "segfault@M0,oom@M2,killed@M3")
    results = run_cases(torch_cases("M0", "M2", "M3", "M0E"), Settings(SETTINGS, cache_dir=str(tmp_path)), 120, ROUNDS)
    by_variant = {r.case.variant: r for r in results}
    assert [r.status for r in results] == ["failed"] * 3 + ["ok"]
    assert "segmentation fault (SIGSEGV)" in by_variant["M0"].error
    assert by_variant["M2"].error.startswith("out of memory")
    assert "SIGKILL" in by_variant["M3"].error and "out-of-memory" in by_variant["M3"].error
    assert by_variant["M0E"].latency_ms.n >= 3 and by_variant["M0E"].rounds.blocks >= 2


@pytest.mark.exclusive  # timed: alone under pytest-xdist
def test_a_hang_is_stopped_at_the_time_limit_and_the_sweep_goes_on(monkeypatch, tmp_path):
    """The limit is set from how long a healthy case takes on this machine to load, so the test
    waits a few seconds for the hang, not a fixed limit."""
    settings = Settings(SETTINGS, cache_dir=str(tmp_path))
    started = time.monotonic()
    (calibration,) = run_cases(torch_cases("M0"), settings, 120, ROUNDS)
    healthy_s = time.monotonic() - started
    assert calibration.ok
    limit = round(max(3.0, 2.5 * healthy_s), 1)
    monkeypatch.setenv(FAULT_ENV, "hang@M1")
    started = time.monotonic()
    hung, after = run_cases(torch_cases("M1", "M0"), settings, limit, ROUNDS)
    assert hung.status == "failed" and f"time limit of {limit:g} s" in hung.error
    assert after.ok and after.latency_ms.n >= 3
    assert time.monotonic() - started < limit + 2 * healthy_s + 10  # stopped, not waited out


def test_an_exception_in_a_case_is_its_error(monkeypatch, tmp_path):
    monkeypatch.setenv(FAULT_ENV, "error")
    case = expand(["M0"], ["train"], [("onnxruntime", "cpu")], ["fp32"], [1], [64], [1], ["latency"])
    (result,) = run_cases(case, Settings(SETTINGS, cache_dir=str(tmp_path)), 60, ROUNDS)
    assert result.status == "failed" and result.error == "RuntimeError: injected failure"
    assert "_fail" in result.traceback


def test_ctrl_c_keeps_the_finished_blocks(tmp_path):
    """Ctrl-C in a terminal signals the whole process group: the sweep, its fork server and
    every case's process."""
    path = tmp_path / "interrupted.json"
    process = subprocess.Popen(
        [sys.executable, "-m", "repnext_bench", "run", "--variants", "m0,m1", "--backend", "torch", "--resolution",
         "64", "--block", "0.02", "--budget", "120", "--target-ci", "0.01", "--restart-every", "100",
         "--output", str(path), "--cache-dir", str(tmp_path / "cache")],
        stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, start_new_session=True,
    )
    deadline = time.monotonic() + 120
    while time.monotonic() < deadline:  # wait until two rounds are in the report
        if path.exists() and json.loads(path.read_text())["sweep"].get("rounds", 0) >= 2:
            break
        time.sleep(0.2)
    os.killpg(process.pid, signal.SIGINT)
    _, err = process.communicate(timeout=60)
    assert process.returncode == 130, err
    report = read_report(path)
    assert report["sweep"]["interrupted"] is True and report["sweep"]["stopped"] == "interrupted"
    assert report["sweep"]["finished"] == len(report["results"]) == 4
    for result in report["results"]:
        assert result["status"] == "ok" and result["rounds"]["blocks"] >= 2
        assert len(result["samples_ms"]) == len(result["samples_round"]) == result["latency_ms"]["n"]
        assert result["parity"]["rel_l2"] < 1e-5 and result["precision_effective"] == "fp32"  # known from the load
    assert "interrupted" in err and "Traceback" not in err
