"""Cheap process lifetimes and a budget that buys measurement: the case's state (model in its
form, reference output, counts, weights hash) made once and read back, restarts that load
only the session, the budget counting rounds and restarts but not the first loads, the hard
wall limit, the sweep's time accounts, and the one-line summaries."""
import os
import pickle

import numpy as np
import pytest
import torch

from repnext_bench.core.cases import Case, expand
from repnext_bench.export import ExportCache
from repnext_bench.measure.timing import TimingPlan, block_size
from repnext_bench.run.case_process import CaseProcess
from repnext_bench.run.case_state import MODEL_FILE, case_state, load_model, state_key
from repnext_bench.run.lifecycle import FAULT_ENV, Settings, build_case_model
from repnext_bench.run.sweep import BUDGET_COUNTS, RoundsPlan, run_sweep

PLAN = TimingPlan(warmup_s=0, warmup_iters=1)


def torch_cases(variants, forms=("train", "fused")):
    return expand(list(variants), list(forms), [("torch", "cpu")], ["fp32"], [1], [64], [1], ["latency"])


@pytest.mark.parametrize("variant", ["M0", "M0E"])
@pytest.mark.parametrize("form", ["train", "fused"])
def test_the_saved_state_gives_the_same_model_outputs_and_counts(tmp_path, variant, form):
    """Random BatchNorm statistics: the model read back computes what the one built here does,
    and the reference output and counts read back are the ones made."""
    case = Case(variant, form, "torch", "cpu", "fp32", 2, 64, 1, "latency")
    settings = Settings(PLAN, randomize=True, seed=3)
    cache = ExportCache(tmp_path)
    made = build_case_model(case, settings, cache)
    read = build_case_model(case, settings, cache)
    assert not made.reused and read.reused and read.model is not made.model
    assert read.model.form == form and not read.model.training
    with torch.inference_mode():
        inputs = torch.from_numpy(made.images)
        assert torch.equal(read.model(inputs), made.model(inputs))
    assert np.array_equal(read.expected, made.expected) and np.array_equal(read.images, made.images)
    assert (read.counts.params, read.counts.macs, read.counts.per_module_macs) == \
        (made.counts.params, made.counts.macs, made.counts.per_module_macs)
    assert read.weights == made.weights


def test_the_state_key_follows_what_the_state_depends_on(tmp_path):
    case = Case("M0", "fused", "torch", "cpu", "fp32", 1, 64, 1, "latency")
    base = state_key(case, Settings(PLAN))
    assert state_key(Case(**{**case.__dict__, "threads": 2, "backend": "onnxruntime"}), Settings(PLAN)) == base
    for other in (Case(**{**case.__dict__, "batch": 2}), Case(**{**case.__dict__, "resolution": 96}),
                  Case(**{**case.__dict__, "form": "train"})):
        assert state_key(other, Settings(PLAN)) != base
    assert state_key(case, Settings(PLAN, seed=1)) != base
    assert state_key(case, Settings(PLAN, randomize=True)) != base
    checkpoint = tmp_path / "weights.pth"
    checkpoint.write_bytes(b"one")
    first = state_key(case, Settings(PLAN, checkpoint=str(checkpoint)))
    stat = checkpoint.stat()
    checkpoint.write_bytes(b"two")  # the same size and, restored, the same time: still another checkpoint
    os.utime(checkpoint, ns=(stat.st_atime_ns, stat.st_mtime_ns))
    assert first != base and state_key(case, Settings(PLAN, checkpoint=str(checkpoint))) != first


def test_a_saved_model_that_would_run_code_is_refused_and_made_again(tmp_path, capsys):
    """The saved model is read with weights_only: a pickle that calls anything but the model's
    own classes does not load, and the case makes its state again (so does one whose weights
    no longer match their hash)."""
    case = Case("M0", "fused", "torch", "cpu", "fp32", 1, 64, 1, "latency")
    cache = ExportCache(tmp_path)
    made = build_case_model(case, Settings(PLAN), cache)
    (path,) = tmp_path.glob(f"case/*/{MODEL_FILE}")

    class Payload:
        def __reduce__(self):
            return (print, ("this ran",))

    torch.save({"model": Payload()}, path)
    with pytest.raises(pickle.UnpicklingError):
        load_model(path)
    calls = []

    def make():
        calls.append(1)
        return made.model, made.expected, made.counts

    again = case_state(case, Settings(PLAN), cache, make)
    assert calls == [1] and not again.reused and "this ran" not in capsys.readouterr().out
    assert case_state(case, Settings(PLAN), cache, make).reused and calls == [1]  # kept again, read again
    with torch.no_grad():
        next(made.model.parameters()).add_(1.0)
    torch.save(made.model, path)  # loads, but is not the model its hash names
    assert not case_state(case, Settings(PLAN), cache, make).reused and calls == [1, 1]


