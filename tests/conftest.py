import importlib.util

import pytest
import torch
from helpers import FAST, invalid_reports, run_cli

pytest_plugins = ["parallel"]  # two workers under pytest-xdist, the timing tests alone (tests/parallel.py)

# capability-dependent path -> what this machine did there (printed at the end of the run)
EXERCISED: dict[str, str] = {}


@pytest.fixture
def exercised(request):
    """``exercised(path, outcome)`` records which branch of a capability-dependent check this
    machine took. It travels in the test's report, so that it reaches the summary from
    pytest-xdist's workers too."""
    def record(path: str, outcome: str) -> None:
        request.node.user_properties.append(("capability", (path, outcome)))

    return record


def pytest_runtest_logreport(report):
    for key, value in report.user_properties:
        if key == "capability":
            path, outcome = value
            EXERCISED[path] = outcome


def pytest_collection_modifyitems(config, items):
    """Tests marked ``gpu`` need a CUDA device: without one they are skipped, saying why."""
    from repnext_bench.backends.torch_cuda import cuda_problem

    problem = cuda_problem()
    if problem:
        skip = pytest.mark.skip(reason=f"needs a CUDA GPU: {problem}")
        for item in items:
            if "gpu" in item.keywords:
                item.add_marker(skip)


def pytest_terminal_summary(terminalreporter):
    if not SCHEMA_CHECK:
        terminalreporter.write_line("the reports the tests wrote were not checked against the JSON Schema: "
                                    "no module jsonschema (pip install \".[test]\")")
    if EXERCISED:
        terminalreporter.section("capability-dependent paths on this machine")
        for path, outcome in sorted(EXERCISED.items()):
            terminalreporter.write_line(f"{path}: {outcome}")


@pytest.fixture
def images() -> torch.Tensor:
    return torch.randn(2, 3, 64, 64, generator=torch.Generator().manual_seed(1))


@pytest.fixture(scope="session")
def real_runs(tmp_path_factory):
    """Two small real sweeps that several test modules read (run, report, compare, pytest-benchmark):
    ``a.json``, M0 and M1 x train/fused x torch/onnxruntime, started as a user would (its stdout
    and stderr are kept); ``b.json``, M0 x train/fused x torch/openvino on one thread; ``c.json``,
    M0 x train/fused on onnxruntime at batch 1 and 2 (a second run of two of a's cases).
    Returns (folder, the finished process of a, that of b)."""
    from parallel import alone

    with alone():  # other tests read these timings
        return _real_runs(tmp_path_factory.mktemp("runs"))


def _real_runs(folder):
    from repnext_bench.cli import main

    cache = ["--cache-dir", str(folder / "cache")]
    first = run_cli("--variants", "m0,m1", "--backend", "torch,onnxruntime", *FAST,
                    "--output", str(folder / "a.json"), *cache)
    assert first.returncode == 0, first.stderr
    second = run_cli("-v", "m0", "-b", "torch,openvino", "--threads", "1", *FAST, "--quiet",
                     "-o", str(folder / "b.json"), *cache)
    assert second.returncode == 0, second.stderr
    assert main(["run", "-v", "m0", "-b", "onnxruntime", "--batch", "1,2", *FAST, "--quiet",
                 "--output", str(folder / "c.json"), *cache]) == 0
    assert not SCHEMA_CHECK or invalid_reports(folder) == []
    return folder, first, second


# without jsonschema (the GPU machine has none) the reports a test writes go unchecked, and
# the run's summary says so; the tests that check a report themselves are skipped
SCHEMA_CHECK = importlib.util.find_spec("jsonschema") is not None
MALFORMED_ON_PURPOSE: set = set()  # the temporary folders of tests marked malformed_reports


@pytest.fixture(autouse=True)
def reports_follow_the_schema(request):
    """After each test that has a temporary folder: every report it wrote there follows the
    report contract's JSON Schema (repnext_bench/report/report.schema.json)."""
    uses_folder = "tmp_path" in request.fixturenames
    folder = request.getfixturevalue("tmp_path") if uses_folder else None
    if uses_folder and request.node.get_closest_marker("malformed_reports"):
        MALFORMED_ON_PURPOSE.add(folder)
        folder = None
    yield
    if folder is not None and SCHEMA_CHECK:
        problems = invalid_reports(folder)
        if problems:
            pytest.fail("reports that break the JSON Schema:\n" + "\n".join(problems[:20]), pytrace=False)


@pytest.fixture(scope="session", autouse=True)
def every_report_follows_the_schema(tmp_path_factory):
    """At the end of the session, the same check over every folder the tests made, those of the
    shared fixtures (tmp_path_factory) included."""
    yield
    if not SCHEMA_CHECK:
        return
    problems = invalid_reports(tmp_path_factory.getbasetemp(), MALFORMED_ON_PURPOSE)
    if problems:
        pytest.fail("reports that break the JSON Schema:\n" + "\n".join(problems[:20]), pytrace=False)
