"""Placing runtime nodes in RepNeXt's structure, and the sums built on it (no runtime needed)."""
import pytest

from repnext_bench.profiling.attribution import attribute, macs_by_place, place_of
from repnext_bench.profiling.ov_layers import kernel_precision
from repnext_bench.profiling.rollup import accounting, rollup, side_by_side
from repnext_bench.profiling.trace import chrome_trace


@pytest.mark.parametrize("name,op_type,expected", [
    # ONNX (and ONNX Runtime) node names from the TorchScript exporter
    ("/stem/stem/stem.0/conv/Conv", "Conv", ("stem", None, "stem", "")),
    ("/stages/stages.0/blocks/blocks.1/token_mixer/conv_s/conv_3_3/Conv", "Conv",
     ("stage 1", "block 2", "token mixer", "small")),
    ("/stages/stages.2/blocks/blocks.0/token_mixer/conv_l/conv_l.0/Conv", "Conv",
     ("stage 3", "block 1", "token mixer", "large")),
    ("/stages/stages.2/blocks/blocks.0/token_mixer/Concat", "Concat",
     ("stage 3", "block 1", "token mixer", "split/concat")),
    ("/stages/stages.1/blocks/blocks.3/channel_mixer/channel_mixer.0/conv/Conv_output_0_nchwc", "Conv",
     ("stage 2", "block 4", "channel mixer", "")),
    ("/stages/stages.1/blocks/blocks.0/norm/BatchNormalization", "BatchNormalization",
     ("stage 2", "block 1", "channel mixer", "norm")),
    ("/stages/stages.1/blocks/blocks.0/Add", "Add", ("stage 2", "block 1", "channel mixer", "residual add")),
    ("/stages/stages.3/downsample/token_mixer/conv_m/conv_7_7/Conv", "Conv",
     ("stage 4", "downsample", "downsample", "token mixer (medium)")),
    ("/stages/stages.3/downsample/Add", "Add", ("stage 4", "downsample", "downsample", "residual add")),
    ("/head/head_dist/linear/Gemm", "Gemm", ("head", None, "head", "classifier")),
    ("/ReduceMean", "ReduceMean", ("head", None, "head", "global pool")),
    # OpenVINO layer names (a reorder carries its consumer's path)
    ("images_abcd_acdb_/stem/stem/stem.0/conv/Conv/WithoutBiases", "Reorder", ("stem", None, "stem", "")),
    # torch module paths; the fused E mixer is one conv
    ("stages.0.blocks.0.token_mixer", "aten::conv2d", ("stage 1", "block 1", "token mixer", "merged")),
    ("stages.0.blocks.0.token_mixer.conv_m.conv_5_3", "aten::conv2d", ("stage 1", "block 1", "token mixer", "medium")),
    ("", "aten::mean", ("head", None, "head", "global pool")),
])
def test_place_of_names_from_every_runtime(name, op_type, expected):
    place = place_of(name, op_type)
    assert (place.stage, place.block, place.component, place.part) == expected


@pytest.mark.parametrize("name", ["ReorderInput_token_12", "Reshape_token_3", "Gelu_token_0", "logits",
                                  "Multiply_79959"])
def test_names_without_a_path_are_not_guessed(name):
    assert place_of(name) is None


def test_attribute_through_the_graph_and_leaves_islands_unattributed():
    nodes = [
        {"name": "ReorderInput_token_1", "op_type": "ReorderInput", "time_ms": 0.1},
        {"name": "/stages/stages.0/blocks/blocks.0/token_mixer/conv_m/Conv", "op_type": "Conv", "time_ms": 1.0},
        {"name": "Reshape_token_2", "op_type": "Reshape", "time_ms": 0.2},
        {"name": "Lonely_token_9", "op_type": "Reshape", "time_ms": 0.3},
        {"name": "Gemm_token_4", "op_type": "Gemm", "time_ms": 0.05},
    ]
    graph = {
        "ReorderInput_token_1": (["input"], ["Reshape_token_2"]),
        "Reshape_token_2": (["ReorderInput_token_1"], ["/stages/stages.0/blocks/blocks.0/token_mixer/conv_m/Conv"]),
        "Gemm_token_4": (["/ReduceMean"], ["output"]),
        "Lonely_token_9": ([], []),
    }
    attribute(nodes, graph)
    by = {n["name"]: n for n in nodes}
    assert by["ReorderInput_token_1"]["attributed_by"] == "graph"  # two hops away
    assert by["ReorderInput_token_1"]["place"]["part"] == "medium"
    assert by["Reshape_token_2"]["place"]["component"] == "token mixer"
    assert by["Gemm_token_4"]["place"]["part"] == "classifier"  # its type, not its neighbour's
    assert by["Lonely_token_9"]["place"] is None and by["Lonely_token_9"]["attributed_by"] is None
    assert by["/stages/stages.0/blocks/blocks.0/token_mixer/conv_m/Conv"]["attributed_by"] == "name"


