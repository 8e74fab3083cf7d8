"""How good is the gate on this machine? ``python -m repnext_bench.gate.proof`` runs many
gates with the default plan and counts their verdicts:

- A/A: both arms identical: any ``fail`` is a false alarm;
- +5% and +10%: the candidate does a known extra amount of work (a spin of 5% or 10% of
  its own median inference time after each inference): the share of ``fail`` is the power;
- 224 vs 230 pixels: real extra work (13.7% more MACs for M0, from the stride-2 rounding).

It prints one line per gate and a summary, and writes everything to a JSON file.
"""
from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path

from ..core.cases import Case
from ..measure.timing import TimingPlan
from ..run.lifecycle import Settings
from .paired import ArmSpec, GatePlan, run_gate

SCENARIOS = {  # name -> (candidate slowdown, candidate resolution)
    "A/A": (0.0, None),
    "+5%": (0.05, None),
    "+10%": (0.10, None),
    "224 vs 230 px": (0.0, 230),
}


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--counts", default="30,20,20,10", help="gates per scenario: A/A, +5%%, +10%%, 224 vs 230")
    parser.add_argument("--variant", default="M0")
    parser.add_argument("--backend", default="onnxruntime")
    parser.add_argument("--output", default="reports/gate-proof.json")
    args = parser.parse_args(argv)
    counts = [int(c) for c in args.counts.split(",")]
    settings = Settings(plan=TimingPlan(warmup_s=0.3, warmup_iters=3, min_duration_s=0, min_iters=1))
    plan = GatePlan()
    base_case = Case(args.variant, "fused", args.backend, "cpu", "fp32", 1, 224, 1, "latency")
    records = []
    for (name, (slowdown, resolution)), count in zip(SCENARIOS.items(), counts):
        for index in range(count):
            candidate_case = Case.from_dict({**base_case.to_dict(), "resolution": resolution or 224})
            run_plan = GatePlan(pairs=plan.pairs, rounds=plan.rounds, block_s=plan.block_s, seed=index)
            record = run_gate(ArmSpec("baseline", sys.executable, base_case, settings),
                              ArmSpec("candidate", sys.executable, candidate_case, settings, slowdown), run_plan)
            records.append({"scenario": name, "verdict": record["verdict"], "estimate": record["estimate"],
                            "duration_s": record["duration_s"]})
            print(f"{name:14} {index + 1:3}/{count}  {record['verdict']:12} {record['why'][:70]}  "
                  f"{record['duration_s']:.0f} s", flush=True)
            Path(args.output).parent.mkdir(parents=True, exist_ok=True)
            Path(args.output).write_text(json.dumps({"plan": plan.to_dict(), "case": base_case.to_dict(),
                                                     "records": records}, indent=1))
    print(summary(records))
    return 0


def summary(records: list[dict]) -> str:
    lines = [f"{'scenario':14} {'gates':>5} {'fail':>5} {'pass':>5} {'inconcl.':>8} {'improved':>8} "
             f"{'median change':>13} {'s/gate':>6}"]
    for name in SCENARIOS:
        group = [r for r in records if r["scenario"] == name]
        if not group:
            continue
        count = {v: sum(r["verdict"] == v for r in group) for v in ("fail", "pass", "inconclusive", "improved")}
        changes = sorted(r["estimate"]["change"] for r in group)
        seconds = sorted(r["duration_s"] for r in group)
        lines.append(f"{name:14} {len(group):5} {count['fail']:5} {count['pass']:5} {count['inconclusive']:8} "
                     f"{count['improved']:8} {changes[len(changes) // 2]:+13.1%} {seconds[len(seconds) // 2]:6.0f}")
    return "\n".join(lines)


def timed_main() -> int:
    """``main`` and the time it took, as ``python -m repnext_bench.gate.proof`` prints it."""
    started = time.monotonic()
    code = main()
    print(f"total {time.monotonic() - started:.0f} s")
    return code


if __name__ == "__main__":
    sys.exit(timed_main())
