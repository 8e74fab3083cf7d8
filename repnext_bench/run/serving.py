"""``run --mode server``: one case's process serves Poisson arrivals at a fixed rate
(``--qps``), or at the rates a search tries to find the highest one whose p99 stays under a
bound (``--p99``). The arrival times are drawn here, seeded, and the case's process serves
them (:mod:`repnext_bench.measure.server`); the latencies come back and become the result.
"""
from __future__ import annotations

from collections.abc import Callable
from dataclasses import asdict, dataclass, replace

import numpy as np

from ..core.cases import Case
from ..core.records import Result
from ..measure.server import SearchPlan, SearchResult, Served, ServerStats, poisson_arrivals, search_qps, server_stats
from .case_process import CaseDied, CaseProcess
from .lifecycle import Settings

LOAD_BLOCK_S = 0.1  # the load measures how many inferences fill this long: what one takes
START_UTILISATION = 0.5  # the search's first rate: half of what the streams serve back to back


@dataclass(frozen=True)
class ServerPlan:
    qps: float | None = None  # a fixed rate, or
    p99_ms: float | None = None  # the bound whose highest rate the search finds
    requests: int = 1000  # per trial: arrivals drawn, so that a p99 rests on 10 of them
    seed: int = 0
    tolerance: float = 0.05
    max_trials: int = 12

    def __post_init__(self) -> None:
        """The one check of a server plan, from the command line or the API: a ValueError whose
        text is the usage line."""
        if (self.qps is None) == (self.p99_ms is None):
            raise ValueError("--mode server takes a rate (--qps 200) or a latency bound (--p99 10ms), one of them")
        if self.qps is not None and not 0 < self.qps < float("inf"):
            raise ValueError(f"--qps {self.qps:g} is not valid: use a finite rate above 0 (requests per second)")
        if self.p99_ms is not None and not 0 < self.p99_ms < float("inf"):
            raise ValueError(f"--p99 {self.p99_ms:g} ms is not valid: use a finite bound above 0 (e.g. 10ms)")
        if self.requests < 100:
            raise ValueError(f"--requests {self.requests} is not valid: use at least 100 (a p99 rests on 1 in 100)")

    def to_dict(self) -> dict:
        return asdict(self)


class ServeFailed(Exception):
    pass


def run_server_case(case: Case, settings: Settings, plan: ServerPlan, time_limit_s: float,
                    on_trial: Callable[[ServerStats], None] | None = None) -> tuple[Result, dict]:
    """The result of ``case`` in server mode, and the process's load and finish replies (what
    ran, its output, its memory: the sweep's record of a case reads them); ``on_trial`` hears
    of each rate served."""
    process = CaseProcess(case, settings, time_limit_s)
    try:
        process.send("load", block_s=LOAD_BLOCK_S)
        loaded = process.receive()
        if "skipped" in loaded or "error" in loaded:
            return _not_served(case, loaded), loaded
        served: dict[float, Served] = {}

        def trial(qps: float, arrivals: np.ndarray) -> ServerStats:
            reply = process.ask("serve", arrivals=arrivals.tolist())
            if "error" in reply:
                raise ServeFailed(reply["error"])
            served[qps] = Served(arrivals, np.asarray(reply["starts"]), np.asarray(reply["ends"]))
            stats = server_stats(served[qps], qps, plan.p99_ms)
            if on_trial:
                on_trial(stats)
            return stats

        if plan.qps is not None:
            chosen, search = trial(plan.qps, poisson_arrivals(plan.qps, plan.seed, count=plan.requests)), None
        else:
            start = START_UTILISATION * case.streams / loaded["inference_s"]
            found = search_qps(trial, SearchPlan(bound_ms=plan.p99_ms, start_qps=start, requests=plan.requests,
                                                 tolerance=plan.tolerance, max_trials=plan.max_trials,
                                                 seed=plan.seed))
            chosen = found.best or found.curve[0]  # none met the bound: the lowest rate tried, shown as missing it
            search = found.record(plan.p99_ms, start)
        finished = process.ask("finish")
        if "error" in finished:
            raise ServeFailed(finished["error"])
    except (CaseDied, ServeFailed) as exc:
        return Result(case, "failed", str(exc)), {}
    finally:
        process.stop()
    record = replace(chosen, search=search)
    return Result(case, "ok", server=record), {"loaded": loaded, "finished": finished,
                                                 "latencies_ms": served[chosen.qps_offered].latencies_ms.tolist()}


def interrupted_record(case: Case, trials: list[ServerStats], plan: ServerPlan) -> Result:
    """A case whose search was interrupted: failed, showing its last trial, with every trial it
    finished as the curve (no answer: the search did not end)."""
    error = f"interrupted after {len(trials)} trial{'s' if len(trials) != 1 else ''}"
    if not trials:
        return Result(case, "failed", error)
    search = SearchResult(None, trials, "interrupted").record(plan.p99_ms) if plan.p99_ms else None
    return Result(case, "failed", error, server=replace(trials[-1], search=search))


def _not_served(case: Case, reply: dict) -> Result:
    if "skipped" in reply:
        return Result(case, "skipped", reply["skipped"])
    return Result(case, "failed", reply["error"], traceback=reply.get("traceback"))