def test_block_size_comes_from_the_second_half_of_the_warm_up():
    assert block_size([0.5, 0.01, 0.01, 0.01], 0.1) == (10, 0.01)
    assert block_size([0.2, 0.3], 0.1) == (1, 0.3)
    assert block_size([], 0.1)[0] == 1


def test_a_later_lifetime_reads_the_state_and_takes_the_block_size(tmp_path):
    """A restart loads the session only: the model, reference output and counts come from the
    first lifetime, and so does the block size (not measured again)."""
    (case,) = torch_cases(["M0"], ["fused"])
    settings = Settings(PLAN, cache_dir=str(tmp_path))
    replies = []
    for block_n in (None, 7):
        process = CaseProcess(case, settings, 120)
        try:
            replies.append(process.ask("load", block_s=0.01, block_n=block_n))
        finally:
            process.stop()
    first, later = replies
    assert first["state_reused"] is False and later["state_reused"] is True
    assert later["block_n"] == 7 and first["block_n"] >= 1
    assert later["model"] == first["model"] and later["parity"] == first["parity"]


@pytest.fixture(scope="module")
def slow_loads(tmp_path_factory):
    """M0's two forms, each load a second longer than it is (the ``slow`` fault), a budget of
    1 s of rounds and no restart: what the budget counts shows in how the sweep ends."""
    with pytest.MonkeyPatch.context() as patch:
        patch.setenv(FAULT_ENV, "slow@M0")
        plan = RoundsPlan(block_s=0.005, min_rounds=1, restart_every=1000, target_ci=1e-9, budget_s=1.0,
                          min_duration_s=0, min_iters=1)
        report = {"results": []}
        settings = Settings(PLAN, cache_dir=str(tmp_path_factory.mktemp("cache")))
        run_sweep(torch_cases(["M0"]), settings, plan, 120, report)
        walled = {"results": []}
        run_sweep(torch_cases(["M0"]), settings, RoundsPlan(**{**plan.to_dict(), "budget_s": 60, "max_wall_s": 3.0}),
                  120, walled)
    return report["sweep"], walled["sweep"]


def test_the_budget_counts_rounds_not_the_first_loads(slow_loads):
    sweep, _ = slow_loads
    assert sweep["stopped"] == "budget" and sweep["budget_counts"] == BUDGET_COUNTS == "rounds and restarts"
    assert sweep["prepare_s"] >= 2.0  # two loads of a second more each: before the budget's clock
    assert sweep["rounds"] > 2  # the budget bought rounds, not loads (2 is what a spent budget still gives)
    last_round = sweep["measure_s"] / sweep["rounds"]
    assert sweep["measure_s"] <= 1.0 + 3 * last_round + 0.5
    assert sweep["wall_s"] >= sweep["prepare_s"] + sweep["measure_s"] > sweep["timed_s"] > 0
    assert sweep["export_s"] >= 0 and sweep["restarts"] == []


def test_max_wall_stops_the_whole_sweep_loads_included(slow_loads):
    _, walled = slow_loads
    assert walled["stopped"] == "wall limit" and walled["rounds"] >= 1
    assert walled["prepare_s"] >= 2.0 and walled["wall_s"] < 3.0 + 2.0  # a 60 s budget did not keep it going


def test_a_restart_reads_each_case_state_and_no_cache_leaves_nothing(tmp_path, monkeypatch):
    """--no-cache: one scratch cache for the sweep's lifetimes (the restart reads the state the
    first lifetime saved), removed at the end; nothing in the user's cache."""
    import tempfile

    scratch = tmp_path / "tmp"
    scratch.mkdir()
    monkeypatch.setattr(tempfile, "tempdir", str(scratch))
    from repnext_bench.export import CACHE_ENV

    monkeypatch.delenv(CACHE_ENV, raising=False)
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path / "home-cache"))
    plan = RoundsPlan(block_s=0.005, min_rounds=2, restart_every=1, target_ci=10.0, budget_s=60, min_duration_s=0,
                      min_iters=1)
    report = {"results": []}
    run_sweep(torch_cases(["M0"]), Settings(PLAN, use_cache=False), plan, 120, report)
    sweep = report["sweep"]
    assert sweep["rounds"] == 2 and [r["rounds"]["lifetimes"] for r in report["results"]] == [2, 2]
    (restart,) = sweep["restarts"]
    assert restart["cases"] == restart["reused_state"] == 2 and restart["seconds"] > 0
    assert list(scratch.iterdir()) == [] and not (tmp_path / "home-cache").exists()


