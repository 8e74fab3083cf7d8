"""Same answer twice? The default sweep run twice back to back, compared case by case.

    python -m repnext_bench.repeat [--output-dir reports/repeat] [-- <extra repnext-bench run options>]
    python -m repnext_bench.repeat --drift 120 [--variant M5]

The second form is an A/A of the machine itself: one case (fused, ONNX Runtime, 224 px, the
usable cores) in one process, timed without a pause for that many seconds, and its median in
each 10 s window. What it moves between windows is the machine's drift, which no sweep
design removes.

Runs ``repnext-bench run`` (the default sweep, or with the options after ``--``) twice, one
right after the other, each in a fresh interpreter with the same export cache, and prints for
every case the two p50s and their difference, the two fused-over-train speedups (with their
95% CIs) and their difference, and each run's wall time and measurement efficiency: its
rounds, where its wall clock went (preparing, measuring) and the share of it in timed
inferences. It checks the
targets a sweep should meet on a shared machine: every p50 within 10% between the runs, every
speedup within 5%, its two CIs overlapping and never on opposite sides of 1.0. Exit code 1
when one is missed.
"""
from __future__ import annotations

import argparse
import subprocess
import sys
import time
from pathlib import Path

from ..core.records import Result, read_results
from ..report.results import ratio_text
from ..report.schema import read_report

P50_TOLERANCE = 0.10
SPEEDUP_TOLERANCE = 0.05


def _run(path: Path, extra: list[str]) -> float:
    start = time.monotonic()
    done = subprocess.run([sys.executable, "-m", "repnext_bench", "run", "--quiet", "--output", str(path), *extra],
                          stdout=subprocess.DEVNULL)
    if done.returncode not in (0, 1):
        raise SystemExit(f"repnext-bench run exited with {done.returncode}")
    return time.monotonic() - start


def _by_case(path: Path) -> dict[str, Result]:
    return {r.label: r for r in read_results(read_report(path)["results"]) if r.ok}


def compare_runs(first: dict[str, Result], second: dict[str, Result]) -> tuple[list[str], bool]:
    """Lines of the comparison, and whether every target was met."""
    lines = [f"{'case':<48} {'p50 1st':>8} {'p50 2nd':>8} {'diff':>7}   {'speedup 1st':>19} {'speedup 2nd':>19} "
             f"{'diff':>7}"]
    met = True
    for label in first:
        if label not in second or not first[label].latency_ms:
            continue
        a, b = first[label], second[label]
        p50_a, p50_b = a.p50_ms, b.p50_ms
        diff = p50_b / p50_a - 1
        met &= abs(diff) <= P50_TOLERANCE
        line = f"{label:<48} {p50_a:8.3f} {p50_b:8.3f} {diff:+7.1%}"
        speed_a, speed_b = a.fused_speedup, b.fused_speedup
        if speed_a and speed_b:
            change = speed_b.ratio / speed_a.ratio - 1
            crossed = (speed_a.ratio - 1) * (speed_b.ratio - 1) < 0
            apart = speed_a.ci95[1] < speed_b.ci95[0] or speed_b.ci95[1] < speed_a.ci95[0]
            met &= abs(change) <= SPEEDUP_TOLERANCE and not crossed and not apart
            line += f"   {ratio_text(speed_a):>19} {ratio_text(speed_b):>19} {change:+7.1%}"
        lines.append(line)
    return lines, met


def efficiency(sweep: dict, wall_s: float) -> str:
    """A run's rounds and where its wall clock went (the command's, interpreter start included)."""
    if "timed_s" not in sweep:
        return f"{sweep.get('rounds', 0)} rounds in {wall_s:.1f} s"
    return (f"{sweep['rounds']} rounds in {wall_s:.1f} s: prepared {sweep['prepare_s']:.1f} s (exports "
            f"{sweep['export_s']:.1f} s), measured {sweep['measure_s']:.1f} s, timed inferences "
            f"{sweep['timed_s']:.1f} s = {sweep['timed_s'] / wall_s:.0%} of the wall clock")


def drift(seconds: float, variant: str, window_s: float = 10.0) -> list[float]:
    """The medians (ms) of one case's latency in successive windows of ``window_s``."""
    import numpy as np

    from ..core.cases import Case
    from ..measure.timing import TimingPlan, measure
    from ..run.lifecycle import Settings, open_case
    from ..system.machine import usable_cores

    case = Case(variant.upper(), "fused", "onnxruntime", "cpu", "fp32", 1, 224, usable_cores(), "latency")
    medians = []
    with open_case(case, Settings(TimingPlan())) as loaded:
        plan = TimingPlan(warmup_s=0, warmup_iters=0, min_duration_s=window_s, min_iters=1)
        for _ in range(max(1, round(seconds / window_s))):
            samples, _ = measure(loaded.session.run, plan)
            medians.append(float(np.median(samples)))
            print(f"{len(medians) * window_s:5.0f} s: median {medians[-1]:.2f} ms", flush=True)
    return medians


def main(argv: list[str] | None = None) -> int:
    argv = list(sys.argv[1:] if argv is None else argv)
    extra = argv[argv.index("--") + 1:] if "--" in argv else []
    own = argv[:argv.index("--")] if "--" in argv else argv
    parser = argparse.ArgumentParser(prog="python -m repnext_bench.repeat", description=__doc__.split("\n\n")[0])
    parser.add_argument("--output-dir", default="reports/repeat", help="where the two reports go")
    parser.add_argument("--drift", type=float, metavar="SECONDS", help="time one case this long instead (an A/A)")
    parser.add_argument("--variant", default="M5", help="the case --drift times (fused, ONNX Runtime)")
    args = parser.parse_args(own)
    if args.drift is not None and args.drift <= 0:
        print(f"error: --drift {args.drift:g} is not valid: use a number of seconds above 0", file=sys.stderr)
        return 2
    if args.drift:
        medians = drift(args.drift, args.variant)
        print(f"{args.variant.upper()} fused: slowest window over fastest {max(medians) / min(medians):.2f}x "
              f"over {len(medians)} windows")
        return 0
    folder = Path(args.output_dir)
    folder.mkdir(parents=True, exist_ok=True)
    paths = [folder / "first.json", folder / "second.json"]
    walls = [_run(path, extra) for path in paths]
    lines, met = compare_runs(*(_by_case(path) for path in paths))
    for line in lines:
        print(line)
    for name, path, wall in zip(("first", "second"), paths, walls):
        print(f"{name} run: {efficiency(read_report(path).get('sweep') or {}, wall)}")
    print(f"wall time: {walls[0]:.1f} s, then {walls[1]:.1f} s; targets (p50 within {P50_TOLERANCE:.0%}, speedup "
          f"within {SPEEDUP_TOLERANCE:.0%}, CIs overlapping, on the same side of 1.0): {'met' if met else 'MISSED'}")
    return 0 if met else 1


if __name__ == "__main__":
    sys.exit(main())
