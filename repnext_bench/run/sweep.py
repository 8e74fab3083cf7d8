"""Runs a sweep in interleaved rounds, so that a slow minute of a shared machine hits every
case alike.

Each case lives in its own process (case_process.py), forked from a server that has the
runtimes imported. In each round every case runs one block of inferences, in an order
shuffled per round (seeded, and recorded in the report); the forms of one configuration
(train and fused) run next to each other, in shuffled order, so that their ratio comes from
samples taken moments apart. Every ``restart_every`` rounds all processes are replaced by
fresh ones, so that no case's samples all come from one process lifetime (two processes of
the same program differ a little: memory layout, thread placement).

Rounds go on until every case's 95% CI of the median is within ``target_ci`` of it (and
the minimum rounds, inferences and measured time are reached), or the time budget is spent;
the cases that did not get there are named. The report is rewritten after every round, so
Ctrl-C keeps every finished block.
"""
from __future__ import annotations

import math
import shutil
import tempfile
import time
from collections.abc import Callable
from dataclasses import replace
from pathlib import Path

import numpy as np

from ..backends import availability, case_problem
from ..core.cases import Case
from ..core.records import (
    MAX_ROUNDS,
    STOP_REASONS,
    RecordError,
    Result,
    StopReason,
    read_results,
)
from ..measure.timing import RoundsPlan
from ..report.schema import write_report
from .case_process import CaseDied, CaseProcess, process_context, run_once
from .case_run import (
    CaseRun,
    case_record,
    fused_speedups,
    int8_speedups,
    mark_best_streams,
    server_record,
    with_evaluation,
)
from .lifecycle import Settings
from .serving import ServerPlan

BUDGET_COUNTS = "rounds and restarts"  # not the exports, quantization and first loads before them
MIN_ROUNDS_IN_BUDGET = 2  # a CI and a paired speedup need two rounds, whatever the budget
CASE_MEMORY_MB = 700  # a generous resident set per live case (M5 train on the CPU peaks near 700 MB)


def precheck(case: Case, found: dict) -> Result | None:
    """The record of a case that needs no process (its backend or device is not available here,
    or the backend does not run its precision), or None; ``found`` caches availability."""
    if case.backend not in found:
        found[case.backend] = availability(case.backend)
    problem = case_problem(case, found[case.backend])
    return case_record(case, *problem) if problem else None


def _group_key(case: Case) -> Case:
    """Cases that differ only by form, by streams (in a grid), or as INT8 and its fp32 twin are
    compared with each other: they run side by side."""
    return replace(case, form="", precision="fp32" if case.precision == "int8" else case.precision, streams=0)


