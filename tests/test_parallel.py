"""tests/parallel.py, the suite on two workers: a module's fixture built once, a timed test
alone, a worker as wide as the run that started it. Checked on a small suite of its own."""
import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

pytest.importorskip("xdist", reason="runs the suite on workers: needs pytest-xdist (the test extra)")
pytest.importorskip("fcntl", reason="the lock between workers is a POSIX file lock")
if len(os.sched_getaffinity(0)) < 2:
    pytest.skip("two workers are the default on two or more cores only", allow_module_level=True)

SUITE = '''
import json, os, time, pytest

def span(name, seconds=0.3):
    start = time.time()
    time.sleep(seconds)
    with open(os.environ["SPANS"], "a") as log:
        log.write(json.dumps([name, os.environ["PYTEST_XDIST_WORKER"], start, time.time()]) + "\\n")

@pytest.fixture(scope="module")
def built():
    span("fixture", 0.1)

@pytest.mark.parametrize("i", range(3))
def test_before(i):
    span(f"before{i}")

def test_uses_it_first(built):
    span("first")

@pytest.mark.exclusive
def test_timed():
    span("timed", 0.6)

@pytest.mark.parametrize("i", range(4))
def test_after(i):
    span(f"after{i}")

def test_uses_it_again(built):
    span("again")
    assert os.environ.get("COLUMNS") == "123"
'''


def test_two_workers_groups_and_a_test_alone(tmp_path):
    (tmp_path / "conftest.py").write_text(f"import sys\nsys.path.insert(0, {str(Path(__file__).parent)!r})\n"
                                          "pytest_plugins = ['parallel']\n")
    (tmp_path / "test_suite.py").write_text(SUITE)
    spans = tmp_path / "spans.jsonl"
    env = {**{k: v for k, v in os.environ.items() if not k.startswith("PYTEST_XDIST")},
           "SPANS": str(spans), "COLUMNS": "123"}
    result = subprocess.run([sys.executable, "-m", "pytest", "-p", "no:cacheprovider", "-q", str(tmp_path)],
                            capture_output=True, text=True, timeout=120, cwd=tmp_path, env=env)
    assert result.returncode == 0, result.stdout + result.stderr
    lines = [json.loads(line) for line in spans.read_text().splitlines()]
    assert sorted(name for name, *_ in lines).count("fixture") == 1 and len(lines) == 11  # built once
    runs = {name: (worker, start, end) for name, worker, start, end in lines}
    assert runs["first"][0] == runs["again"][0] == runs["fixture"][0]  # its users on one worker
    assert {worker for worker, *_ in runs.values()} == {"gw0", "gw1"}  # two workers by default, sharing the rest
    _, start, end = runs["timed"]
    assert not [name for name, (_, s, e) in runs.items() if name != "timed" and s < end and e > start]
