"""How much the harness adds: ``repnext-bench run`` against the runtimes' own tools.

    python -m repnext_bench.crosscheck [--variant m0] [--form fused] [--resolution 224] [--rounds 4] [--seconds 5]

- OpenVINO, latency: the p50 of a default-length ``run`` of the case (interleaved rounds,
  LATENCY hint, one request) against the median that ``benchmark_app -hint latency`` reports
  for the same ONNX file, static shape, precision (f32) and threads. Within 5% passes.
- OpenVINO, throughput at batch 1: images/s of the best point of ``run --mode throughput``'s
  ``--streams auto`` grid against ``benchmark_app -hint throughput`` (which picks its own
  streams). Within 5% passes.
- ONNX Runtime: our timing loop run on a session with ORT's profiler on; each timed call
  against the profiler's ``model_run`` time of the same inference (time inside the session).
  Within 3% passes.

The two OpenVINO sides run in separate processes, alternating which goes first, for
``--rounds`` rounds; the ratio is of the medians over rounds, so that drifting machine load
hits both sides alike. Exit code 1 when a ratio is outside its tolerance.
"""
from __future__ import annotations

import argparse
import json
import re
import shutil
import statistics
import subprocess
import sys
import tempfile
from dataclasses import replace
from pathlib import Path

import numpy as np

from ..core.cases import Case, stream_grid
from ..core.records import Result
from ..measure.timing import RoundsPlan, TimingPlan, measure, warm_up
from ..run.lifecycle import Settings
from ..run.sweep import run_cases

LATENCY_TOLERANCE = 0.03  # ONNX Runtime: the same inferences, timed by us and by its profiler
OPENVINO_LATENCY_TOLERANCE = 0.05  # a default-length run against benchmark_app's run of --seconds
THROUGHPUT_TOLERANCE = 0.05


def _ours(case: Case, cache_dir: str, plan: RoundsPlan | None = None) -> Result:
    """``repnext-bench run`` of one case: a default-length run unless ``plan`` says otherwise."""
    settings = Settings(plan=TimingPlan(warmup_s=0.3, warmup_iters=3), cache_dir=cache_dir)
    (result,) = run_cases([case], settings, 600, plan)
    if not result.ok:
        raise SystemExit(f"repnext-bench run failed on {case.label}: {result.error}")
    return result


def _best_of_grid(case: Case, cache_dir: str) -> float:
    """The images/s of the best point of ``--streams auto`` (a default-length run of the grid)."""
    settings = Settings(plan=TimingPlan(warmup_s=0.3, warmup_iters=3), cache_dir=cache_dir)
    grid = [replace(case, streams=streams) for streams in stream_grid(case.threads)]
    results = run_cases(grid, settings, 600)
    failed = [r for r in results if not r.ok]
    if failed:
        raise SystemExit(f"repnext-bench run failed on {failed[0].label}: {failed[0].error}")
    return max(r.throughput_ips for r in results)


def _benchmark_app(model: str, case: Case, seconds: float) -> dict:
    """benchmark_app on the same file and shape, with the same CPU properties as ``run`` compiles with."""
    from ..backends.openvino_cpu import compile_config

    tool = shutil.which("benchmark_app") or str(Path(sys.executable).parent / "benchmark_app")
    config = compile_config(case)
    config.pop("NUM_STREAMS", None)  # the hint picks the streams, as a benchmark_app user gets them
    shape = f"[{case.batch},3,{case.resolution},{case.resolution}]"
    with tempfile.NamedTemporaryFile("w", suffix=".json", delete=False) as stream:
        json.dump({"CPU": config}, stream)  # -nthreads is refused next to -hint; a config file is not
    command = [tool, "-m", model, "-d", "CPU", "-hint", config["PERFORMANCE_HINT"].lower(), "-shape", shape,
               "-load_config", stream.name, "-t", str(max(1, round(seconds)))]
    try:
        done = subprocess.run(command, capture_output=True, text=True)
    finally:
        Path(stream.name).unlink()
    out = done.stdout
    if done.returncode != 0:
        raise SystemExit(f"benchmark_app failed ({done.returncode}):\n{(out + done.stderr)[-2000:]}")
    median = re.search(r"Median:\s+([\d.]+) ms", out)
    fps = re.search(r"Throughput:\s+([\d.]+) FPS", out)
    if not (median and fps):
        raise SystemExit(f"could not read benchmark_app's output:\n{out[-2000:]}")
    return {"median_ms": float(median.group(1)), "throughput_fps": float(fps.group(1)), "command": " ".join(command)}


def _alternate(rounds: int, first, second) -> tuple[list, list]:
    a, b = [], []
    for i in range(rounds):
        if i % 2 == 0:
            a.append(first())
            b.append(second())
        else:
            b.append(second())
            a.append(first())
    return a, b


