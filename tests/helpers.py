"""What several test modules share: the small real sweep's options, a relative error, the CLI
in a fresh interpreter, and the report schema check. (Fixtures and hooks are in conftest.py.)"""
import os
import subprocess
import sys

import pytest
import torch

# small real sweeps: M0-size models at 64x64, short blocks, three rounds (a CI target so wide that the
# minimum rounds end the sweep), one process lifetime
FAST = ["--resolution", "64", "--duration", "0", "--min-iters", "3", "--warmup", "0.02", "--block", "0.02",
        "--min-rounds", "3", "--target-ci", "1000", "--budget", "60", "--restart-every", "100"]

def rel_err(actual: torch.Tensor, expected: torch.Tensor) -> float:
    assert actual.shape == expected.shape, (actual.shape, expected.shape)
    return ((actual - expected).norm() / expected.norm()).item()


def run_cli(*args, env=None, **kwargs):
    """``repnext-bench run ...`` in a fresh interpreter, as a user starts it."""
    return subprocess.run([sys.executable, "-m", "repnext_bench", "run", *args], capture_output=True, text=True,
                          env={**os.environ, "COLUMNS": "200", **(env or {})}, timeout=600, **kwargs)


def invalid_reports(folder, skip=()) -> list[str]:
    """Every repnext-bench report (JSON with a ``schema_version``) under ``folder`` (not under
    the folders in ``skip``) checked against the published JSON Schema with a maintained
    validator: one line per violation."""
    import json
    from pathlib import Path

    jsonschema = pytest.importorskip("jsonschema", reason="the report schema check needs jsonschema (the test extra)")
    from repnext_bench.report.schema import SCHEMA_PATH

    validator = jsonschema.Draft202012Validator(json.loads(SCHEMA_PATH.read_text()))
    problems = []
    for path in sorted(Path(folder).rglob("*.json")):
        if any(path.is_relative_to(other) for other in skip):
            continue
        try:
            data = json.loads(path.read_text())
        except (OSError, UnicodeDecodeError, json.JSONDecodeError):
            continue  # not a report (a file a test broke on purpose, a trace...)
        if not isinstance(data, dict) or "schema_version" not in data:
            continue
        for error in validator.iter_errors(data):
            problems.append(f"{path.name}: {'/'.join(map(str, error.absolute_path))}: {error.message[:200]}")
    return problems