def _profile(form, nodes, wall_ms, macs):
    for node in nodes:
        node.setdefault("op_type", "Conv")
        node.setdefault("kernel", "k")
        node.setdefault("precision", "fp32")
    attribute(nodes)
    return {"case": {"variant": "M0", "form": form, "backend": "onnxruntime", "device": "cpu", "precision": "fp32",
                     "batch": 2, "resolution": 64, "threads": 1, "mode": "latency"},
            "nodes": nodes, "profiled": {"wall_ms": wall_ms, "iterations": 1},
            "macs_by_place": [{"place": p, "macs": m} for p, m in macs_by_place(macs)]}


TRAIN = dict(form="train", wall_ms=10.0, nodes=[
    {"name": "/stem/stem/stem.0/conv/Conv", "time_ms": 1.0},
    {"name": "/stages/stages.0/blocks/blocks.0/token_mixer/conv_s/conv_3_3/Conv", "time_ms": 2.0},
    {"name": "/stages/stages.0/blocks/blocks.0/token_mixer/conv_s/conv_3_w/Conv", "time_ms": 1.0},
    {"name": "/stages/stages.0/blocks/blocks.0/channel_mixer/channel_mixer.0/conv/Conv", "time_ms": 3.0},
    {"name": "Mystery_token_1", "time_ms": 0.5},
], macs={"stem.stem.0.conv": 1_000_000, "stages.0.blocks.0.channel_mixer.0.conv": 6_000_000})
FUSED = dict(form="fused", wall_ms=6.0, nodes=[
    {"name": "/stem/stem/stem.0/Conv", "time_ms": 1.0},
    {"name": "/stages/stages.0/blocks/blocks.0/token_mixer/conv_s/Conv", "time_ms": 1.5},
    {"name": "/stages/stages.0/blocks/blocks.0/channel_mixer/channel_mixer.0/Conv", "time_ms": 3.0},
], macs={"stem.stem.0": 1_000_000, "stages.0.blocks.0.channel_mixer.0": 6_000_000})


def test_accounting_adds_up():
    profile = _profile(**TRAIN)
    account = accounting(profile)
    assert account["node_sum_ms"] == pytest.approx(7.5)
    assert account["attributed_by_name_ms"] + account["attributed_by_graph_ms"] + account["unattributed_ms"] \
        == pytest.approx(account["node_sum_ms"])
    assert account["unattributed_ms"] == pytest.approx(0.5)
    assert [n["name"] for n in account["unattributed_nodes"]] == ["Mystery_token_1"]
    assert account["outside_nodes_ms"] == pytest.approx(2.5) and account["margin"] == pytest.approx(0.25)


def test_rollup_by_component_with_macs_and_gmacs():
    rows = {r["name"]: r for r in rollup(_profile(**TRAIN), "component")}
    assert list(rows) == ["stem", "token mixer", "channel mixer", "unattributed"]
    assert rows["token mixer"]["time_ms"] == pytest.approx(3.0) and rows["token mixer"]["nodes"] == 2
    assert rows["channel mixer"]["macs"] == 6_000_000
    # 6 MMACs per image x batch 2 in 3 ms = 4 GMAC/s
    assert rows["channel mixer"]["gmacs_per_s"] == pytest.approx(4.0)
    assert sum(r["share"] for r in rows.values()) == pytest.approx(1.0)
    stages = [r["name"] for r in rollup(_profile(**TRAIN), "stage")]
    assert stages == ["stem", "stage 1", "unattributed"]


def test_side_by_side_shows_the_fusion_per_component():
    rows = {r["name"]: r for r in side_by_side([_profile(**TRAIN), _profile(**FUSED)], "component")}
    mixer = rows["token mixer"]
    assert mixer["forms"]["train"]["nodes"] == 2 and mixer["forms"]["fused"]["nodes"] == 1
    assert mixer["speedup"] == pytest.approx(3.0 / 1.5)
    assert rows["unattributed"]["speedup"] is None  # only in one form


def test_chrome_trace_lays_out_every_node():
    profiles = [_profile(**TRAIN), _profile(**FUSED)]
    events = chrome_trace(profiles)["traceEvents"]
    spans = [e for e in events if e["ph"] == "X"]
    assert len([e for e in spans if e["pid"] == 1]) == 5 + 1  # nodes, then the time outside them
    assert sum(e["dur"] for e in spans if e["pid"] == 1) == pytest.approx(10_000)  # the wall time, in us
    assert {e["args"]["name"] for e in events if e["ph"] == "M"} >= {"M0 train onnxruntime/cpu fp32 b2 64px t1 latency"}


@pytest.mark.parametrize("kernel,precision", [("brgconv_avx512_bf16", "bf16"), ("jit_avx512_f32", "fp32"),
                                              ("brgconv_avx512_1x1_bf16", "bf16"), ("gemm_mlas_f32", "fp32"),
                                              ("ref_any_f16", "fp16"), ("undef", None)])
def test_openvino_kernel_precision(kernel, precision):
    assert kernel_precision(kernel) == precision


def test_short_names_drop_the_exporters_repeats():
    from repnext_bench.report.profile_view import short_name

    assert short_name("/stages/stages.3/blocks/blocks.2/channel_mixer/channel_mixer.0/conv/Conv") == \
        "stages.3/blocks.2/channel_mixer.0/conv/Conv"
    assert short_name("stages.0.blocks.0.token_mixer/aten::cat") == "stages.0.blocks.0.token_mixer/aten::cat"
    assert short_name("/ReduceMean") == "ReduceMean"
