"""Throughput with real concurrency on every backend, the --streams grid, and the server
scenario run for real through `repnext-bench run`."""
import threading
import time
from types import SimpleNamespace

import pytest
from helpers import FAST

from repnext_bench.cli import main
from repnext_bench.core.cases import Case, expand, stream_grid
from repnext_bench.core.records import read_results
from repnext_bench.measure.server import closed_loop
from repnext_bench.report.schema import read_report

TINY = [*FAST, "--variants", "m0", "--forms", "fused", "--threads", "2"]


@pytest.fixture(scope="module")
def grid(tmp_path_factory):
    """M0 fused in throughput mode on every CPU backend, --streams auto on 2 threads: 1x2 and 2x1."""
    folder = tmp_path_factory.mktemp("throughput")
    assert main(["run", *TINY, "-b", "torch,onnxruntime,openvino", "--mode", "throughput",
                 "--cache-dir", str(folder / "cache"), "-o", str(folder / "tp.json"), "-q"]) == 0
    return read_results(read_report(folder / "tp.json")["results"])


@pytest.fixture(scope="module")
def grid_path(grid, tmp_path_factory):
    return next(tmp_path_factory.getbasetemp().glob("throughput*/tp.json"))


def test_the_grid_is_one_per_core_at_most_in_powers_of_two():
    assert stream_grid(1) == [1] and stream_grid(2) == [1, 2] and stream_grid(6) == [1, 2, 6]
    assert stream_grid(16) == [1, 2, 4, 8, 16]
    cases = expand(["M0"], ["fused"], [("onnxruntime", "cpu")], ["fp32"], [1], [224], [4],
                   ["latency", "throughput", "server"])
    assert [(c.mode, c.streams) for c in cases] == [("latency", 1), ("throughput", 1), ("throughput", 2),
                                                    ("throughput", 4), ("server", 1)]
    chosen = expand(["M0"], ["fused"], [("onnxruntime", "cpu")], ["fp32"], [1], [224], [4], ["throughput"], streams=[3])
    assert [(c.streams, c.threads_per_stream) for c in chosen] == [(3, 1)]
    assert Case("M0", "fused", "onnxruntime", "cpu", "fp32", 1, 224, 4, "throughput", streams=2).label.endswith(
        "throughput 2x2")
    assert "streams" not in Case("M0", "fused", "torch", "cpu", "fp32", 1, 224, 4, "latency").to_dict()


@pytest.mark.parametrize("backend", ["torch", "onnxruntime", "openvino"])
def test_every_backend_runs_the_streams_at_once(grid, backend):
    """Each point records its streams, the requests in flight and each stream's threads; what
    ran says so too: torch and ONNX Runtime a session per stream with its share of the threads,
    OpenVINO one compiled model with that many streams."""
    points = sorted((r for r in grid if r.case.backend == backend), key=lambda r: r.case.streams)
    assert [r.case.streams for r in points] == [1, 2] and all(r.ok for r in points)
    for result in points:
        streams = result.case.streams
        assert result.concurrency.streams == streams and result.concurrency.threads_per_stream == 2 // streams
        assert result.concurrency.requests >= streams and result.throughput_ips > 0
        assert result.parity.rel_l2 < 1e-4
        if backend == "openvino":
            assert result.backend["streams"] == streams and result.backend["threads"] == 2
        else:
            assert result.backend["threads"] == 2 // streams
    assert sum(bool(r.best_streams) for r in points) == 1
    best = next(r for r in points if r.best_streams)
    assert best.throughput_ips == max(r.throughput_ips for r in points)


def test_the_table_shows_the_best_point_and_the_grid_with_its_ci(grid, capsys):
    from rich.console import Console

    from repnext_bench.report.results import grid_lines, results_table

    console = Console(width=250, record=True)
    console.print(results_table(grid))
    text = console.export_text()
    assert "streams" in text and "2x1" in text + "".join(grid_lines(grid))
    best_rows = [line for line in text.splitlines() if line.strip().startswith("M0")]
    assert len(best_rows) == 3  # one row per backend: the best point of its grid
    lines = grid_lines(grid)
    assert len(lines) == 3 and all("1x2" in line and "2x1" in line and "best" in line for line in lines)
    assert all("x (" in line or "no clear difference" in line or "too few" in line for line in lines)


