"""The package's shape: its layers (import-linter's contract in pyproject.toml, function-level
imports included), docs/layout.md naming every package and module, and the old paths users call
(python -m repnext_bench.repeat, crosscheck, gate.proof; repnext_bench.records) still working."""
import importlib.util
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]  # the source tree (the package may be installed elsewhere)
PACKAGE = ROOT / "repnext_bench"
LAYOUT = (ROOT / "docs" / "layout.md").read_text()
ENTRY_POINTS_AND_ALIASES = {"__init__", "__main__", "pytest_plugin", "records", "repeat", "crosscheck"}


def test_the_layers_point_one_way():
    if importlib.util.find_spec("importlinter") is None:
        pytest.skip("needs import-linter (the test extra)")
    lint = Path(sys.executable).parent / "lint-imports"
    result = subprocess.run([str(lint) if lint.exists() else "lint-imports"], capture_output=True, text=True,
                            cwd=ROOT, timeout=300)
    assert result.returncode == 0 and "1 kept, 0 broken" in result.stdout, result.stdout[-3000:]


def test_the_top_level_holds_entry_points_aliases_and_packages_only():
    assert {p.stem for p in PACKAGE.glob("*.py")} == ENTRY_POINTS_AND_ALIASES
    packages = {p.name for p in PACKAGE.iterdir() if (p / "__init__.py").exists()}
    assert packages == {"backends", "cli", "core", "devtools", "export", "gate", "hardware", "measure", "models",
                        "profiling", "quant", "report", "run", "system"}


def test_docs_layout_names_every_package_and_module():
    for folder in sorted(p for p in PACKAGE.iterdir() if (p / "__init__.py").exists()):
        assert f"  {folder.name}/" in LAYOUT, folder.name
    for name in ("core", "run", "system", "devtools"):  # the engine's and the machine's modules one by one
        for module in sorted((PACKAGE / name).glob("*.py")):
            if module.stem != "__init__":
                assert module.name in LAYOUT, f"{name}/{module.name}"
    for stem in ENTRY_POINTS_AND_ALIASES:
        assert f"{stem}.py" in LAYOUT, stem


@pytest.mark.parametrize("module,prog", [("repnext_bench.repeat", "python -m repnext_bench.repeat"),
                                         ("repnext_bench.crosscheck", "python -m repnext_bench.crosscheck"),
                                         ("repnext_bench.gate.proof", "--counts")])
def test_the_paths_users_call_still_run(module, prog):
    result = subprocess.run([sys.executable, "-m", module, "--help"], capture_output=True, text=True, timeout=120)
    assert result.returncode == 0 and prog in result.stdout, result.stderr[-2000:]


def test_the_records_module_users_import_is_the_core_one():
    import repnext_bench.core.records as core
    from repnext_bench import records
    from repnext_bench.records import Result, read_results

    assert records is core and read_results is core.read_results and Result is core.Result
