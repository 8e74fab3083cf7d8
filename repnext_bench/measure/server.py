"""The server scenario: requests arrive as a seeded Poisson process at a set rate, wait in one
first-in first-out queue, and are served by ``workers`` threads (the streams); each request's
latency runs from its arrival to the end of its inference, so time spent queued counts.

There is no separate load-generator thread that could fall behind: the arrival times are fixed
in advance on a monotonic clock, and a free worker takes the next request in arrival order,
waits for its arrival time if it is still ahead, and serves it. A request that arrives while
every worker is busy is late by exactly as long as it waited, however long that is, so a stall
shows in the latency of every request that arrived during it (no coordinated omission).
"""
from __future__ import annotations

import math
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass

import numpy as np

from ..core.records import ServerRecord
from .stats import quantile_ci95

SPIN_S = 0.0005  # the last stretch of a wait for an arrival is spun, not slept: sleep overshoots


def poisson_arrivals(qps: float, seed: int, duration_s: float | None = None, count: int | None = None) -> np.ndarray:
    """Arrival offsets in seconds from the start: exponential gaps of mean ``1/qps``, for
    ``duration_s`` seconds or ``count`` requests (whichever is given; both: the first reached)."""
    if qps <= 0 or not (duration_s or count):
        raise ValueError("a rate above 0 and a duration or a count")
    rng = np.random.default_rng(seed)
    expected = count or math.ceil(qps * duration_s * 1.2 + 10)
    offsets = np.cumsum(rng.exponential(1.0 / qps, expected))
    while duration_s and offsets[-1] < duration_s and not count:  # rare: more arrivals than 1.2x the mean
        offsets = np.concatenate([offsets, offsets[-1] + np.cumsum(rng.exponential(1.0 / qps, expected))])
    if duration_s:
        offsets = offsets[offsets < duration_s]
    return offsets[:count] if count else offsets


@dataclass(frozen=True)
class Served:
    """One run of the scenario: each request's arrival, start and end (seconds from the start)."""

    arrivals: np.ndarray
    starts: np.ndarray
    ends: np.ndarray

    @property
    def latencies_ms(self) -> np.ndarray:
        return (self.ends - self.arrivals) * 1e3

    @property
    def waits_ms(self) -> np.ndarray:
        return (self.starts - self.arrivals) * 1e3


def serve(run: Callable[[int], None], arrivals: np.ndarray, workers: int = 1,
          clock: Callable[[], float] = time.perf_counter) -> Served:
    """Serve requests arriving at ``arrivals`` (seconds from now) with ``workers`` threads, each
    calling ``run(worker_index)`` for one request (a worker's own input and output buffers)."""
    if workers < 1:
        raise ValueError("at least one worker")
    total = len(arrivals)
    starts, ends = np.zeros(total), np.zeros(total)
    lock = threading.Lock()
    taken = [0]
    failure: list[BaseException] = []
    origin = clock()

    def worker(index: int) -> None:
        while not failure:
            with lock:
                request = taken[0]
                taken[0] += 1
            if request >= total:
                return
            due = origin + arrivals[request]
            wait = due - clock()
            if wait > SPIN_S:
                time.sleep(wait - SPIN_S)
            while clock() < due:  # the rest spun, giving the GIL away each time: another worker
                time.sleep(0)  # finishing an inference must not wait for this one to be let go
            starts[request] = clock() - origin
            try:
                run(index)
            except BaseException as exc:  # the first failure stops every worker and goes to the caller
                failure.append(exc)
                return
            ends[request] = clock() - origin

    _in_threads(worker, workers, failure)
    return Served(np.asarray(arrivals, dtype=float), starts, ends)


