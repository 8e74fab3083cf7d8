"""pytest-benchmark interop: our reports in its JSON layout, and the fixtures for users' tests."""
import json
import os
import subprocess
import sys

import pytest
from helpers import FAST

from repnext_bench.cli import main
from repnext_bench.report.pytest_benchmark import to_pytest_benchmark
from repnext_bench.report.schema import read_report

STATS = {"min", "max", "mean", "stddev", "rounds", "median", "iqr", "q1", "q3", "iqr_outliers", "stddev_outliers",
         "outliers", "ld15iqr", "hd15iqr", "ops", "total", "data", "iterations"}


@pytest.fixture(scope="module")
def exported(real_runs, tmp_path_factory):
    """M0 on onnxruntime written by ``run --format pytest-benchmark``, and the shared sweep's
    report (conftest) rendered the same way."""
    runs, _, _ = real_runs
    folder = tmp_path_factory.mktemp("pb")
    paths = [folder / "a.json", folder / "b.json"]
    assert main(["run", "--variants", "m0", "--forms", "train,fused", *FAST,
                 "--format", "pytest-benchmark", "--output", str(paths[0]), "--quiet",
                 "--cache-dir", str(runs / "cache")]) == 0
    paths[1].write_text(json.dumps(to_pytest_benchmark(read_report(runs / "a.json"))))
    return paths


def test_layout_is_pytest_benchmarks(exported):
    data = json.loads(exported[0].read_text())
    assert {"machine_info", "commit_info", "benchmarks", "datetime", "version"} <= set(data)
    assert data["machine_info"]["processor"] and data["commit_info"]["project"] == "repnext-bench"
    assert [b["param"].split("-")[:3] for b in data["benchmarks"]] == [["M0", "train", "onnxruntime"],
                                                                       ["M0", "fused", "onnxruntime"]]
    for bench in data["benchmarks"]:
        stats = bench["stats"]
        assert set(stats) >= STATS
        assert stats["rounds"] == len(stats["data"]) and stats["min"] <= stats["median"] <= stats["max"]
        assert stats["median"] < 1  # seconds, pytest-benchmark's unit
        assert bench["extra_info"]["precision_effective"] == "fp32"


def test_pytest_benchmark_compare_reads_them(exported):
    result = subprocess.run([sys.executable, "-m", "pytest_benchmark", "compare", *map(str, exported)],
                            capture_output=True, text=True, timeout=120, env={**os.environ, "COLUMNS": "250"})
    assert result.returncode == 0, result.stderr
    assert "repnext[M0-fused-onnxruntime" in result.stdout and "repnext[M0-train-onnxruntime" in result.stdout


def test_fixture_in_a_users_test_suite(tmp_path):
    (tmp_path / "test_user.py").write_text(
        "def test_m0(repnext_benchmark):\n"
        "    repnext_benchmark('m0', form='fused', backend='onnxruntime', resolution=64)\n\n"
        "def test_custom(benchmark, repnext_session):\n"
        "    session = repnext_session('m0', backend='torch', resolution=64, threads=1)\n"
        "    benchmark.pedantic(session.run, rounds=5, warmup_rounds=1)\n")
    out = tmp_path / "bench.json"
    result = subprocess.run([sys.executable, "-m", "pytest", "-q", "-p", "no:cacheprovider", str(tmp_path),
                             f"--benchmark-json={out}", "--benchmark-min-rounds=3", "--benchmark-max-time=0.2"],
                            capture_output=True, text=True, timeout=300, cwd=tmp_path,
                            # a worker's PYTEST_XDIST_* would make pytest-benchmark turn itself off
                            env={k: v for k, v in os.environ.items() if not k.startswith("PYTEST_XDIST")})
    assert result.returncode == 0, result.stdout + result.stderr
    benches = {b["name"]: b for b in json.loads(out.read_text())["benchmarks"]}
    assert set(benches) == {"test_m0", "test_custom"}
    assert benches["test_m0"]["extra_info"]["variant"] == "m0"
    assert benches["test_m0"]["extra_info"]["precision_effective"] == "fp32"
    assert benches["test_custom"]["stats"]["rounds"] == 5