def openvino_checks(base: Case, rounds: int, seconds: float, cache_dir: str) -> list[dict]:
    latency_case = Case(**{**base.to_dict(), "backend": "openvino", "mode": "latency", "options": ()})
    throughput_case = Case(**{**latency_case.to_dict(), "mode": "throughput", "options": ()})
    quick = RoundsPlan(min_rounds=1, budget_s=0.1, min_duration_s=0, min_iters=1)
    model = _ours(latency_case, cache_dir, quick).artifact.path  # the exact file both sides load
    ours, theirs = _alternate(rounds, lambda: _ours(latency_case, cache_dir).p50_ms,
                              lambda: _benchmark_app(model, latency_case, seconds)["median_ms"])
    ours_tp, theirs_tp = _alternate(rounds, lambda: _best_of_grid(throughput_case, cache_dir),
                                    lambda: _benchmark_app(model, throughput_case, seconds)["throughput_fps"])
    return [
        _check("openvino latency p50 (ms)", latency_case, ours, theirs, "benchmark_app -hint latency",
               OPENVINO_LATENCY_TOLERANCE),
        _check("openvino throughput (img/s)", throughput_case, ours_tp, theirs_tp, "benchmark_app -hint throughput",
               THROUGHPUT_TOLERANCE),
    ]


def onnxruntime_check(base: Case, rounds: int, seconds: float, cache_dir: str) -> dict:
    from ..backends.ort import OnnxRuntimeBackend

    case = Case(**{**base.to_dict(), "backend": "onnxruntime", "options": ()})
    model = _ours(case, cache_dir, RoundsPlan(min_rounds=1, budget_s=0.1, min_duration_s=0, min_iters=1)).artifact.path
    images = np.random.default_rng(0).standard_normal((case.batch, 3, case.resolution, case.resolution),
                                                      dtype=np.float32)
    ours, theirs = [], []
    with tempfile.TemporaryDirectory() as folder:
        for _ in range(rounds):
            session = OnnxRuntimeBackend.load(model, case.threads, images, 1000, profile_prefix=f"{folder}/ort")
            plan = TimingPlan(warmup_s=1.0, warmup_iters=10, min_duration_s=seconds, min_iters=50)
            warm_up(session.run, plan)
            samples, _ = measure(session.run, plan)
            trace = json.loads(Path(session.session.end_profiling()).read_text())
            runs = [e["dur"] / 1e3 for e in trace if e.get("cat") == "Session" and e.get("name") == "model_run"]
            ours.append(statistics.median(samples))
            theirs.append(statistics.median(runs[-len(samples):]))  # the measured runs, after the warm-up
    return _check("onnxruntime per-run time (ms), profiler on", case, ours, theirs,
                  "ORT profiler model_run", LATENCY_TOLERANCE)


def _check(what: str, case: Case, ours: list[float], theirs: list[float], tool: str, tolerance: float) -> dict:
    ratio = statistics.median(ours) / statistics.median(theirs)
    return {"check": what, "case": case.label, "tool": tool, "ours": ours, "theirs": theirs, "ratio": ratio,
            "tolerance": tolerance, "passed": abs(ratio - 1) <= tolerance}


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m repnext_bench.crosscheck", description=__doc__.split("\n\n")[0])
    parser.add_argument("--variant", default="M0")
    parser.add_argument("--form", default="fused", choices=["train", "official", "fused"])
    parser.add_argument("--resolution", type=int, default=224)
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--rounds", type=int, default=4)
    parser.add_argument("--seconds", type=float, default=5.0)
    parser.add_argument("--cache-dir", default=None)
    parser.add_argument("--json", dest="json_path", default=None, help="also write the checks to this file")
    args = parser.parse_args(argv)
    base = Case(args.variant.upper(), args.form, "", "cpu", "fp32", 1, args.resolution, args.threads, "latency")
    cache_dir = args.cache_dir or tempfile.mkdtemp(prefix="repnext-crosscheck-")
    checks = [*openvino_checks(base, args.rounds, args.seconds, cache_dir),
              onnxruntime_check(base, args.rounds, args.seconds, cache_dir)]
    for c in checks:
        verdict = "within" if c["passed"] else "OUTSIDE"
        print(f"{c['check']:<45} ours {statistics.median(c['ours']):9.3f}  {c['tool']} "
              f"{statistics.median(c['theirs']):9.3f}  ratio {c['ratio']:.3f}  ({verdict} {c['tolerance']:.0%})")
    print(f"case: {checks[0]['case']}; {args.rounds} alternating rounds of {args.seconds:g} s each")
    if args.json_path:
        Path(args.json_path).write_text(json.dumps(checks, indent=1))
    return 0 if all(c["passed"] for c in checks) else 1


if __name__ == "__main__":
    sys.exit(main())
