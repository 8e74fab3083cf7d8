"""The sweep's rules (stop, restart, budget, wall limit, batches, a process that dies) with
scripted case processes that answer at once: the scheduler without a process, in milliseconds.
The real processes' side of the same rules is in test_sweep, test_lifetimes and test_faults."""
import time

import numpy as np
import pytest

from repnext_bench.core.cases import Case
from repnext_bench.core.records import read_results
from repnext_bench.measure.timing import RoundsPlan, TimingPlan
from repnext_bench.run.case_process import CaseDied
from repnext_bench.run.lifecycle import Settings
from repnext_bench.run.sweep import run_sweep

SETTINGS = Settings(TimingPlan(warmup_s=0, warmup_iters=0, min_duration_s=0, min_iters=1))


def cases(variants=("M0",)) -> list[Case]:
    return [Case(v, form, "onnxruntime", "cpu", "fp32", 1, 64, 1, "latency") for v in variants
            for form in ("train", "fused")]


class Fakes:
    """A factory of scripted case processes and the log of what the sweep asked of them. Each
    block holds ``block_n`` samples around ``median_ms`` (spread ``noise``) and takes
    ``block_sleep_s``; ``die`` maps a case label to the block at which its process dies;
    ``load_sleep_s`` makes a variant's loads slow."""

    def __init__(self, median_ms=2.0, noise=0.01, block_sleep_s=0.0, die=None, load_sleep_s=None):
        self.median_ms, self.noise, self.block_sleep_s, self.die = median_ms, noise, block_sleep_s, die or {}
        self.load_sleep_s = load_sleep_s or {}  # variant -> seconds each of its loads takes (else 2 ms)
        self.made: list[tuple[str, int | None]] = []  # (case label, block_n the load was given)
        self.alive = self.most_alive = self.blocks = 0

    def __call__(self, case, settings, time_limit_s):
        return FakeProcess(self, case, len(self.made))


class FakeProcess:
    def __init__(self, fakes: Fakes, case: Case, index: int) -> None:
        self.fakes, self.case, self.reply, self.blocks = fakes, case, None, 0
        self.rng = np.random.default_rng(index)
        fakes.alive += 1
        fakes.most_alive = max(fakes.most_alive, fakes.alive)
        self.stopped = False

    def send(self, op: str, **args) -> None:
        fakes = self.fakes
        if op == "load":
            fakes.made.append((self.case.label, args.get("block_n")))
            time.sleep(fakes.load_sleep_s.get(self.case.variant, 0.002))
            self.block_n = args.get("block_n") or 4
            self.reply = {"block_n": self.block_n, "inference_s": fakes.median_ms / 1e3, "state_reused": False,
                          "cold_start": {"export_s": 0.0, "export_cache_hit": True, "load_s": 0.01,
                                         "first_inference_ms": fakes.median_ms},
                          "model": {"params": 1, "macs": 1, "form": self.case.form}, "artifact": None,
                          "rss_before_load_mb": 100.0, "rss_after_load_mb": 120.0, "peak_reset": True,
                          **self._finish()}
        elif op == "block":
            if self.blocks == fakes.die.get(self.case.label):
                self.reply = None
                return
            self.blocks += 1
            fakes.blocks += 1
            time.sleep(fakes.block_sleep_s)
            samples = (fakes.median_ms * np.exp(self.rng.normal(0, fakes.noise, self.block_n))).tolist()
            self.reply = {"samples_ms": samples, "wall_s": sum(samples) / 1e3, "completed": self.block_n,
                          "device_ms": None}
        elif op == "finish":
            self.reply = self._finish()

    def _finish(self) -> dict:
        return {"backend": {"precision_effective": "fp32", "device": "cpu", "threads": 1},
                "precision_effective": "fp32", "parity": {"rel_l2": 1e-7, "max_abs": 1e-7, "top1_agree": 1.0},
                "peak_rss_mb": 130.0, "gpu_memory": None}

    def receive(self) -> dict:
        if self.reply is None:
            self.stop()
            raise CaseDied("the case's process was killed by SIGSEGV")
        return self.reply

    def ask(self, op: str, **args) -> dict:
        self.send(op, **args)
        return self.receive()

    def stop(self) -> None:
        if not self.stopped:
            self.stopped = True
            self.fakes.alive -= 1


@pytest.fixture(autouse=True)
def no_precheck(monkeypatch):
    """The cases need no backend here: what precheck asks of onnxruntime is not timed into the
    wall limit these tests set."""
    import repnext_bench.run.sweep as sweep_module

    monkeypatch.setattr(sweep_module, "precheck", lambda case, found: None)


def sweep(fakes: Fakes, plan: RoundsPlan, variants=("M0",)):
    report = {"results": []}
    run_sweep(cases(variants), SETTINGS, plan, 60.0, report, processes=fakes)
    return report["sweep"], {r.case.label: r for r in read_results(report["results"])}


def test_converged_cases_stop_at_min_rounds_with_a_process_per_lifetime():
    fakes = Fakes(noise=0.001)
    info, results = sweep(fakes, RoundsPlan(block_s=0.01, min_rounds=6, restart_every=2, target_ci=0.05,
                                            min_duration_s=0, min_iters=1))
    assert info["stopped"] == "converged" and info["rounds"] == 6
    assert len(fakes.made) == 2 * 3  # two cases, three lifetimes of two rounds each
    # later lifetimes take the first one's block size
    assert [n for _, n in fakes.made] == [None, None, 4, 4, 4, 4]
    assert [r["cases"] for r in info["restarts"]] == [2, 2]
    for result in results.values():
        assert result.status == "ok" and result.rounds.lifetimes == 3 and result.rounds.converged
        assert result.rounds.block_lifetimes == [0, 0, 1, 1, 2, 2] and len(result.samples_ms) == 24
    assert fakes.alive == 0  # every process stopped


