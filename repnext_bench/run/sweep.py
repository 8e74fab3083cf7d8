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
from dataclasses import dataclass, field, replace
from pathlib import Path

import numpy as np

from ..backends import availability, case_problem
from ..core.cases import Case
from ..core.records import (
    EXPORT_INCLUDED,
    MAX_ROUNDS,
    STOP_REASONS,
    Accuracy,
    ArtifactRecord,
    ColdStart,
    Concurrency,
    LatencyStats,
    Memory,
    ModelInfo,
    Parity,
    Quantization,
    Ratio,
    Record,
    RecordError,
    Result,
    RoundsInfo,
    read_results,
)
from ..measure.ratios import paired_ratio
from ..measure.rounds import rounds_ci, summarize_rounds
from ..measure.timing import RoundsPlan
from ..report.schema import write_report
from .case_process import CaseDied, CaseProcess, process_context, run_once
from .lifecycle import Settings
from .serving import ServerPlan

BUDGET_COUNTS = "rounds and restarts"  # not the exports, quantization and first loads before them
MIN_ROUNDS_IN_BUDGET = 2  # a CI and a paired speedup need two rounds, whatever the budget
CASE_MEMORY_MB = 700  # a generous resident set per live case (M5 train on the CPU peaks near 700 MB)


def case_record(case: Case, status: str, error: str | None) -> Result:
    """The record of a case that was not measured (or not yet): its status and why."""
    return Result(case, status, error)