class Sweep:
    """The rounds of one sweep, written into ``report`` (and ``path``) after each of them."""

    def __init__(self, cases: list[Case], settings: Settings, plan: RoundsPlan, time_limit_s: float, report: dict,
                 path: Path | None = None, render: Callable[[dict], dict] | None = None,
                 on_event: Callable[..., None] | None = None, server: ServerPlan | None = None,
                 processes: Callable[[Case, Settings, float], CaseProcess] = CaseProcess) -> None:
        self.cases, self.settings, self.plan, self.time_limit_s = cases, settings, plan, time_limit_s
        self.processes = processes  # makes a case's process (the tests pass fakes: the rules without processes)
        self.server = server
        self.served: dict[Case, Result] = {}  # server-mode cases, done
        self.evaluations: dict[Case, dict] = {}  # the evaluation process's reply of each case that has one
        self.report, self.path, self.render = report, path, render
        self.on_event = on_event or (lambda *args, **kwargs: None)
        self.rng = np.random.default_rng(plan.seed)
        self.prechecked: dict[Case, Result] = {}
        self.runs: list[CaseRun] = []
        self.orders: list[list[str]] = []
        self.started = time.monotonic()
        self.stops: list[StopReason] = []  # why each batch's rounds ended
        self.prepare_s = self.measure_s = 0.0  # the first lifetimes' loads; the rounds and restarts
        self.restarts: list[dict] = []  # each restart: cases it loaded, its seconds, how many read their state
        self._reused = 0  # of the lifetime being loaded: the cases that read their saved state

    def save(self) -> None:
        fused, int8 = fused_speedups(self.runs), int8_speedups(self.runs)
        by_case = {run.case: run for run in self.runs}
        results = []
        for case in self.cases:
            if case in self.prechecked or case in self.served:
                results.append(self.prechecked.get(case) or self.served[case])
                continue
            run = by_case.get(case)
            if run is None or (run.status == "ok" and not (run.blocks or run.throughputs)):
                continue  # not measured yet
            try:
                record = run.record(self.plan)
            except RecordError as exc:  # its process replied with something no result can hold
                run.fail("failed", f"a malformed reply from the case's process: {exc}")
                record = Result(case, "failed", run.error)
            record.fused_speedup, record.int8_speedup = fused.get(case), int8.get(case)
            results.append(record)
        for record in results:
            with_evaluation(record, self.evaluations.get(record.case))
        mark_best_streams(results)
        self.report["results"] = [result.to_dict() for result in results]
        reasons = set(self.stops)
        stopped = next((reason for reason in STOP_REASONS if reason in reasons), "")
        self.report["sweep"].update(finished=len(results), rounds=len(self.orders), orders=self.orders,
                                    stopped=stopped, batches=len(self.stops), wall_s=time.monotonic() - self.started,
                                    prepare_s=self.prepare_s, export_s=self.export_s(), measure_s=self.measure_s,
                                    timed_s=self.timed_s(), restarts=self.restarts, budget_counts=BUDGET_COUNTS,
                                    not_converged=[r.case.label for r in self.runs if r.active and
                                                   (r.blocks or r.throughputs) and not r.converged(self.plan)])
        if self.path:
            write_report(self.render(self.report) if self.render else self.report, self.path)

    def run(self) -> dict:
        """Measure every case; on Ctrl-C the processes are stopped, the report keeps every
        finished block and is marked interrupted, and KeyboardInterrupt goes on to the caller."""
        self.report["sweep"] = {"planned": len(self.cases), "finished": 0, "interrupted": False,
                                "plan": self.plan.to_dict()}
        found: dict = {}
        for case in self.cases:
            record = precheck(case, found)
            if record:
                self.prechecked[case] = record
            elif case.mode != "server":
                self.runs.append(CaseRun(case, seed=self.plan.seed))
        self.save()
        if self.processes is CaseProcess:
            process_context()  # the fork server starts now, not inside the first case's load
        scratch = None
        if not self.settings.use_cache:  # no cache across runs, but one for this sweep's lifetimes
            scratch = tempfile.mkdtemp(prefix="repnext-bench-")
            self.settings = replace(self.settings, cache_dir=scratch, use_cache=True)
        try:
            for batch, share in self._batches():
                if self._past_wall_limit():  # the cases of the batches left are not started
                    for run in (run for group in batch for run in group):
                        run.fail("skipped", f"not measured: the sweep reached --max-wall {self.plan.max_wall_s:g} s")
                    self.stops.append("wall limit")
                    continue
                self._measure(batch, self.plan.budget_s * share)
            self._serve()
            self._evaluate()
        except KeyboardInterrupt:
            self.report["sweep"]["interrupted"] = True
            self.stops.append("interrupted")
            raise
        finally:
            for run in self.runs:
                if run.process:
                    run.process.stop()
                    run.process = None
            try:
                self.save()
            finally:
                if scratch:
                    shutil.rmtree(scratch, ignore_errors=True)
        return self.report

    def _past_wall_limit(self, upcoming: float = 0.0) -> bool:
        """Whether ``upcoming`` more seconds would take the whole sweep past ``--max-wall``."""
        limit = self.plan.max_wall_s
        return bool(limit) and time.monotonic() - self.started + upcoming > limit

    def _serve(self) -> None:
        """The server-mode cases, one at a time, after the rounds (they measure a queue, not
        blocks: see serving.py)."""
        from .serving import interrupted_record, run_server_case

        waiting = [c for c in self.cases if c.mode == "server" and c not in self.prechecked]
        for index, case in enumerate(waiting):
            self.on_event("load", case=case, index=index, total=len(waiting), lifetime=0)
            if self.server is None:
                self.served[case] = Result(case, "failed", "server mode needs a rate (--qps) or a bound (--p99)")
            else:
                trials = []

                def heard(stats, case=case, trials=trials) -> None:
                    trials.append(stats)
                    self.on_event("trial", case=case, stats=stats)

                try:
                    replies = run_server_case(case, self.settings, self.server, self.time_limit_s, heard)
                except KeyboardInterrupt:  # the trials done so far stay in the report
                    self.served[case] = interrupted_record(case, trials, self.server)
                    raise
                self.served[case] = server_record(case, *replies, self.plan)
            if not self.served[case].ok:
                self.on_event("problem", record=self.served[case])
            self.save()

    def _evaluate(self) -> None:
        """Each finished case that needs it (INT8, or any with --eval), evaluated in a process of
        its own after the rounds: its export reused, its figures untouched."""
        from .evaluation import needs_evaluation

        finished = {r.case for r in self.runs if r.active and (r.blocks or r.throughputs)}
        finished |= {case for case, result in self.served.items() if result.ok}
        waiting = [c for c in self.cases if c in finished and needs_evaluation(c, self.settings)]
        done: dict[Case, dict] = {}  # the outputs do not depend on the mode or the streams: once each
        for index, case in enumerate(waiting):
            model = replace(case, mode="latency", streams=1)
            if model not in done:
                self.on_event("evaluate", case=case, index=index, total=len(waiting))
                done[model] = run_once(model, self.settings, self.time_limit_s, "evaluation")
                if "error" in done[model]:
                    self.on_event("note", text=f"{case.label}: not evaluated: {done[model]['error']}")
            self.evaluations[case] = done[model]
            self.save()

    def _batches(self) -> list[tuple[list[list[CaseRun]], float]]:
        """Groups of side-by-side cases, in batches of at most ``max_live`` cases alive at once,
        each with its share of the budget."""
        groups: dict[Case, list[CaseRun]] = {}
        for run in self.runs:
            groups.setdefault(_group_key(run.case), []).append(run)
        limit = self.plan.max_live or _memory_limit()
        batches: list[list[list[CaseRun]]] = [[]]
        pieces = [group[i:i + limit] for group in groups.values() for i in range(0, len(group), limit)]
        for group in pieces:  # a group larger than the limit goes in pieces
            if batches[-1] and sum(map(len, batches[-1])) + len(group) > limit:
                batches.append([])
            batches[-1].append(group)
        total = max(1, len(self.runs))
        return [(batch, sum(map(len, batch)) / total) for batch in batches if batch]

    def _measure(self, groups: list[list[CaseRun]], budget_s: float) -> None:
        """Load every case of ``groups`` (its preparation: not counted by the budget), then rounds
        until they converge, or before the next round (and the restart before it) would overrun
        ``budget_s`` of rounds and restarts, or the whole sweep ``max_wall_s``; never fewer than
        two rounds, nor fewer than two process lifetimes, within the budget."""
        runs = [run for group in groups for run in group]
        began = time.monotonic()
        self._start_lifetime(runs, 0)
        loads_s = time.monotonic() - began
        self.prepare_s += loads_s
        self.on_event("prepared", cases=len(runs), seconds=loads_s, exports=self.export_s(runs))
        start, rounds, lifetime, stopped = time.monotonic(), 0, 0, ""
        # what the last restart and the last round took; before the first restart, the first
        # loads without their exports stand for it (a restart loads no more than they did)
        restart_s, round_s = max(0.0, loads_s - self.export_s(runs)), 0.0
        restart_now = False
        try:
            while any(run.active for run in runs):
                if (rounds and rounds % self.plan.restart_every == 0) or restart_now:
                    lifetime, restart_now = lifetime + 1, False
                    began, cases = time.monotonic(), sum(run.active for run in runs)
                    self._start_lifetime(runs, lifetime)
                    restart_s = time.monotonic() - began
                    self.restarts.append({"cases": cases, "seconds": restart_s, "reused_state": self._reused})
                began = time.monotonic()
                self._round(groups, lifetime)
                rounds += 1
                round_s = time.monotonic() - began
                active = [run for run in runs if run.active]
                elapsed = time.monotonic() - start
                # the next round, and the restart before it when one is due, must fit in the budget
                upcoming = round_s + (restart_s if rounds % self.plan.restart_every == 0 else 0.0)
                if rounds >= self.plan.min_rounds and all(run.converged(self.plan) for run in active):
                    stopped = "converged"
                elif self._past_wall_limit(upcoming):
                    stopped = "wall limit"
                elif elapsed + upcoming > budget_s and rounds >= MIN_ROUNDS_IN_BUDGET and self._has_min_iters(active):
                    if lifetime == 0 and self.plan.restart_every < self.plan.min_rounds:
                        restart_now = True  # every block so far came from one process per case: one more lifetime
                    else:
                        stopped = "budget"
                elif rounds >= MAX_ROUNDS:
                    stopped = "max rounds"
                self.on_event("round", rounds=len(self.orders), elapsed=elapsed, budget=budget_s,
                              measuring=elapsed, preparing=loads_s,
                              widest=max(active, key=CaseRun.spread, default=None))
                if stopped:
                    break
                self.save()
        finally:
            self.measure_s += time.monotonic() - start
        self.stops.append(stopped or "converged")
        self._end_lifetime(runs)

    def export_s(self, runs: list[CaseRun] | None = None) -> float:
        """Seconds the first lifetimes (of ``runs``, default all) spent exporting (quantization included)."""
        return sum(((run.loaded or {}).get("cold_start") or {}).get("export_s") or 0.0
                   for run in (self.runs if runs is None else runs))

    def timed_s(self) -> float:
        """Seconds of timed inferences (the blocks' wall time in throughput mode)."""
        return sum(run.wall_s if run.case.mode == "throughput" else sum(map(sum, run.blocks)) / 1e3
                   for run in self.runs)

    def _has_min_iters(self, runs: list[CaseRun]) -> bool:
        """A stop for time honours ``--min-iters``: rounds go on past the budget until every
        case has that many inferences (each round adds at least one per case)."""
        return all(run.completed >= self.plan.min_iters for run in runs)

    def _round(self, groups: list[list[CaseRun]], lifetime: int) -> None:
        """One block of every active case, in this round's shuffled order."""
        order = self._order(groups)
        self.orders.append([run.case.label for run in order])
        for run in order:
            if not run.active:
                continue
            try:
                reply = run.process.ask("block")
            except CaseDied as died:
                run.fail("failed", str(died))
                continue
            if "error" in reply:
                run.fail("failed", reply["error"], reply.get("traceback"))
            else:
                run.add_block(reply, len(self.orders) - 1, lifetime)

    def _order(self, groups: list[list[CaseRun]]) -> list[CaseRun]:
        order = []
        for index in self.rng.permutation(len(groups)):
            group = groups[index]
            order.extend(group[i] for i in self.rng.permutation(len(group)))
        return order

    def _start_lifetime(self, runs: list[CaseRun], lifetime: int) -> None:
        """End the running processes, then start and load a fresh one per active case. The first
        lifetime loads one case at a time: two loads at once would share the cores, and its cold
        start is reported. A later one loads two at a time (one on one core), each reading
        what the first made (the export, the saved model, its reference output) and taking its
        block size: those loads are not reported, and the warm-up after them is not measured."""
        from ..system.machine import usable_cores

        self._end_lifetime(runs)
        self._reused = 0
        active = [run for run in runs if run.active]
        at_once = 1 if lifetime == 0 else min(2, usable_cores())
        loading: list[CaseRun] = []
        for index, run in enumerate(active):
            self.on_event("load", case=run.case, index=index, total=len(active), lifetime=lifetime)
            if len(loading) >= at_once:
                self._loaded(loading.pop(0), lifetime)
            run.process = self.processes(run.case, self.settings, self.time_limit_s)
            block_n = (run.loaded or {}).get("block_n") if lifetime else None
            try:
                run.process.send("load", block_s=self.plan.block_s, block_n=block_n)
            except CaseDied as died:
                run.fail("failed", str(died))
                continue
            loading.append(run)
        for run in loading:
            self._loaded(run, lifetime)

    def _loaded(self, run: CaseRun, lifetime: int) -> None:
        try:
            reply = run.process.receive()
        except CaseDied as died:
            run.fail("failed", str(died))
            return
        if "skipped" in reply:
            run.fail("skipped", reply["skipped"])
            run.loaded = {"model": reply.get("model")}
            if reply.get("exported") and reply.get("artifact"):
                artifact = reply["artifact"]
                run.loaded.update(artifact=artifact, cold_start={"export_s": artifact.get("export_s"),
                                                                 "export_cache_hit": artifact.get("cache_hit")})
        elif "error" in reply:
            run.fail("failed", reply["error"], reply.get("traceback"))
        else:
            run.finished = reply  # what ran and its output, until the lifetime's end says again
            self._reused += bool(reply.get("state_reused"))
            run.reused_export = bool((reply.get("cold_start") or {}).get("export_cache_hit"))
            run.note_peak(reply["peak_rss_mb"])
            if lifetime == 0 or run.loaded is None:
                run.loaded = reply
                self.on_event("loaded", case=run.case, load=reply)
        if not run.active:
            self.on_event("problem", record=run.record(self.plan))

    def _end_lifetime(self, runs: list[CaseRun]) -> None:
        """Ask each live process what ran and how much memory it took, then stop it."""
        for run in runs:
            if run.process is None:
                continue
            if run.active and (run.blocks or run.throughputs):
                try:
                    reply = run.process.ask("finish")
                except CaseDied as died:
                    run.fail("failed", str(died))
                else:
                    if "error" in reply:
                        run.fail("failed", reply["error"], reply.get("traceback"))
                    else:
                        run.finished = reply
                        run.note_peak(reply["peak_rss_mb"])
            run.process.stop()
            run.process = None


