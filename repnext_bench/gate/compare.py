"""Comparing two stored ``run`` reports case by case, from their raw samples.

Two reports come from two jobs: other processes, maybe other machines, and noise that no
statistic inside one report can see. So the verdict needs a change confidently above a
threshold wide enough for that (default 10%), and the differences between the two
environments are listed, since they explain many "regressions".
"""
from __future__ import annotations

from ..core.records import read_results
from ..measure.ratios import unpaired_change
from .stats import Thresholds, verdict

_ENVIRONMENT_KEYS = (("cpu", "model"), ("cpu", "logical_cores"), ("cpu", "usable_cores"), ("memory_gib",), ("os",),
                     ("python",), ("hostname",))
P_VALUE = 0.05  # a fail also needs the rank test to reject "same distribution" at this level


def environment_differences(base: dict, new: dict) -> list[str]:
    """What differs between two environments (CPU, libraries, Python...), one line each."""
    lines = []
    for path in _ENVIRONMENT_KEYS:
        a, b = base, new
        for key in path:
            a, b = (a or {}).get(key), (b or {}).get(key)
        if a != b:
            lines.append(f"{'.'.join(path)}: {a} -> {b}")
    libraries = sorted(set(base.get("libraries", {})) | set(new.get("libraries", {})))
    for name in libraries:
        a, b = base.get("libraries", {}).get(name), new.get("libraries", {}).get(name)
        if a != b:
            lines.append(f"{name}: {a} -> {b}")
    return lines


def machine_differences(base: dict, new: dict, backend: str | None = None) -> list[str]:
    """What makes two reports' timings incomparable: the machine's identity fields and the
    runtime versions (those ``backend``'s cases run on, when one is named) that differ."""
    from ..system.identity import differences, identity, runtime_differences

    return differences(identity(base), identity(new)) + runtime_differences(base, new, backend)


def compare_reports(base: dict, new: dict, threshold: float = 0.10, seed: int = 0, cross_machine: bool = False) -> dict:
    """Match cases, estimate each change with its CI, give each a verdict; none on timing (each
    row inconclusive, with the reason) when the machines or runtimes differ, unless
    ``cross_machine`` asks for the comparison all the same."""
    thresholds = Thresholds(fail_above=threshold, ci_above=threshold, pass_below=threshold)
    differ = machine_differences(base["environment"], new["environment"])
    withheld_rows = 0
    base_cases = {r.case: r for r in read_results(base["results"])}
    new_cases = {r.case: r for r in read_results(new["results"])}
    rows, skipped = [], []
    for key, new_result in new_cases.items():
        base_result = base_cases.get(key)
        if base_result is None:
            continue
        samples = (base_result.samples, new_result.samples)
        if not (base_result.ok and new_result.ok):
            skipped.append({"case": key.label, "why": f"baseline {base_result.status}, candidate {new_result.status}"})
            continue
        if min(map(len, samples)) < 2:
            skipped.append({"case": key.label, "why": "no latency samples (a throughput-mode case?)"})
            continue
        estimate = unpaired_change(*samples, seed=seed)
        outcome, why = verdict(estimate, thresholds)
        mine = machine_differences(base["environment"], new["environment"], key.backend)
        if mine and not cross_machine:
            withheld_rows += 1
            outcome, why = "inconclusive", (f"{why}; no verdict: different machines or runtimes ({'; '.join(mine)}); "
                                            "--cross-machine compares them anyway")
        if outcome in ("fail", "improved") and estimate.p_value >= P_VALUE:
            outcome = "inconclusive"
            why = f"{why}; but the rank test does not tell them apart (p={estimate.p_value:.2f})"
        rows.append({"case": key.label, "case_dict": key.to_dict(), "baseline_ms": base_result.p50_ms,
                     "candidate_ms": new_result.p50_ms, "estimate": estimate.to_dict(),
                     "verdict": outcome, "why": why})
    return {
        "kind": "compare",
        "thresholds": thresholds.to_dict(),
        "rows": rows,
        "only_in_baseline": [k.label for k in base_cases if k not in new_cases],
        "only_in_candidate": [k.label for k in new_cases if k not in base_cases],
        "not_compared": skipped,
        "environment_differences": environment_differences(base["environment"], new["environment"]),
        "machine_differences": differ,
        "cross_machine": cross_machine,
        "verdict_withheld": (f"{withheld_rows} of {len(rows)} cases: different machines or runtimes"
                             if withheld_rows else None),
    }


def exit_code(rows: list[dict]) -> int:
    """0 pass (or improved), 1 any regression, 3 inconclusive and no regression."""
    verdicts = {row["verdict"] for row in rows}
    return 1 if "fail" in verdicts else 3 if "inconclusive" in verdicts else 0