@dataclass
class CaseRun:
    """One case's state across the rounds."""

    case: Case
    process: CaseProcess | None = None
    status: str = "ok"
    error: str | None = None
    traceback: str | None = None  # where an exception in the case's process came from
    loaded: dict | None = None  # the first lifetime's load (cold start, export)
    finished: dict | None = None  # the last lifetime's finish (parity, what ran)
    peak_rss_mb: float = 0.0  # the highest peak of its processes
    # ... of those that reused the export from the cache: a process that exported (or quantized,
    # calibration included) first has that export's memory in its peak, which serving does not
    peak_reused_mb: float = 0.0
    reused_export: bool = False  # this lifetime's process reused the export
    blocks: list[list[float]] = field(default_factory=list)  # latency samples (ms) of each block
    throughputs: list[float] = field(default_factory=list)  # images/s of each block (throughput mode)
    block_rounds: list[int] = field(default_factory=list)
    block_lifetimes: list[int] = field(default_factory=list)
    device_ms: list[float] = field(default_factory=list)
    completed: int = 0
    wall_s: float = 0.0
    concurrency: dict | None = None
    seed: int = 0
    _ci: tuple[int, tuple[float, float] | None] = (-1, None)  # (blocks it was computed on, CI)

    @property
    def active(self) -> bool:
        return self.status == "ok"

    @property
    def values(self) -> list[list[float]]:
        """What the CI is computed on: latency samples per block, or each block's images/s."""
        return [[v] for v in self.throughputs] if self.case.mode == "throughput" else self.blocks

    def add_block(self, reply: dict, round_index: int, lifetime: int) -> None:
        self.block_rounds.append(round_index)
        self.block_lifetimes.append(lifetime)
        self.completed += reply["completed"]
        self.wall_s += reply["wall_s"]
        if self.case.mode != "throughput":
            self.blocks.append(reply["samples_ms"])
            self.device_ms.extend(reply.get("device_ms") or [])
        else:
            self.throughputs.append(self.case.batch * reply["completed"] / reply["wall_s"])
            self.concurrency = reply["concurrency"]

    def note_peak(self, peak_mb: float) -> None:
        self.peak_rss_mb = max(self.peak_rss_mb, peak_mb)
        if self.reused_export:
            self.peak_reused_mb = max(self.peak_reused_mb, peak_mb)

    def fail(self, status: str, error: str, traceback: str | None = None) -> None:
        self.status, self.error, self.traceback = status, error, traceback

    def ci(self) -> tuple[float, float] | None:
        """The rounds-bootstrap 95% CI of the median, once per new block (None before two)."""
        values = self.values
        if self._ci[0] != len(values):
            self._ci = (len(values), rounds_ci(values, seed=self.seed) if len(values) >= 2 else None)
        return self._ci[1]

    def spread(self) -> float:
        """The CI's half-width relative to the median: what ``--target-ci`` is compared with."""
        interval = self.ci()
        median = float(np.median([v for block in self.values for v in block])) if self.values else 0.0
        return (interval[1] - interval[0]) / 2 / median if interval and median > 0 else math.inf

    def converged(self, plan: RoundsPlan) -> bool:
        measured_s = self.wall_s if self.case.mode == "throughput" else sum(map(sum, self.blocks)) / 1e3
        return (self.completed >= plan.min_iters and measured_s >= plan.min_duration_s
                and self.spread() <= plan.target_ci)

    def record(self, plan: RoundsPlan) -> Result:
        result = Result(self.case, self.status, self.error, traceback=self.traceback)
        loaded = self.loaded or {}
        if loaded:
            result.model = _typed(ModelInfo, loaded.get("model"))
            result.cold_start = _typed(ColdStart, loaded.get("cold_start"))
            result.artifact = _typed(ArtifactRecord, loaded.get("artifact"))
        if not (self.blocks or self.throughputs):
            if result.artifact:
                result.memory = Memory(artifact_bytes=result.artifact.size_bytes)
            return result
        finished = self.finished or {}
        result.samples_ms = [round(s, 6) for block in self.blocks for s in block]
        result.samples_round = [r for block, r in zip(self.blocks, self.block_rounds) for _ in block]
        if result.samples_ms:
            result.latency_ms = LatencyStats.from_dict(summarize_rounds(self.blocks, plan.seed, self.ci()))
            if self.device_ms:
                result.device_latency_ms = LatencyStats.from_dict(summarize_rounds([self.device_ms]))
        result.throughput_ips = self.case.batch * self.completed / self.wall_s
        result.concurrency = Concurrency.from_dict({**(self.concurrency or {"streams": 1, "requests": 1}),
                                                    "completed": self.completed, "wall_s": self.wall_s})
        result.precision_effective = finished.get("precision_effective")
        result.parity = _typed(Parity, finished.get("parity"))
        result.quantization = _typed(Quantization, finished.get("quantization"))
        result.backend = finished.get("backend")
        result.memory = self._memory(loaded, finished, result.artifact)
        result.rounds = RoundsInfo(blocks=len(self.block_rounds), lifetimes=len(set(self.block_lifetimes)),
                                   block_lifetimes=self.block_lifetimes, inferences_per_block=loaded.get("block_n"),
                                   ci95_half_width=self.spread(), converged=self.converged(plan))
        if self.case.mode == "throughput":
            result.throughput_blocks_ips = self.throughputs
        if self.status != "ok":  # what it finished stays for reading, but it is no result
            result.latency_ms = result.device_latency_ms = result.throughput_ips = None
        return result

    def _memory(self, loaded: dict, finished: dict, artifact: ArtifactRecord | None) -> Memory:
        before, after = loaded.get("rss_before_load_mb"), loaded.get("rss_after_load_mb")
        scope = "from model load" if loaded.get("peak_reset") else "whole case process"
        if self.peak_reused_mb:
            scope += ", export reused"
        elif (loaded.get("cold_start") or {}).get("export_cache_hit") is False:
            scope += EXPORT_INCLUDED
        return Memory.from_dict({
            "peak_rss_mb": (self.peak_reused_mb or self.peak_rss_mb) or None, "peak_scope": scope,
            "rss_before_load_mb": before, "rss_after_load_mb": after,
            "load_added_mb": after - before if after is not None and before is not None else None,
            "artifact_bytes": artifact.size_bytes if artifact else None, **(finished.get("gpu_memory") or {})})


NOT_EVALUATED = "bound input"  # an INT8 result's parity inputs when its evaluation did not run


