"""Sweeps in interleaved rounds: the order of each round, process lifetimes, the rounds CI,
adaptive stopping, paired speedups with their CI, and case processes forked with torch
already imported."""
import math

import numpy as np
import pytest

from repnext_bench.core.cases import Case, expand
from repnext_bench.measure.ratios import paired_ratio
from repnext_bench.measure.rounds import summarize_rounds
from repnext_bench.measure.timing import TimingPlan
from repnext_bench.report.results import NO_CLEAR_DIFFERENCE, ratio_text
from repnext_bench.run.case_process import CaseProcess
from repnext_bench.run.case_run import CaseRun, fused_speedups
from repnext_bench.run.lifecycle import Settings
from repnext_bench.run.sweep import RoundsPlan, Sweep, run_sweep

SETTINGS = TimingPlan(warmup_s=0, warmup_iters=1)


def torch_cases(variants, forms=("train", "fused")):
    return expand(list(variants), list(forms), [("torch", "cpu")], ["fp32"], [1], [64], [1], ["latency"])


@pytest.fixture(scope="module")
def swept(tmp_path_factory):
    """M0 and M1, train and fused, 4 rounds in 2 process lifetimes (the CI target set so wide
    that the sweep stops at the minimum rounds)."""
    plan = RoundsPlan(block_s=0.01, min_rounds=4, restart_every=2, target_ci=10.0, budget_s=60, min_duration_s=0,
                      min_iters=1, seed=7)
    report = {"results": []}
    settings = Settings(SETTINGS, cache_dir=str(tmp_path_factory.mktemp("cache")))
    run_sweep(torch_cases(["M0", "M1"]), settings, plan, 120, report)
    return report


def test_every_round_runs_every_case_in_a_recorded_shuffled_order(swept):
    orders = swept["sweep"]["orders"]
    labels = {r["case"]["variant"] + " " + r["case"]["form"] for r in swept["results"]}
    assert len(orders) == 4 and swept["sweep"]["rounds"] == 4 and swept["sweep"]["stopped"] == "converged"
    for order in orders:
        assert sorted(" ".join(label.split()[:2]) for label in order) == sorted(labels)
        variants = [label.split()[0] for label in order]
        assert variants[0] == variants[1] and variants[2] == variants[3]  # the forms of a variant side by side
    assert len({tuple(order) for order in orders}) > 1  # shuffled, not one fixed order


def test_samples_keep_their_round_and_come_from_two_lifetimes(swept):
    for result in swept["results"]:
        assert result["status"] == "ok"
        assert sorted(set(result["samples_round"])) == [0, 1, 2, 3]
        assert len(result["samples_round"]) == len(result["samples_ms"]) == result["latency_ms"]["n"]
        rounds = result["rounds"]
        assert rounds["blocks"] == 4 and rounds["lifetimes"] == 2 and rounds["block_lifetimes"] == [0, 0, 1, 1]
        latency = result["latency_ms"]
        assert latency["rounds"] == 4 and len(latency["round_medians"]) == 4
        assert latency["ci95_median"][0] <= latency["p50"] <= latency["ci95_median"][1]
        assert latency["ci95_method"].startswith("bootstrap: rounds, then samples")
        assert result["parity"]["rel_l2"] < 1e-5 and result["cold_start"]["first_inference_ms"] > 0


def test_fused_results_carry_a_paired_speedup(swept):
    fused = [r for r in swept["results"] if r["case"]["form"] == "fused"]
    assert len(fused) == 2
    for result in fused:
        speedup = result["fused_speedup"]
        assert speedup["over"] == "train" and speedup["n"] == 4
        assert speedup["ci95"][0] <= speedup["ratio"] <= speedup["ci95"][1]
        assert speedup["clear"] == (not speedup["ci95"][0] <= 1 <= speedup["ci95"][1])
    assert all("fused_speedup" not in r for r in swept["results"] if r["case"]["form"] == "train")