@pytest.mark.exclusive  # timed: alone under pytest-xdist
def test_closed_loop_keeps_every_stream_busy():
    """Streams that wait (as a runtime does, without the GIL) overlap: two do twice the work."""
    def sleeper() -> None:
        time.sleep(0.01)

    one, wall_one = closed_loop([sleeper], 0.3)
    two, wall_two = closed_loop([sleeper, sleeper], 0.3)
    assert two / wall_two > 1.7 * one / wall_one
    with pytest.raises(RuntimeError, match="stream broke"):
        closed_loop([sleeper, lambda: (_ for _ in ()).throw(RuntimeError("stream broke"))], 0.1)


def test_gpu_streams_each_run_on_their_own_cuda_stream():
    """A GPU session run from a stream's thread makes its own CUDA stream the thread's current
    one (N sessions: N CUDA streams) and enters its thread-local settings there."""
    from repnext_bench.backends.torch_cuda import GpuSession

    current = {}
    fake_cuda = SimpleNamespace(set_stream=lambda stream: current.__setitem__(threading.get_ident(), stream))
    entered = []

    class Context:
        def __enter__(self):
            entered.append(threading.get_ident())

        def __exit__(self, *args):
            pass

    class Probe(GpuSession):  # the shared GPU session, without a GPU behind it
        def describe(self):
            raise NotImplementedError

    sessions = []
    for index in range(2):
        session = Probe.__new__(Probe)
        session._torch, session.stream = SimpleNamespace(cuda=fake_cuda), f"stream-{index}"
        session.ran_on = []
        session.run = lambda s=session: s.ran_on.append(current[threading.get_ident()])
        session.thread_contexts = lambda: [Context()]
        sessions.append(session)
    sessions[0].make_current()  # the first stream runs in the main thread too (first inference, parity)
    assert current[threading.get_ident()] == "stream-0"
    closed_loop([s.threaded_run() for s in sessions], 0.05, 4)
    assert set(sessions[0].ran_on) == {"stream-0"} and set(sessions[1].ran_on) == {"stream-1"}
    assert len(set(entered)) == 2  # each stream's thread entered the settings once
    assert len(entered) == 2


@pytest.fixture(scope="module")
def served(tmp_path_factory):
    folder = tmp_path_factory.mktemp("server")
    fixed, search = folder / "fixed.json", folder / "search.json"
    cache = ["--cache-dir", str(folder / "cache")]
    assert main(["run", *TINY, "-b", "onnxruntime", "--mode", "server", "--qps", "100", "--requests", "200",
                 *cache, "-o", str(fixed), "-q"]) == 0
    assert main(["run", *TINY, "-b", "onnxruntime", "--mode", "server", "--p99", "30ms", "--requests", "200",
                 "--streams", "2", *cache, "-o", str(search), "-q"]) == 0
    return SimpleNamespace(fixed=read_results(read_report(fixed)["results"]),
                           search=read_results(read_report(search)["results"]), paths=(fixed, search))


def test_server_mode_at_a_fixed_rate(served):
    (result,) = served.fixed
    server = result.server
    assert result.ok and result.case.mode == "server" and server.qps_offered == 100
    assert server.requests == 200 and 50 < server.qps_achieved < 150
    assert server.p50_ms <= server.p90_ms <= server.p99_ms <= server.max_ms
    assert result.latency_ms.n == 200 and result.latency_ms.p99 == pytest.approx(server.p99_ms, rel=0.05)
    assert server.bound_ms is None and server.search is None and result.rounds is None
    assert result.throughput_ips == pytest.approx(server.qps_achieved)


def test_server_mode_finds_the_highest_rate_under_the_bound(served):
    (result,) = served.search
    server, search = result.server, result.server.search
    assert result.ok and result.case.streams == 2 and result.concurrency.streams == 2
    assert search["bound_ms"] == 30 and search["stopped"] in ("converged", "trials")
    rates = [t["qps_offered"] for t in search["curve"]]
    assert rates == sorted(rates) and len(rates) >= 2
    assert search["best_qps"] == server.qps_offered and server.p99_ms <= 30
    # a miss: p99 over the bound, or served well below the rate offered (an overloaded queue)
    misses = [t["qps_offered"] for t in search["curve"]
              if t["p99_ms"] > 30 or t["qps_achieved"] < 0.85 * t["qps_offered"]]
    assert misses and server.qps_offered < min(misses)  # it found where the bound is missed, and stayed below
    if search["stopped"] == "converged":
        assert min(misses) <= server.qps_offered * 1.05 + 1e-9