def with_evaluation(result: Result, reply: dict | None) -> None:
    """A case's evaluation put into its result: INT8's parity on the evaluation inputs (in place
    of the parity on its bound input), and the top-1 on a labelled folder. An INT8 result with
    no evaluation (it failed, or the sweep was stopped first) says its parity is on the bound
    input only."""
    try:
        parity = _typed(Parity, reply.get("parity")) if reply and "error" not in reply else None
        accuracy = _typed(Accuracy, reply.get("accuracy")) if reply and "error" not in reply else None
    except RecordError:  # an evaluation process that replied with something no result can hold
        parity = accuracy = None
    if result.case.precision == "int8" and result.parity:
        result.parity = parity or replace(result.parity, images=result.case.batch, inputs=NOT_EVALUATED,
                                          per_image=None)
    result.accuracy = accuracy


def _typed(kind: type[Record], data: dict | None):
    """A part of a case process's reply as its record (None stays None)."""
    return kind.from_dict(data, kind.__name__) if data is not None else None


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


def mark_best_streams(results: list[Result]) -> None:
    """In each ``--streams`` grid of a throughput case (the same case with 1, 2, 4... streams),
    the point with the most images/s is ``best_streams``; the others are not."""
    grids: dict[Case, list[Result]] = {}
    for result in results:
        if result.ok and result.case.mode == "throughput" and result.throughput_ips:
            grids.setdefault(replace(result.case, streams=0), []).append(result)
    for grid in grids.values():
        if len(grid) > 1:
            best = max(grid, key=lambda r: r.throughput_ips)
            for result in grid:
                result.best_streams = result is best


def fused_speedups(runs: list[CaseRun]) -> dict[Case, Ratio]:
    """For each fused case with a train-time twin: train over fused, paired (speedups)."""
    return speedups(runs, "form", "fused", "train")


def int8_speedups(runs: list[CaseRun]) -> dict[Case, Ratio]:
    """For each INT8 case with an fp32 twin: fp32 over INT8, paired (speedups)."""
    return speedups(runs, "precision", "int8", "fp32")


def speedups(runs: list[CaseRun], axis: str, value: str, over: str) -> dict[Case, Ratio]:
    """For each case whose ``axis`` is ``value`` and that has a twin where it is ``over`` (all
    else the same): the twin's latency over the case's (images/s the other way round) from the
    blocks of each round, paired, with its 95% CI (lifetimes resampled first)."""
    by_case = {run.case: run for run in runs}
    found = {}
    for run in runs:
        twin = by_case.get(replace(run.case, **{axis: over}))
        if getattr(run.case, axis) != value or not twin or not (run.blocks or run.throughputs):
            continue
        mine = dict(zip(run.block_rounds, zip(run.values, run.block_lifetimes)))
        theirs = dict(zip(twin.block_rounds, twin.values))
        common = [r for r in mine if r in theirs]
        if len(common) < 2:
            continue
        own = [float(np.median(mine[r][0])) for r in common]
        twins = [float(np.median(theirs[r])) for r in common]
        numerator, denominator = (own, twins) if run.case.mode == "throughput" else (twins, own)
        groups = [mine[r][1] for r in common]
        ratio = paired_ratio(numerator, denominator, groups if len(set(groups)) > 1 else None)
        found[run.case] = Ratio.from_dict({"over": over, **ratio})
    return found


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
        self.stops: list[str] = []  # why each batch's rounds ended
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


def server_record(case: Case, result: Result, replies: dict, plan: RoundsPlan) -> Result:
    """A served case's full record: what the process said of its load and finish, as any case's
    record has it, with the latencies of the trial shown and the server's figures."""
    if not result.ok:
        return result
    run = CaseRun(case, seed=plan.seed)
    run.loaded, run.finished = replies["loaded"], replies["finished"]
    run.peak_rss_mb = max(replies["loaded"]["peak_rss_mb"], replies["finished"]["peak_rss_mb"])
    server = result.server
    run.add_block({"samples_ms": replies["latencies_ms"], "completed": server.requests,
                   "wall_s": server.requests / server.qps_achieved}, 0, 0)
    record = run.record(plan)
    record.server, record.rounds, record.samples_round = server, None, None
    record.concurrency = Concurrency(case.streams, case.streams, server.requests, run.wall_s, case.threads_per_stream)
    return record


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
