"""The timing loop: warm up by time and count, then measure until both a minimum duration
and a minimum number of iterations are reached. The timed region is the bare call."""
from __future__ import annotations

import math
import time
from collections.abc import Callable
from dataclasses import asdict, dataclass


@dataclass(frozen=True)
class TimingPlan:
    warmup_s: float = 0.5
    warmup_iters: int = 3
    min_duration_s: float = 1.0
    min_iters: int = 10
    max_duration_s: float = 60.0  # a hard stop for very slow cases, whatever min_iters says

    def __post_init__(self) -> None:
        if min(self.warmup_s, self.min_duration_s) < 0 or min(self.warmup_iters, self.min_iters) < 0:
            raise ValueError("warm-up and measuring limits must not be negative")
        if self.min_iters < 1 and self.min_duration_s <= 0:
            raise ValueError("measure at least one iteration or for some time")


def warm_up(run: Callable[[], object], plan: TimingPlan) -> list[float]:
    """Run until both the warm-up time and count are reached; returns each call's seconds."""
    clock = time.perf_counter
    start = last = clock()
    took: list[float] = []
    while len(took) < plan.warmup_iters or last - start < plan.warmup_s:
        run()
        now = clock()
        took.append(now - last)
        last = now
    return took


def block_size(warm: list[float], block_s: float) -> tuple[int, float]:
    """(inferences that fill ``block_s``, seconds per inference) from the warm-up's calls: the
    median of its second half, when the first calls' one-off costs are behind it."""
    import statistics

    inference_s = statistics.median(warm[len(warm) // 2:]) if warm else block_s
    return max(1, math.ceil(block_s / inference_s)) if inference_s > 0 else 1, inference_s


def measure(run: Callable[[], object], plan: TimingPlan,
            after: Callable[[], object] | None = None) -> tuple[list[float], float]:
    """Per-iteration latencies in milliseconds, and the wall time of the whole loop in seconds.
    ``after`` runs after each timed call, outside the timed region (e.g. to read GPU events);
    the wall time includes it."""
    clock = time.perf_counter_ns
    samples: list[int] = []
    append = samples.append
    min_ns = int(plan.min_duration_s * 1e9)
    max_ns = int(plan.max_duration_s * 1e9)
    start = clock()
    elapsed = 0
    while (len(samples) < plan.min_iters or elapsed < min_ns) and (elapsed < max_ns or not samples):
        t0 = clock()
        run()
        t1 = clock()
        append(t1 - t0)
        if after:
            after()
            t1 = clock()
        elapsed = t1 - start
    return [s / 1e6 for s in samples], elapsed / 1e9


def timed_runs(run: Callable[[], object], count: int, warmup: int = 3,
               after: Callable[[], object] | None = None) -> list[float]:
    """``warmup`` untimed calls, then ``count`` timed ones (milliseconds each); ``after`` runs
    after each timed call, outside the timed region (e.g. to read a profiler's counters)."""
    for _ in range(warmup):
        run()
    clock, samples = time.perf_counter_ns, []
    for _ in range(count):
        start = clock()
        run()
        samples.append((clock() - start) / 1e6)
        if after:
            after()
    return samples


SWEEP_WARMUP_S = 0.1  # each case process's warm-up in a sweep (docs/sweeps.md: what it was measured against)


@dataclass(frozen=True)
class RoundsPlan:
    """How a sweep measures: rounds of one block per case, in a shuffled order, each case's
    process restarted every ``restart_every`` rounds, until the CIs converge or a limit is met.
    ``run``'s options take their defaults from here."""

    block_s: float = 0.12  # seconds of inferences in one block (at least one inference)
    min_rounds: int = 16
    restart_every: int = 8  # rounds per process lifetime
    target_ci: float = 0.05  # stop when every case's CI half-width is within 5% of its median
    budget_s: float = 45.0  # ... or before the rounds and restarts would take longer; 2 rounds at least
    max_wall_s: float | None = None  # ... or before the whole sweep (first loads included) would take longer
    min_duration_s: float = 1.0  # per case: at least this much measured time in all
    min_iters: int = 10  # per case: at least this many inferences in all
    seed: int = 0
    max_live: int | None = None  # cases alive at once (default: what the memory allows)

    def __post_init__(self) -> None:
        """The one check of a plan, from the command line or the API: a ValueError whose text is
        the usage line, in the options' names."""
        if self.block_s <= 0 or self.min_rounds < 1 or self.restart_every < 1 or self.target_ci <= 0 \
                or self.budget_s <= 0 or self.min_duration_s < 0 or self.min_iters < 1 \
                or (self.max_wall_s is not None and self.max_wall_s <= 0):
            wall = "none" if self.max_wall_s is None else format(self.max_wall_s, "g")
            raise ValueError(f"--block, --target-ci, --budget and --max-wall must be > 0, --min-rounds and "
                             f"--restart-every >= 1, --duration >= 0 and --min-iters >= 1 (got --block "
                             f"{self.block_s:g}, --target-ci {self.target_ci * 100:g}%, --budget {self.budget_s:g}, "
                             f"--max-wall {wall}, --min-rounds {self.min_rounds}, --restart-every "
                             f"{self.restart_every}, --duration {self.min_duration_s:g}, --min-iters {self.min_iters})")

    def to_dict(self) -> dict:
        return asdict(self)