def test_the_budget_stops_a_sweep_that_does_not_converge(tmp_path):
    """Even a budget too small for one round gives two rounds, from two process lifetimes."""
    plan = RoundsPlan(block_s=0.01, min_rounds=50, restart_every=4, target_ci=1e-6, budget_s=0.5, min_duration_s=0,
                      min_iters=1)
    report = {"results": []}
    run_sweep(torch_cases(["M0"], ["fused"]), Settings(SETTINGS, cache_dir=str(tmp_path)), plan, 120, report)
    sweep = report["sweep"]
    assert sweep["stopped"] == "budget" and 2 <= sweep["rounds"] < 50
    assert report["results"][0]["rounds"]["lifetimes"] == 2
    assert sweep["not_converged"] == [report["results"][0]["case"]["variant"] + " fused torch/cpu fp32 b1 64px t1 "
                                                                               "latency"]
    assert report["results"][0]["rounds"]["converged"] is False


def test_a_budget_stop_honours_min_iters(tmp_path):
    """Blocks of one inference and a budget spent at once: the rounds go on until the case has
    its --min-iters inferences (not the two rounds a budget stop needs otherwise), and no more."""
    plan = RoundsPlan(block_s=1e-6, min_rounds=50, restart_every=100, target_ci=1e-6, budget_s=1e-6,
                      min_duration_s=0, min_iters=5)
    report = {"results": []}
    run_sweep(torch_cases(["M0"], ["fused"]), Settings(SETTINGS, cache_dir=str(tmp_path)), plan, 120, report)
    (result,) = report["results"]
    assert report["sweep"]["stopped"] == "budget" and report["sweep"]["rounds"] == 5
    assert result["latency_ms"]["n"] == 5 and result["rounds"]["inferences_per_block"] == 1


def test_cases_beyond_the_memory_limit_run_in_batches_of_whole_groups(tmp_path):
    """Two live cases at most: M0's forms, then M1's, each batch with its own rounds."""
    plan = RoundsPlan(block_s=0.01, min_rounds=3, restart_every=100, target_ci=10.0, budget_s=60, min_duration_s=0,
                      min_iters=1, max_live=2)
    report = {"results": []}
    run_sweep(torch_cases(["M0", "M1"]), Settings(SETTINGS, cache_dir=str(tmp_path)), plan, 120, report)
    assert report["sweep"]["batches"] == 2 and report["sweep"]["stopped"] == "converged"
    assert [order[0].split()[0] for order in report["sweep"]["orders"]] == ["M0"] * 3 + ["M1"] * 3
    for result in report["results"]:
        assert result["rounds"]["blocks"] == 3
    assert all(r["fused_speedup"]["n"] == 3 for r in report["results"] if r["case"]["form"] == "fused")


def test_a_case_that_fails_after_some_blocks_is_no_result():
    (case,) = torch_cases(["M0"], ["fused"])
    run = CaseRun(case)
    run.add_block({"samples_ms": [1.0, 1.1], "completed": 2, "wall_s": 0.0021}, 0, 0)
    run.fail("failed", "the case's process crashed with a segmentation fault (SIGSEGV)")
    record = run.record(RoundsPlan())
    assert record.status == "failed" and record.latency_ms is None and record.throughput_ips is None
    assert record.samples_ms == [1.0, 1.1] and record.rounds.blocks == 1  # kept for reading


def test_unpaired_ratio_knows_rounds_differ():
    """Samples of two sweeps whose rounds drift: resampling rounds gives the honest, wider CI."""
    from repnext_bench.measure.ratios import unpaired_ratio

    rng = np.random.default_rng(2)
    offsets_a, offsets_b = rng.normal(0, 0.05, 6), rng.normal(0, 0.05, 6)
    a = [10 * (1 + offsets_a[r]) + rng.normal(0, 0.02) for r in range(6) for _ in range(20)]
    b = [8 * (1 + offsets_b[r]) + rng.normal(0, 0.02) for r in range(6) for _ in range(20)]
    rounds = [r for r in range(6) for _ in range(20)]
    with_rounds, without = unpaired_ratio(a, b, rounds, rounds), unpaired_ratio(a, b)
    assert with_rounds["ratio"] == without["ratio"] == pytest.approx(float(np.median(a) / np.median(b)))
    width = lambda r: r["ci95"][1] - r["ci95"][0]  # noqa: E731
    assert width(with_rounds) > 2 * width(without)
    assert "rounds then samples" in with_rounds["method"] and unpaired_ratio([1.0], [1.0, 2.0]) is None


