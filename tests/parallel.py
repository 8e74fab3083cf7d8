"""The suite on two workers (pytest-xdist), with the timing tests alone.

With pytest-xdist installed (the ``test`` extra) and two or more usable cores, ``pytest`` runs
on two workers unless told otherwise (``-n N``; ``-n 0`` or ``-p no:xdist`` for one process).
Much of a test's time is a case process starting, a budget running out or a quantizer walking a
graph on one core, so two workers share two cores well.

- Tests go to the workers in groups: the tests of a module that use one of its module-scoped
  fixtures are one group, so the fixture is built once; the tests that read the shared sweeps
  (``real_runs``, a session fixture) are one group too; every other test goes on its own. The
  biggest groups start first, so both workers end together. (A worker writes the groups to a
  file that the scheduler reads: xdist's own ``xdist_group`` does not group under pytest 9.)
- A test whose assertion rests on timing runs alone: it is marked ``exclusive`` (or ``gpu``),
  or a fixture takes ``alone()``; meanwhile the other worker waits between its tests. The lock
  is a file that every test holds shared and an exclusive test holds alone, with a turnstile
  in front of it that lets an exclusive test in as soon as the running test ends.
"""
import json
import os
import tempfile
import uuid
from contextlib import contextmanager
from pathlib import Path

import pytest

try:
    import fcntl
except ImportError:  # Windows: one process
    fcntl = None

WORKERS = 2
# the groups that take longest, sent first (the rest follow in the order they were collected)
FIRST = ("test_int8", "test_int8_coreml_trt", "real_runs", "test_ci_recipes", "test_gpu_check", "test_throughput")
_LOCK: dict = {}  # this worker's open lock files ("main", "gate") and the mode it holds ("mode")


@pytest.hookimpl(tryfirst=True)
def pytest_cmdline_main(config):
    """Two workers by default, unless the command line chose (``-n``, ``--pdb``, ``--collect-only``),
    xdist is off, the machine has one core or no ``fcntl`` (Windows); workers without a ``--dist`` of the user's take
    this module's groups."""
    option = config.option
    if not config.pluginmanager.hasplugin("xdist") or hasattr(config, "workerinput") or fcntl is None:
        return
    if option.numprocesses is None and not (option.usepdb or option.collectonly or option.tx) \
            and len(os.sched_getaffinity(0)) >= WORKERS:
        option.numprocesses = WORKERS
    if option.numprocesses and option.dist == "no":
        option.dist, config.repnext_run = "loadscope", uuid.uuid4().hex  # loadscope, with the groups below


def _files(run: str) -> dict:
    folder = Path(tempfile.gettempdir())
    return {name: folder / f"repnext-bench-tests-{run}.{name}" for name in ("lock", "gate", "groups")}


@pytest.hookimpl(optionalhook=True)
def pytest_configure_node(node):
    """A worker learns the run (for its lock and groups files) and the terminal width of the run
    that started it, not execnet's 80 columns."""
    node.workerinput["columns"] = os.environ.get("COLUMNS")
    node.workerinput["repnext_run"] = getattr(node.config, "repnext_run", None)


@pytest.hookimpl(optionalhook=True)
def pytest_xdist_make_scheduler(config, log):
    """Whole groups to a worker: xdist's scheduling by scope, with the scopes the workers wrote."""
    run = getattr(config, "repnext_run", None)
    if run is None:
        return None
    from xdist.scheduler import LoadScopeScheduling

    path, groups = _files(run)["groups"], {}

    class GroupScheduling(LoadScopeScheduling):
        def _split_scope(self, nodeid: str) -> str:
            if not groups and path.exists():  # written before the workers reported their collection
                groups.update(json.loads(path.read_text()))
            return groups.get(nodeid, nodeid)

    return GroupScheduling(config, log)


def pytest_configure(config):
    config.addinivalue_line("markers", "exclusive: its assertions rest on timing; under pytest-xdist it runs "
                                       "while no other test does")
    workerinput = getattr(config, "workerinput", None)
    if workerinput is None:
        return
    if workerinput.get("columns") is None:
        os.environ.pop("COLUMNS", None)
    else:
        os.environ["COLUMNS"] = workerinput["columns"]
    run = workerinput.get("repnext_run") or workerinput["testrunuid"]
    files = _files(run)
    _LOCK.update(main=files["lock"].open("a"), gate=files["gate"].open("a"), mode=None)  # noqa: SIM115 (held)


def pytest_unconfigure(config):
    for name in ("main", "gate"):
        if name in _LOCK:
            _LOCK.pop(name).close()
    run = getattr(config, "repnext_run", None)
    if run is not None and not hasattr(config, "workerinput"):
        for path in _files(run).values():
            path.unlink(missing_ok=True)


def pytest_collection_modifyitems(config, items):
    """On a worker of a grouped run: each test's group written for the scheduler, the biggest first."""
    run = getattr(config, "workerinput", {}).get("repnext_run")
    if not run:
        return
    groups = {item.nodeid: group for item in items if (group := _group(item))}
    rank = {name: index for index, name in enumerate(FIRST)}
    items.sort(key=lambda item: rank.get(groups.get(item.nodeid), len(FIRST)))  # stable: the rest keep their order
    path = _files(run)["groups"]
    partial = path.with_suffix(f".{os.getpid()}")
    partial.write_text(json.dumps(groups))
    partial.replace(path)


def _group(item) -> str | None:
    """``real_runs`` for a reader of the shared sweeps, the module's name for a test that uses
    one of the module's own module-scoped fixtures, else None (the test goes on its own)."""
    if "real_runs" in item.fixturenames:
        return "real_runs"
    fixtures = getattr(item, "_fixtureinfo", None)
    defs = [d for found in (fixtures.name2fixturedefs.values() if fixtures else ()) for d in found]
    if any(d.scope == "module" and d.baseid and not d.func.__module__.endswith("conftest") for d in defs):
        return item.module.__name__.rsplit(".", 1)[-1]
    return None


def _take(mode: str) -> None:
    """Hold the lock in ``mode`` ("shared" or "alone"), passing the turnstile first: a test waiting
    to run alone holds the turnstile, so no new test starts until it has run."""
    if _LOCK.get("mode") == mode or "main" not in _LOCK:
        return
    _give()
    fcntl.flock(_LOCK["gate"], fcntl.LOCK_EX)
    try:
        fcntl.flock(_LOCK["main"], fcntl.LOCK_SH if mode == "shared" else fcntl.LOCK_EX)
    finally:
        fcntl.flock(_LOCK["gate"], fcntl.LOCK_UN)
    _LOCK["mode"] = mode


def _give() -> None:
    if _LOCK.get("mode"):
        fcntl.flock(_LOCK["main"], fcntl.LOCK_UN)
        _LOCK["mode"] = None


@contextmanager
def alone():
    """Run the body while no other worker runs a test (a no-op in one process): for a fixture
    whose timings other tests assert on."""
    before = _LOCK.get("mode")
    _take("alone")
    try:
        yield
    finally:
        if before:
            _take(before)


@pytest.hookimpl(hookwrapper=True)
def pytest_runtest_protocol(item, nextitem):
    _take("alone" if item.get_closest_marker("exclusive") or item.get_closest_marker("gpu") else "shared")
    try:
        yield
    finally:
        _give()