def test_the_summary_names_what_did_not_converge_on_one_short_line():
    from rich.console import Console

    from repnext_bench.report.results import short_labels, sweep_lines

    labels = [f"M{i} {form} onnxruntime/cpu fp32 b1 224px t2 latency" for i in range(6) for form in ("train", "fused")]
    assert short_labels(labels) == ("onnxruntime/cpu fp32 b1 224px t2 latency", ["M0-M5 train", "M0-M5 fused"])
    assert short_labels(labels[:3])[1] == ["M0,M1 train", "M0 fused"]
    assert short_labels(labels[:1]) == ("", labels[:1])
    sweep = {"rounds": 16, "stopped": "budget", "plan": {"budget_s": 45, "seed": 0}, "wall_s": 58.0,
             "prepare_s": 12.0, "export_s": 0.0, "measure_s": 45.0, "timed_s": 26.1, "not_converged": labels}
    console = Console(width=160, record=True)
    for line in sweep_lines(sweep):
        console.print(line)
    text = console.export_text().splitlines()
    missed = [line for line in text if line.startswith("not converged")]
    assert len(missed) == 1 and "M0-M5 train; M0-M5 fused" in missed[0]
    assert "prepared in 12 s" in " ".join(text) and "26 s of timed inferences (45% of the wall clock)" in " ".join(text)


def test_every_stop_reason_prints_and_the_schema_holds_each():
    import json

    from repnext_bench.core.records import STOP_REASONS
    from repnext_bench.report.results import sweep_lines
    from repnext_bench.report.schema import SCHEMA_PATH

    plan = {"budget_s": 45, "max_wall_s": 120, "target_ci": 0.02, "seed": 0}
    said = {}
    for reason in STOP_REASONS:
        (line,) = sweep_lines({"rounds": 3, "stopped": reason, "plan": plan})
        said[reason] = line.split("stopped: ", 1)[1].removesuffix("[/]")
    assert said["max rounds"].startswith("the most rounds a sweep runs (500)") and "45 s budget" in said["budget"]
    assert "120 s --max-wall" in said["wall limit"] and len(set(said.values())) == len(STOP_REASONS)
    assert all(said.values())
    schema = json.loads(SCHEMA_PATH.read_text())["$defs"]["sweep"]["properties"]["stopped"]
    assert set(schema["enum"]) == {*STOP_REASONS, "", None}


def test_the_live_line_shows_rounds_measuring_and_preparing():
    from repnext_bench.cli.progress import _round_line

    line = _round_line({"rounds": 5, "measuring": 12.4, "budget": 45, "preparing": 14.2, "widest": None})
    assert line == "round 5: measuring 12 s of the 45 s budget, prepared in 14 s"


def test_repeat_prints_each_runs_efficiency_and_checks_the_cis_overlap():
    from repnext_bench.core.records import Ratio, Result
    from repnext_bench.devtools.repeat import compare_runs, efficiency

    sweep = {"rounds": 17, "prepare_s": 12.0, "export_s": 0.0, "measure_s": 44.0, "timed_s": 29.0}
    assert efficiency(sweep, 58.0) == ("17 rounds in 58.0 s: prepared 12.0 s (exports 0.0 s), measured 44.0 s, "
                                       "timed inferences 29.0 s = 50% of the wall clock")

    def result(speedup, ci):
        from repnext_bench.core.records import LatencyStats

        case = Case("M0", "fused", "onnxruntime", "cpu", "fp32", 1, 224, 2, "latency")
        latency = LatencyStats.from_dict({"n": 3, "mean": 1.0, "std": 0.0, "min": 1.0, "p50": 1.0, "p90": 1.0,
                                          "p95": 1.0, "p99": 1.0, "max": 1.0})
        return Result(case, "ok", latency_ms=latency, fused_speedup=Ratio(speedup, ci, True))

    label = result(1.2, [1.19, 1.21]).label
    _, met = compare_runs({label: result(1.2, [1.19, 1.21])}, {label: result(1.23, [1.22, 1.24])})
    assert not met  # within 5%, but the CIs do not overlap
    _, met = compare_runs({label: result(1.2, [1.15, 1.25])}, {label: result(1.23, [1.2, 1.26])})
    assert met


def test_repeat_refuses_a_drift_of_no_time_in_one_line(capsys):
    from repnext_bench.devtools.repeat import main

    assert main(["--drift", "0"]) == 2
    assert capsys.readouterr().err.strip() == "error: --drift 0 is not valid: use a number of seconds above 0"