@pytest.mark.parametrize("args,message", [
    (["--mode", "server", "--qps", "0"], "--qps 0 is not valid"),
    (["--mode", "server", "--p99", "-1"], "--p99 '-1' is not valid"),
    (["--mode", "throughput", "--streams", "0"], "--streams '0' is not valid"),
    (["--mode", "server"], "--mode server takes a rate (--qps 200) or a latency bound (--p99 10ms)"),
    (["--mode", "server", "--qps", "5", "--p99", "10ms"], "one of them"),
    (["--qps", "5"], "--qps applies to --mode server"),
    (["--streams", "2"], "--streams applies to --mode throughput or server"),
    (["--mode", "server", "--qps", "10", "--requests", "50"], "--requests 50 is not valid"),
    (["--mode", "throughput", "--streams", "4", "-t", "2"], "--streams 4 is more than --threads 2"),
    (["--mode", "server", "--qps", "inf"], "--qps inf is not valid"),
    (["--mode", "server", "--p99", "inf"], "--p99 'inf' is not valid"),
])
def test_bad_mode_options_are_one_line(capsys, args, message):
    assert main(["run", "-v", "m0", *args]) == 2
    err = capsys.readouterr().err.strip()
    assert message in err and len(err.splitlines()) == 1


@pytest.mark.parametrize("plan,args", [
    ({"qps": 5.0, "requests": 50}, ["--qps", "5", "--requests", "50"]),
    ({"qps": 5.0, "p99_ms": 10.0}, ["--qps", "5", "--p99", "10ms"]),
    ({"qps": float("inf")}, ["--qps", "inf"]),
])
def test_a_server_plan_refuses_from_the_api_in_the_words_of_the_command_line(capsys, plan, args):
    from repnext_bench.run.serving import ServerPlan

    with pytest.raises(ValueError) as refused:
        ServerPlan(**plan)
    assert main(["run", "-v", "m0", "--mode", "server", *args]) == 2
    assert capsys.readouterr().err.strip().endswith(str(refused.value))




def test_the_hardware_report_draws_streams_and_p99_and_answers_for_a_bound(grid_path, served, tmp_path, capsys):
    _, search = served.paths
    out = tmp_path / "serving.md"
    assert main(["report", str(grid_path), str(search), "--format", "md", "-o", str(out)]) == 0
    text = out.read_text()
    assert "Throughput against streams" in text and "1x2: " in text and "2x1: " in text
    assert "What should I ship for a latency bound" in text
    (answer,) = [line for line in text.splitlines() if line.startswith("| M0 |") and "| 30 |" in line]
    best_qps = read_results(read_report(search)["results"])[0].server.search["best_qps"]
    assert f"| {best_qps:.0f} |" in answer
    assert (tmp_path / "serving-throughput-streams.png").stat().st_size > 1000
    assert (tmp_path / "serving-server-p99.png").stat().st_size > 1000


def test_ctrl_c_during_a_search_keeps_its_finished_trials(tmp_path, monkeypatch):
    """Ctrl-C while a server case searches: the case is in the report, failed and saying so,
    with the trials it finished as its curve; the sweep is marked interrupted."""
    from repnext_bench.measure.server import ServerStats
    from repnext_bench.measure.timing import TimingPlan
    from repnext_bench.report.schema import new_report
    from repnext_bench.run import serving
    from repnext_bench.run.lifecycle import Settings
    from repnext_bench.run.sweep import RoundsPlan, run_sweep

    def searching(case, settings, plan, time_limit_s, on_trial):
        on_trial(ServerStats(50.0, 49.0, 200, 3.0, 5.0, 8.0, 9.0, 0.4, bound_ms=10.0, missed=1,
                             p99_ci_ms=(7.0, 9.0), service_p99_ms=4.0))
        raise KeyboardInterrupt

    monkeypatch.setattr(serving, "run_server_case", searching)
    case = Case("M0", "fused", "onnxruntime", "cpu", "fp32", 1, 64, 2, "server")
    environment = {"cpu": {"model": "test"}, "os": "test", "python": "3", "libraries": {}}
    report, path = new_report(environment, {}), tmp_path / "r.json"
    with pytest.raises(KeyboardInterrupt):
        run_sweep([case], Settings(TimingPlan()), RoundsPlan(), 60, report, path,
                  server=serving.ServerPlan(p99_ms=10.0, requests=200))
    (result,) = read_results(read_report(path)["results"])
    assert result.status == "failed" and result.error == "interrupted after 1 trial"
    assert result.server.search["stopped"] == "interrupted" and len(result.server.search["curve"]) == 1
    assert read_report(path)["sweep"]["interrupted"] is True
