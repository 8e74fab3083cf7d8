"""Same answer twice? The default sweep run twice back to back, compared case by case.

    python -m repnext_bench.repeat [--output-dir reports/repeat] [-- <extra repnext-bench run options>]

Runs ``repnext-bench run`` (the default sweep, or with the options after ``--``) twice, one
right after the other, each in a fresh interpreter with the same export cache, and prints for
every case the two p50s and their difference, the two fused-over-train speedups (with their
95% CIs) and their difference, and the wall time of each run. It checks the targets a sweep
should meet on a shared machine: every p50 within 10% between the runs, every speedup within
5% and never on opposite sides of 1.0. Exit code 1 when one is missed.
"""
from __future__ import annotations

import argparse
import subprocess
import sys
import time
from pathlib import Path

from .records import Result, read_results
from .report.results import ratio_text
from .report.schema import read_report

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
            met &= abs(change) <= SPEEDUP_TOLERANCE and not crossed
            line += f"   {ratio_text(speed_a):>19} {ratio_text(speed_b):>19} {change:+7.1%}"
        lines.append(line)
    return lines, met


def main(argv: list[str] | None = None) -> int:
    argv = list(sys.argv[1:] if argv is None else argv)
    extra = argv[argv.index("--") + 1:] if "--" in argv else []
    own = argv[:argv.index("--")] if "--" in argv else argv
    parser = argparse.ArgumentParser(prog="python -m repnext_bench.repeat", description=__doc__.split("\n\n")[0])
    parser.add_argument("--output-dir", default="reports/repeat", help="where the two reports go")
    args = parser.parse_args(own)
    folder = Path(args.output_dir)
    folder.mkdir(parents=True, exist_ok=True)
    paths = [folder / "first.json", folder / "second.json"]
    walls = [_run(path, extra) for path in paths]
    lines, met = compare_runs(*(_by_case(path) for path in paths))
    for line in lines:
        print(line)
    print(f"wall time: {walls[0]:.1f} s, then {walls[1]:.1f} s; targets (p50 within {P50_TOLERANCE:.0%}, speedup "
          f"within {SPEEDUP_TOLERANCE:.0%} and on the same side of 1.0): {'met' if met else 'MISSED'}")
    return 0 if met else 1


if __name__ == "__main__":
    sys.exit(main())