def _in_threads(target: Callable[[int], None], count: int, failure: list[BaseException]) -> None:
    """``target(i)`` in ``count`` threads at once; the first failure any of them noted is raised."""
    threads = [threading.Thread(target=target, args=(i,), daemon=True) for i in range(count)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    if failure:
        raise failure[0]


ServerStats = ServerRecord  # one trial's figures are what a result records of the trial it shows


def server_stats(served: Served, qps: float, bound_ms: float | None = None) -> ServerStats:
    """Latency percentiles (arrival to end), the rate achieved (requests over the time from the
    first arrival to the last end), and how many missed ``bound_ms``."""
    latencies = served.latencies_ms
    p50, p90, p99 = np.percentile(latencies, [50, 90, 99])
    span = served.ends.max() - served.arrivals.min()
    return ServerStats(
        qps_offered=qps, qps_achieved=len(latencies) / span if span > 0 else math.inf, requests=len(latencies),
        p50_ms=float(p50), p90_ms=float(p90), p99_ms=float(p99), max_ms=float(latencies.max()),
        mean_wait_ms=float(served.waits_ms.mean()), bound_ms=bound_ms,
        missed=int((latencies > bound_ms).sum()) if bound_ms is not None else None,
        p99_ci_ms=list(quantile_ci95(np.sort(latencies), 0.99)),
        service_p99_ms=float(np.percentile((served.ends - served.starts) * 1e3, 99)))


def md1_mean_wait(rho: float, service_s: float) -> float:
    """Mean time in the queue of an M/D/1 queue (Pollaczek-Khinchine): rho * D / (2 (1 - rho))."""
    return rho * service_s / (2 * (1 - rho))


@dataclass(frozen=True)
class SearchPlan:
    """Find the highest rate whose p99 stays under the bound: double the rate from ``start_qps``
    until the bound is missed (or halve it until it is met), then bisect, on a log scale, between
    the highest rate that met the bound and the lowest that missed it, until they are within
    ``tolerance`` of each other (``converged``) or ``max_trials`` trials have run (``trials``).
    A trial meets the bound when its p99 is under it and it served about what was offered (an
    overloaded queue's p99 says only how long the trial lasted). When the p99 of the
    inferences alone (no queue) is over the bound, no rate can meet it: the search ends
    (``unreachable``); it also ends once its trials have lasted ``max_search_s`` (``time``).
    Each trial serves ``requests`` arrivals, or as many as arrive in ``max_trial_s`` if fewer,
    but at least ``min_requests`` (what a p99 needs, however long they take). The answer is
    the highest rate that met the bound below the lowest that missed it."""

    bound_ms: float
    start_qps: float
    requests: int = 1000
    min_requests: int = 100
    max_trial_s: float = 30.0
    tolerance: float = 0.05
    max_trials: int = 12
    max_search_s: float = 300.0
    seed: int = 0

    def arrivals(self, qps: float, trial: int) -> np.ndarray:
        count = int(min(self.requests, max(self.min_requests, qps * self.max_trial_s)))
        return poisson_arrivals(qps, self.seed + trial, count=count)


@dataclass
class SearchResult:
    best: ServerStats | None  # the highest rate that met the bound (None: no rate tried met it)
    curve: list[ServerStats]  # every trial, by rate
    stopped: str  # "converged", "trials", "unreachable" or "time"

    def record(self, bound_ms: float, start_qps: float | None = None) -> dict:
        """The ``search`` of a result's ``server`` figures."""
        return {"bound_ms": bound_ms, "start_qps": start_qps, "stopped": self.stopped,
                "best_qps": self.best.qps_offered if self.best else None,
                "curve": [stats.to_dict() for stats in sorted(self.curve, key=lambda s: s.qps_offered)]}


def search_qps(trial: Callable[[float, np.ndarray], ServerStats], plan: SearchPlan,
               on_trial: Callable[[ServerStats], None] | None = None) -> SearchResult:
    """The search of :class:`SearchPlan`; ``trial(qps, arrivals)`` serves one rate."""
    met: ServerStats | None = None
    missed: ServerStats | None = None
    curve: list[ServerStats] = []
    qps = plan.start_qps

    def result(stopped: str) -> SearchResult:
        below = [s for s in curve if meets(s) and (missed is None or s.qps_offered < missed.qps_offered)]
        best = max(below, key=lambda s: s.qps_offered, default=None)
        return SearchResult(best, sorted(curve, key=lambda s: s.qps_offered), stopped)

    def meets(stats: ServerStats) -> bool:
        return stats.p99_ms <= plan.bound_ms and not stats.overloaded()

    spent = 0.0
    for index in range(plan.max_trials):
        arrivals = plan.arrivals(qps, index)
        stats = trial(qps, arrivals)
        spent += float(arrivals[-1]) if len(arrivals) else 0.0
        curve.append(stats)
        if on_trial:
            on_trial(stats)
        if meets(stats):
            met = stats if met is None or qps > met.qps_offered else met
        else:
            missed = stats if missed is None or qps < missed.qps_offered else missed
            if stats.service_p99_ms is not None and stats.service_p99_ms > plan.bound_ms:
                return result("unreachable")
        if met and missed and missed.qps_offered <= met.qps_offered * (1 + plan.tolerance):
            return result("converged")
        if spent > plan.max_search_s:
            return result("time")
        if met and missed:
            qps = math.sqrt(met.qps_offered * missed.qps_offered)
        else:
            qps = qps * 2 if missed is None else qps / 2
    return result("trials")


def closed_loop(runs: list[Callable[[], None]], min_s: float, min_count: int = 1,
                clock: Callable[[], float] = time.perf_counter) -> tuple[int, float]:
    """Throughput with ``len(runs)`` requests in flight: a thread per stream runs inferences back
    to back until ``min_s`` has passed and ``min_count`` are done in all. (completed, wall seconds
    from the start to the last inference's end)."""
    done = [0] * len(runs)
    failure: list[BaseException] = []
    start = clock()
    deadline = start + min_s
    ends = [start] * len(runs)

    def stream(index: int) -> None:
        run = runs[index]
        try:
            while not failure and (clock() < deadline or sum(done) < min_count):
                run()
                done[index] += 1
            ends[index] = clock()
        except BaseException as exc:
            failure.append(exc)

    _in_threads(stream, len(runs), failure)
    return sum(done), max(ends) - start