def test_case_processes_come_with_torch_imported(tmp_path):
    """No start-up tax: a case's process is forked from a server that imported torch once."""
    import multiprocessing

    if "forkserver" not in multiprocessing.get_all_start_methods():
        pytest.skip("no fork server on this OS: cases are spawned and import torch themselves")
    (case,) = torch_cases(["M0"], ["fused"])
    process = CaseProcess(case, Settings(SETTINGS, cache_dir=str(tmp_path)), 60)
    try:
        assert process.ask("hello")["torch_preloaded"] is True
    finally:
        process.stop()


def test_groups_of_forms_stay_together_when_memory_limits_the_live_cases():
    plan = RoundsPlan(max_live=3)
    sweep = Sweep(torch_cases(["M0", "M1", "M2"]), Settings(SETTINGS), plan, 60, {"results": []})
    sweep.runs = [CaseRun(case) for case in sweep.cases]
    batches = sweep._batches()
    assert [[len(group) for group in batch] for batch, _ in batches] == [[2], [2], [2]]
    assert sum(share for _, share in batches) == pytest.approx(1.0)
    order = sweep._order([group for batch, _ in batches for group in batch])
    assert all(order[i].case.variant == order[i + 1].case.variant for i in range(0, 6, 2))


def test_rounds_ci_widens_when_rounds_disagree():
    rng = np.random.default_rng(0)
    steady = [list(10 + rng.normal(0, 0.05, 20)) for _ in range(8)]
    drifting = [list(10 * (1 + offset) + rng.normal(0, 0.05, 20)) for offset in rng.normal(0, 0.05, 8)]
    narrow, wide = summarize_rounds(steady), summarize_rounds(drifting)
    width = lambda s: s["ci95_median"][1] - s["ci95_median"][0]  # noqa: E731
    assert width(wide) > 3 * width(narrow)
    assert wide["ci95_half_width"] == pytest.approx(width(wide) / 2 / wide["p50"])
    one = summarize_rounds([[1.0, 2.0, 3.0]])
    assert one["rounds"] == 1 and one["ci95_method"].startswith("order statistics")


def test_paired_ratio_sees_through_drift_that_hits_both_forms():
    """Per-round drift of +-30% hits train and fused alike: the paired ratio stays near the true
    1.25 with a narrow CI, where the ratio of the pooled medians would wander."""
    rng = np.random.default_rng(1)
    drift = np.exp(rng.normal(0, 0.3, 12))
    fused = 8.0 * drift * np.exp(rng.normal(0, 0.01, 12))
    train = 10.0 * drift * np.exp(rng.normal(0, 0.01, 12))
    ratio = paired_ratio(list(train), list(fused))
    assert ratio["ratio"] == pytest.approx(1.25, rel=0.02) and ratio["clear"]
    assert ratio["ci95"][1] - ratio["ci95"][0] < 0.05
    assert ratio_text(ratio) == f"{ratio['ratio']:.2f}x ({ratio['ci95'][0]:.2f}-{ratio['ci95'][1]:.2f})"
    same = paired_ratio(list(10 * drift * np.exp(rng.normal(0, 0.05, 12))), list(10 * drift))
    assert not same["clear"] and ratio_text(same) == NO_CLEAR_DIFFERENCE


def test_fused_speedups_pair_blocks_of_the_same_round():
    train, fused = (CaseRun(c) for c in torch_cases(["M0"]))
    for round_index, drift in enumerate([1.0, 1.6, 0.8, 1.3]):
        train.blocks.append([10.0 * drift] * 3)
        fused.blocks.append([5.0 * drift] * 3)
        for run in (train, fused):
            run.block_rounds.append(round_index)
            run.block_lifetimes.append(round_index // 2)
    fused.blocks.append([1.0])  # a round the train-time form did not reach is left out
    fused.block_rounds.append(4)
    fused.block_lifetimes.append(2)
    (found,) = fused_speedups([train, fused]).values()
    assert found.ratio == pytest.approx(2.0) and found.n == 4 and found.ci95 == pytest.approx([2.0, 2.0])
    assert math.isinf(CaseRun(Case("M0", "fused", "torch", "cpu", "fp32", 1, 64, 1, "latency")).spread())
