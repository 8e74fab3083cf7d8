"""One case's state across a sweep's rounds (CaseRun: its blocks, rounds and lifetimes, what its
processes said), and the result records it becomes: the evaluation folded in, the best point of
a streams grid, the paired speedups of twins (train and fused, fp32 and INT8), a served case."""

from __future__ import annotations

import math
from dataclasses import dataclass, field, replace

import numpy as np

from ..core.cases import Case
from ..core.records import (
    EXPORT_INCLUDED,
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
    Status,
)
from ..measure.ratios import paired_ratio
from ..measure.rounds import rounds_ci, summarize_rounds
from ..measure.timing import RoundsPlan
from .case_process import CaseProcess


def case_record(case: Case, status: Status, error: str | None) -> Result:
    """The record of a case that was not measured (or not yet): its status and why."""
    return Result(case, status, error)


@dataclass
class CaseRun:
    """One case's state across the rounds."""

    case: Case
    process: CaseProcess | None = None
    status: Status = "ok"
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

    def fail(self, status: Status, error: str, traceback: str | None = None) -> None:
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


