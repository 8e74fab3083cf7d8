"""`repnext-bench profile` with each CPU runtime's real profiler: M0 at 64x64, train and fused."""
import json

import pytest
from parallel import alone

from repnext_bench.cli import main
from repnext_bench.profiling.attribution import COMPONENTS
from repnext_bench.report.schema import read_report

FAST = ["--variants", "m0", "--forms", "train,fused", "--resolution", "64", "--iterations", "3", "--duration", "0.05"]
STAGES = ["stem", "stage 1", "stage 2", "stage 3", "stage 4", "head"]


@pytest.fixture(scope="module", params=["torch", "onnxruntime", "openvino"])
def profiled(request, tmp_path_factory):
    folder = tmp_path_factory.mktemp(f"profile-{request.param}")
    path, trace = folder / "profile.json", folder / "trace.json"
    with alone():  # the tests hold the profiler's node times against the wall time
        code = main(["profile", "--backend", request.param, *FAST, "--output", str(path), "--trace", str(trace),
                     "--cache-dir", str(folder / "cache")])
    assert code == 0
    return request.param, read_report(path), json.loads(trace.read_text())


def test_every_stage_and_component_is_covered(profiled):
    _, report, _ = profiled
    assert report["kind"] == "profile" and [r["case"]["form"] for r in report["results"]] == ["train", "fused"]
    for result in report["results"]:
        assert result["status"] == "ok", result["error"]
        summary = result["summary"]
        assert [row["name"] for row in summary["by_stage"] if row["name"] != "unattributed"] == STAGES
        assert [row["name"] for row in summary["by_component"] if row["name"] != "unattributed"] == list(COMPONENTS)
        for row in summary["by_component"]:
            assert row["time_ms"] > 0 and (row["name"] == "unattributed" or row["macs"] > 0)


def test_time_adds_up(profiled):
    _, report, _ = profiled
    for result in report["results"]:
        account = result["summary"]["accounting"]
        nodes = result["nodes"]
        assert account["nodes"] == len(nodes) > 20
        assert account["node_sum_ms"] == pytest.approx(sum(n["time_ms"] for n in nodes))
        assert account["attributed_by_name_ms"] + account["attributed_by_graph_ms"] + account["unattributed_ms"] \
            == pytest.approx(account["node_sum_ms"])
        assert account["unattributed_ms"] == pytest.approx(sum(n["time_ms"] for n in account["unattributed_nodes"]))
        assert account["outside_nodes_ms"] == pytest.approx(account["total_ms"] - account["node_sum_ms"])
        # the profiler's nodes hold most of the measured time (the margin is the rest); OpenVINO
        # counts each layer in whole microseconds, which at 64x64 can sum above the wall time,
        # but a node counted twice per inference would be far above it
        assert 0.3 < account["node_sum_ms"] / account["total_ms"] < 1.6
        assert sum(r["time_ms"] for r in result["summary"]["by_stage"]) == pytest.approx(account["node_sum_ms"])


def test_json_holds_the_per_node_list(profiled):
    backend, report, _ = profiled
    for result in report["results"]:
        assert result["precision_effective"] == "fp32" and result["parity"]["rel_l2"] < 1e-4
        for node in result["nodes"]:
            assert {"name", "op_type", "kernel", "precision", "time_ms", "calls", "place", "attributed_by"} <= set(node)
            assert node["time_ms"] >= 0 and node["calls"] > 0
        convs = [n for n in result["nodes"] if "conv" in n["op_type"].lower()]
        assert convs and all(n["precision"] == "fp32" for n in convs)  # fp32 asked and enforced, per kernel


def test_fused_token_mixers_have_fewer_nodes(profiled):
    _, report, _ = profiled
    train, fused = (result["summary"]["by_component"] for result in report["results"])
    mixer = {form: next(r for r in rows if r["name"] == "token mixer")
             for form, rows in (("train", train), ("fused", fused))}
    assert mixer["fused"]["nodes"] < mixer["train"]["nodes"]
    assert mixer["fused"]["macs"] < mixer["train"]["macs"]


def test_trace_opens_as_a_chrome_trace(profiled):
    _, report, trace = profiled
    spans = [e for e in trace["traceEvents"] if e["ph"] == "X"]
    assert {e["pid"] for e in spans} == {1, 2}
    assert len([e for e in spans if e["name"] != "outside any node"]) == sum(len(r["nodes"]) for r in report["results"])


def test_openvino_reports_bf16_kernels_when_it_chooses(tmp_path, capsys, exercised):
    """With --precision auto OpenVINO picks bf16 on a CPU that has it (f16 on Arm with fp16, else
    f32); the per-layer view shows what it picked, read from the runtime model on every CPU."""
    code = main(["profile", "--backend", "openvino", "--variants", "m0", "--resolution", "64", "--iterations", "2",
                 "--duration", "0", "--precision", "auto", "--json", "--output", str(tmp_path / "p.json"),
                 "--cache-dir", str(tmp_path / "cache")])
    assert code == 0
    result = json.loads(capsys.readouterr().out)["results"][0]
    kernels = {n["precision"] for n in result["nodes"] if n["op_type"] == "Convolution"}
    assert kernels == {result["precision_effective"]}  # what the compiled model says is what its kernels ran
    exercised("openvino profile --precision auto", f"convolutions ran {result['precision_effective']}")


@pytest.mark.parametrize("args,message", [
    (["--variant", "m0-m2"], "--variant takes one variant"),
    (["--variant", "m9"], "unknown variant"),
    (["--backend", "tensorrt"], "--backend"),
    (["--form", "train,half"], "--form"),
    (["--batch", "0"], "--batch"),
    (["--resolution", "100"], "--resolution"),
])
def test_bad_options_are_one_line(capsys, args, message):
    assert main(["profile", *args]) == 2
    err = capsys.readouterr().err.strip()
    assert len(err.splitlines()) == 1 and message in err and "Traceback" not in err


def test_a_skipped_or_failed_form_is_recorded_and_the_rest_profiled(tmp_path, capsys, monkeypatch):
    """A form the backend does not run is skipped, a form whose process fails is failed: each
    is one line and a record in the report (exit 1), never a traceback."""
    path = tmp_path / "skipped.json"
    assert main(["profile", "-b", "torch", "-p", "fp16", "-r", "64", "-o", str(path)]) == 1
    (skipped,) = read_report(path)["results"]
    assert skipped["status"] == "skipped" and "does not run fp16" in skipped["error"]
    assert "skipped fused: torch on cpu does not run fp16" in capsys.readouterr().out
    from repnext_bench.run.lifecycle import FAULT_ENV

    monkeypatch.setenv(FAULT_ENV, "error")
    path = tmp_path / "failed.json"
    assert main(["profile", "-b", "torch", "-r", "64", "--iterations", "2", "--duration", "0",
                 "--cache-dir", str(tmp_path / "cache"), "-o", str(path)]) == 1
    (failed,) = read_report(path)["results"]
    assert failed["status"] == "failed" and "injected failure" in failed["error"]
