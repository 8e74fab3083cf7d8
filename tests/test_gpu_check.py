"""examples/ci/gpu-check.sh, the GPU check in one call, run here in a real virtual environment
that holds exactly what the lent GPU machine has (no openvino, nncf, coremltools, jsonschema or
hatchling): without a CUDA device it says so in one line and exits 2; as a rehearsal it runs
every step, `pytest -m gpu` included, and writes its files."""
import os
import subprocess
from pathlib import Path

import pytest
from helpers import GPU_MACHINE_PACKAGES, venv_with

from repnext_bench.system.capabilities import cuda_problem

ROOT = Path(__file__).resolve().parent.parent
SCRIPT = ROOT / "examples" / "ci" / "gpu-check.sh"
STEPS = ["env", "backends", "pytest-gpu", "verify-cuda", "run-cuda", "run-cuda-graphs", "statuses"]


@pytest.fixture(scope="module")
def gpu_python(tmp_path_factory):
    return venv_with(tmp_path_factory.mktemp("gpu-venv") / "venv", GPU_MACHINE_PACKAGES)


@pytest.fixture(scope="module")
def rehearsal(gpu_python, tmp_path_factory):
    """(the finished rehearsal, its folder)."""
    out = tmp_path_factory.mktemp("rehearsal") / "out"
    return check(gpu_python, out, REHEARSE="1"), out


def check(gpu_python, out, **env):
    environment = {k: v for k, v in os.environ.items() if k != "PYTHONPATH"}
    return subprocess.run(["bash", str(SCRIPT), str(out)], capture_output=True, text=True, timeout=300,
                          env={**environment, "PYTHON": gpu_python, "RESOLUTION": "64", **env})


def test_the_environment_holds_the_gpu_machines_packages_only(gpu_python):
    probe = "import importlib.util as u; print([m for m in {} if u.find_spec(m) is None])"
    wanted = subprocess.run([gpu_python, "-c", probe.format(["torch", "onnxruntime", "typer", "rich", "pytest",
                                                             "pytest_benchmark", "matplotlib", "onnx"])],
                            capture_output=True, text=True, check=True)
    absent = subprocess.run([gpu_python, "-c", probe.format(["openvino", "nncf", "coremltools", "jsonschema",
                                                             "hatchling", "repnext_bench"])],
                            capture_output=True, text=True, check=True, cwd="/")
    assert wanted.stdout.strip() == "[]"
    assert absent.stdout.strip() == "['openvino', 'nncf', 'coremltools', 'jsonschema', 'hatchling', 'repnext_bench']"


def test_without_a_cuda_device_it_says_so_in_one_line(gpu_python, tmp_path):
    problem = cuda_problem()
    if problem is None:
        pytest.skip("a CUDA device is here: the check runs for real")
    result = check(gpu_python, tmp_path / "out")
    assert result.returncode == 2 and result.stdout == ""
    assert result.stderr.strip().splitlines() == [f"{SCRIPT}: no CUDA device here: {problem} (REHEARSE=1 runs "
                                                  "the steps anyway)"]
    assert not (tmp_path / "out").exists()


def test_a_rehearsal_runs_every_step_and_writes_its_files(rehearsal):
    result, out = rehearsal
    assert result.returncode == 0, result.stdout + result.stderr
    rows = {line.split(" | ")[0].strip("| "): line.split(" | ")[1] for line in (out / "summary.md").read_text()
            .splitlines() if line.startswith("| ") and not line.startswith("| step")}
    assert [name for name in rows if name in STEPS] == STEPS and all(rows[name] == "0" for name in STEPS), rows
    pytest_log = (out / "pytest-gpu.txt").read_text()
    assert "deselected" in pytest_log and "error" not in pytest_log.lower(), pytest_log[-2000:]
    assert "not checked against the JSON Schema: no module jsonschema" in pytest_log
    statuses = (out / "statuses.txt").read_text()
    assert "run-cuda.json: 12 unavailable" in statuses and "run-cuda-graphs.json: 12 unavailable" in statuses
    assert {"env.json", "run-cuda.json", "run-cuda-graphs.json", "verify-cuda.json", "pytest-gpu.xml"} <= {
        p.name for p in out.iterdir()}


def test_a_real_check_fails_on_a_gpu_case_that_did_not_run(gpu_python, rehearsal):
    """What the rehearsal lets through (every GPU case unavailable) fails a real check: the
    status count run over the rehearsal's reports, as a real check reads them."""
    _, out = rehearsal
    script = SCRIPT.read_text()
    counting = script[script.index("count_statuses='") + len("count_statuses='"):script.index("'\nreports=()")]
    real = subprocess.run([gpu_python, "-c", counting, "0", str(out / "run-cuda.json")], capture_output=True,
                          text=True)
    assert real.returncode == 1 and "12 unavailable" in real.stdout
