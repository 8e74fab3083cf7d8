"""Plain helpers the test modules share (fixtures and hooks stay in conftest.py): the small
real sweep's options, a relative error, the CLI in a fresh interpreter, the report schema
check, another machine's ISA, and the GPU machine's package set in a real environment."""
import os
import subprocess
import sys

import pytest
import torch

from repnext_bench.system.identity import COMPARED_FEATURES

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


def unlike(features: list[str]) -> list[str]:
    """ISA features that make another machine than one with ``features``, whatever this one is:
    AVX2 and FMA, unless those are exactly the features compared, then NEON."""
    compared = {f for f in features if f in COMPARED_FEATURES}
    return ["avx2", "fma"] if compared != {"avx2", "fma"} else ["neon", "asimd"]


# what the lent NVIDIA machine has (beside its CUDA build of torch): the GPU check must work
# from a source checkout with these alone
GPU_MACHINE_PACKAGES = ("torch", "onnxruntime", "typer", "rich", "pytest", "pytest-benchmark", "numpy", "psutil",
                        "py-cpuinfo", "matplotlib", "pillow", "onnx")


def requirement_closure(names) -> dict:
    """The installed distributions ``names`` need, theirs included, as pip would install them
    (requirements behind an extra or a marker this interpreter does not meet left out)."""
    from importlib.metadata import PackageNotFoundError, distribution

    from packaging.requirements import Requirement
    from packaging.utils import canonicalize_name

    found, waiting = {}, list(names)
    while waiting:
        name = canonicalize_name(waiting.pop())
        if name in found:
            continue
        try:
            found[name] = distribution(name)
        except PackageNotFoundError:
            raise LookupError(f"{name} is not installed here") from None
        for text in found[name].requires or []:
            requirement = Requirement(text)
            if requirement.marker is None or requirement.marker.evaluate({"extra": ""}):
                waiting.append(requirement.name)
    return found


def venv_with(folder, names) -> str:
    """A real virtual environment in ``folder`` that holds exactly ``names`` and what they need,
    linked from this environment's site-packages (nothing is downloaded or copied); returns its
    python."""
    import subprocess
    import sys
    import sysconfig
    from pathlib import Path

    folder = Path(folder)
    subprocess.run([sys.executable, "-m", "venv", "--without-pip", str(folder)], check=True, timeout=120)
    python = folder / ("Scripts" if sys.platform == "win32" else "bin") / "python"
    site = Path(subprocess.run([str(python), "-c", "import sysconfig; print(sysconfig.get_paths()['purelib'])"],
                               capture_output=True, text=True, check=True).stdout.strip())
    here = Path(sysconfig.get_paths()["purelib"])
    for dist in requirement_closure(names).values():
        tops = {Path(str(f)).parts[0] for f in dist.files or [] if not str(f).startswith("..")}
        for top in tops:
            if (here / top).exists() and not (site / top).exists():
                (site / top).symlink_to(here / top)
    return str(python)