def _memory_limit() -> int:
    """How many cases may be alive at once: what 70% of the available memory holds."""
    try:
        import psutil

        available_mb = psutil.virtual_memory().available / 1024**2
    except (ImportError, OSError):
        return 16
    return max(2, math.floor(available_mb * 0.7 / CASE_MEMORY_MB))


def run_sweep(cases: list[Case], settings: Settings, plan: RoundsPlan, time_limit_s: float, report: dict,
              path: Path | None = None, render: Callable[[dict], dict] | None = None,
              on_event: Callable[..., None] | None = None, server: ServerPlan | None = None,
              processes: Callable[[Case, Settings, float], CaseProcess] = CaseProcess) -> dict:
    return Sweep(cases, settings, plan, time_limit_s, report, path, render, on_event, server, processes).run()


# two rounds of one inference: for what a case outputs (verify), not how fast it is
CHECK_ONLY = RoundsPlan(block_s=1e-6, min_rounds=1, restart_every=MAX_ROUNDS, target_ci=1e9, budget_s=1e-6,
                        min_duration_s=0, min_iters=1, max_live=1)


def run_cases(cases: list[Case], settings: Settings, time_limit_s: float, plan: RoundsPlan | None = None,
              on_event: Callable[..., None] | None = None) -> list[Result]:
    """The results of ``cases``, measured in rounds, without a report file."""
    report = {"results": []}
    run_sweep(cases, settings, plan or RoundsPlan(), time_limit_s, report, on_event=on_event)
    return read_results(report["results"])