def test_the_round_limit_stops_a_sweep_that_never_converges(monkeypatch):
    import repnext_bench.run.sweep as sweep_module

    monkeypatch.setattr(sweep_module, "MAX_ROUNDS", 12)
    info, results = sweep(Fakes(noise=0.5), RoundsPlan(block_s=0.01, min_rounds=1, restart_every=100, target_ci=1e-6,
                                                       budget_s=1e6, min_duration_s=0, min_iters=1))
    assert info["stopped"] == "max rounds" and info["rounds"] == 12
    assert info["not_converged"] and not any(r.rounds.converged for r in results.values())


def test_the_budget_stops_before_a_round_that_would_not_fit():
    fakes = Fakes(noise=0.5, block_sleep_s=0.01)
    plan = RoundsPlan(block_s=0.01, min_rounds=1000, restart_every=1000, target_ci=1e-6, budget_s=0.3,
                      min_duration_s=0, min_iters=1)
    info, _ = sweep(fakes, plan)
    assert info["stopped"] == "budget" and 2 <= info["rounds"] < 1000 and info["budget_counts"] == "rounds and restarts"
    assert info["prepare_s"] > 0 and info["measure_s"] > 0  # the loads are not in the budget


def test_the_budget_waits_for_min_iters():
    plan = RoundsPlan(block_s=0.01, min_rounds=1000, restart_every=1000, target_ci=1e-6, budget_s=0.05,
                      min_duration_s=0, min_iters=40)  # ten blocks of four
    info, results = sweep(Fakes(noise=0.5, block_sleep_s=0.01), plan)
    assert info["stopped"] == "budget" and all(len(r.samples_ms) >= 40 for r in results.values())


def test_max_wall_stops_the_rounds_and_skips_the_batches_it_cannot_start():
    """Two live cases at most: M0's slow loads use up the wall limit, so its batch stops after
    the round it must run and M1's batch is not started; its cases say why."""
    fakes = Fakes(noise=0.5, block_sleep_s=0.01, load_sleep_s={"M0": 0.2})
    plan = RoundsPlan(block_s=0.01, min_rounds=1000, restart_every=1000, target_ci=1e-6, budget_s=1e6,
                      max_wall_s=0.3, min_duration_s=0, min_iters=1, max_live=2)
    info, results = sweep(fakes, plan, variants=("M0", "M1"))
    assert info["stopped"] == "wall limit" and info["batches"] == 2 and info["rounds"] == 1
    m1 = [r for label, r in results.items() if label.startswith("M1")]
    assert [r.status for r in m1] == ["skipped", "skipped"]
    assert m1[0].error == "not measured: the sweep reached --max-wall 0.3 s"
    assert {label for label, _ in fakes.made} == {r.case.label for r in results.values() if r.case.variant == "M0"}


def test_max_wall_stops_the_rounds_before_one_that_would_pass_it():
    fakes = Fakes(noise=0.5, block_sleep_s=0.01)
    plan = RoundsPlan(block_s=0.01, min_rounds=1000, restart_every=1000, target_ci=1e-6, budget_s=1e6,
                      max_wall_s=0.3, min_duration_s=0, min_iters=1)
    info, _ = sweep(fakes, plan)
    assert info["stopped"] == "wall limit" and 2 <= info["rounds"] < 1000


def test_batches_keep_at_most_max_live_processes_and_each_gets_its_share():
    fakes = Fakes(noise=0.001)
    plan = RoundsPlan(block_s=0.01, min_rounds=4, restart_every=2, target_ci=0.05, min_duration_s=0, min_iters=1,
                      max_live=2)
    info, results = sweep(fakes, plan, variants=("M0", "M1", "M2"))
    assert info["batches"] == 3 and fakes.most_alive == 2 and fakes.alive == 0
    assert all(r.status == "ok" and r.rounds.blocks == 4 for r in results.values())
    assert info["stopped"] == "converged"


def test_a_process_that_dies_costs_its_case_and_the_rest_go_on():
    fakes = Fakes(noise=0.001, die={"M0 train onnxruntime/cpu fp32 b1 64px t1 latency": 3})
    info, results = sweep(fakes, RoundsPlan(block_s=0.01, min_rounds=6, restart_every=100, target_ci=0.05,
                                            min_duration_s=0, min_iters=1))
    dead = results["M0 train onnxruntime/cpu fp32 b1 64px t1 latency"]
    alive = results["M0 fused onnxruntime/cpu fp32 b1 64px t1 latency"]
    assert dead.status == "failed" and "SIGSEGV" in dead.error and dead.latency_ms is None
    assert len(dead.samples_ms) == 3 * 4  # the blocks it finished stay
    assert alive.status == "ok" and alive.rounds.blocks == 6 and info["stopped"] == "converged"


def test_every_event_the_run_engine_sends_is_one_the_progress_display_shows():
    import ast
    from pathlib import Path

    import repnext_bench
    from repnext_bench.core.records import SWEEP_EVENTS

    package = Path(repnext_bench.__file__).resolve().parent
    sent = set()
    for path in (package / "run").glob("*.py"):
        for node in ast.walk(ast.parse(path.read_text())):
            if isinstance(node, ast.Call) and getattr(node.func, "attr", None) == "on_event" and node.args:
                sent.add(node.args[0].value)
    shown = set()
    for node in ast.walk(ast.parse((package / "cli" / "progress.py").read_text())):
        if isinstance(node, ast.Compare) and getattr(node.left, "id", None) == "kind":
            shown.update(c.value for c in node.comparators if isinstance(c, ast.Constant))
    assert sent == shown == set(SWEEP_EVENTS)
