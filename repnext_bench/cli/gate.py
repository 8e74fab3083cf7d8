"""``repnext-bench gate``: paired A/B timing of a baseline and a candidate in one job, with a
verdict for CI. Exit codes 0 pass, 1 regression, 3 inconclusive, 2 bad input."""
from __future__ import annotations

import sys
from dataclasses import replace
from pathlib import Path
from typing import Annotated

import typer
from rich.markup import escape

from ..quant import DEFAULT_CALIBRATION_SIZE
from . import options as o
from . import validators as v
from .common import UsageProblem, check_writable, command_line, console, default_output, err_console, settings_from
from .verdicts import emit

ARM_KEYS = ("python", "checkpoint", "threads", "precision", "opset", "resolution", "slowdown")

BaselinePython = Annotated[Path | None, typer.Option("--baseline-python", help="Python of the baseline arm "
                                                     "(another venv).")]
CandidatePython = Annotated[Path | None, typer.Option("--candidate-python", help="Python of the candidate arm.")]
Baseline = Annotated[list[str] | None, typer.Option("--baseline", help="What the baseline arm changes, KEY=VALUE "
                                             "(repeatable): " + ", ".join(ARM_KEYS) + ".")]
Candidate = Annotated[list[str] | None, typer.Option("--candidate", help="What the candidate arm changes, KEY=VALUE "
                                              "(repeatable).")]
Pairs = Annotated[int, typer.Option("--pairs", help="Paired samples per case.")]
Rounds = Annotated[int, typer.Option("--rounds", help="Rounds, each with both arms started afresh (rounds - 1 "
                                     "restarts).")]
FailAbove = Annotated[str, typer.Option("--fail-above", help="Fail when the change is above this (percent)...")]
CiAbove = Annotated[str, typer.Option("--ci-above", help="... and its 95% CI's lower bound above this (percent).")]
PassBelow = Annotated[str, typer.Option("--pass-below", help="Pass when the CI's upper bound is below this "
                                        "(percent).")]


def gate(
    selector: o.Variants = "m0", backend: o.Backends = "onnxruntime", device: o.Devices = "",
    forms: o.Forms = "fused", batch: o.Batch = "1", resolution: o.Resolution = "224", threads: o.Threads = "1",
    precision: o.Precision = "fp32", opset: o.Opset = 17,
    baseline_python: BaselinePython = None, candidate_python: CandidatePython = None,
    baseline: Baseline = None, candidate: Candidate = None,
    pairs: Pairs = 50, rounds: Rounds = 5, block: o.Block = 0.1,
    fail_above: FailAbove = "3", ci_above: CiAbove = "2", pass_below: PassBelow = "5", seed: o.Seed = 0,
    output: o.Output = None, markdown_path: o.Markdown = None, as_json: o.Json = False,
    calibration: o.Calibration = None, calibration_size: o.CalibrationSize = DEFAULT_CALIBRATION_SIZE,
) -> None:
    """Paired, interleaved A/B timing of a baseline and a candidate in one job, with a verdict.

    Each arm is pinned to --threads CPUs."""
    from ..gate.compare import exit_code

    cases = _cases(selector, backend, device, forms, batch, resolution, threads, precision)
    v.opset(opset)
    plan = _plan(pairs, rounds, block, seed, fail_above, ci_above, pass_below)
    base_overrides = _arm_overrides(baseline, "baseline", baseline_python)
    cand_overrides = _arm_overrides(candidate, "candidate", candidate_python)
    path = output or default_output("gate")
    check_writable(path)
    if markdown_path:
        check_writable(markdown_path, "--markdown")
    arm_precisions = [o["precision"].lower() for o in (base_overrides, cand_overrides) if "precision" in o]
    quantization = v.quantization_settings([cases[0].precision, *arm_precisions], calibration, calibration_size)
    settings = settings_from({"warmup_s": 0.3, "warmup_iters": 3, "min_duration_s": 0, "min_iters": 1}, opset=opset,
                             **quantization)
    if "python" not in base_overrides or "python" not in cand_overrides:  # an arm runs in this environment
        _check_runnable(cases)
    arms = [(_arm("baseline", case, settings, base_overrides), _arm("candidate", case, settings, cand_overrides))
            for case in cases]
    report = _new_report(plan, len(arms))
    rows = _run_arms(arms, plan, report, path, as_json)
    notes = [f"{r['case']}: {r['why']}" for r in rows] + [
        f"baseline: {_arm_text(arms[0][0])}; candidate: {_arm_text(arms[0][1])}",
        f"{plan.pairs} pairs in {plan.rounds} rounds, {plan.block_s:g} s per sample, threads pinned per arm"]
    emit(report, rows, "Gate: candidate vs baseline, paired and interleaved", notes, path, markdown_path, as_json)
    raise typer.Exit(exit_code(rows))


def _cases(selector: str, backend: str, device: str, forms: str, batch: str, resolution: str, threads: str,
           precision: str) -> list:
    """The gated cases, variants outermost, from the checked options."""
    from ..core.cases import Case

    variants, backends, form_list = v.variant_names(selector), v.backends(backend, device), v.forms(forms)
    precision = v.precision(precision)
    batch_size, side, thread_count = v.positive(batch, "--batch"), v.resolution(resolution), v.threads(threads)
    return [Case(variant, form, name, dev, precision, batch_size, side, thread_count, "latency")
            for variant in variants for name, dev in backends for form in form_list]


def _plan(pairs: int, rounds: int, block: float, seed: int, fail_above: str, ci_above: str, pass_below: str):
    from ..gate.paired import GatePlan
    from ..gate.stats import Thresholds

    try:
        return GatePlan(pairs=pairs, rounds=rounds, block_s=block, seed=seed, thresholds=Thresholds(
            v.percent(fail_above, "--fail-above"), v.percent(ci_above, "--ci-above"),
            v.percent(pass_below, "--pass-below")))
    except ValueError as exc:
        raise UsageProblem(str(exc)) from exc


def _arm_overrides(items: list[str] | None, name: str, python: Path | None) -> dict:
    overrides = {}
    for item in items or []:
        key, sep, value = item.partition("=")
        if not sep or key.strip() not in ARM_KEYS:
            raise UsageProblem(f"--{name} {item!r}: use KEY=VALUE with KEY one of {', '.join(ARM_KEYS)}")
        overrides[key.strip()] = value.strip()
    if python:
        overrides["python"] = str(python)
    return overrides


def _arm(name: str, case, settings, overrides: dict):
    """The arm's spec: the case and settings with the arm's changes, each checked as the option it
    stands for is."""
    from ..gate.paired import ArmSpec

    python, slowdown = sys.executable, 0.0
    for key, value in overrides.items():
        if key == "python":
            if not Path(value).exists():
                raise UsageProblem(f"--{name}-python {value}: no such file")
            python = value
        elif key == "slowdown":
            slowdown = v.percent(value, f"--{name} slowdown=")
        elif key == "checkpoint":
            settings = replace(settings, checkpoint=_arm_checkpoint(name, case.variant, value))
        elif key == "opset":
            settings = replace(settings, opset=v.opset(value, f"--{name} opset"))
        else:
            case = replace(case, **{key: _arm_value(name, key, value)})
    return ArmSpec(name, python, case, settings, slowdown)


def _arm_value(name: str, key: str, value: str):
    option = f"--{name} {key}"
    if key == "precision":
        return v.precision(value, option)
    return v.resolution(value, option) if key == "resolution" else v.positive(value, option)


def _arm_checkpoint(name: str, variant: str, value: str) -> str:
    from ..models import CheckpointError, create_model, load_checkpoint

    try:
        load_checkpoint(create_model(variant), value)
    except CheckpointError as exc:
        raise UsageProblem(f"--{name} checkpoint=: {exc}") from exc
    return str(Path(value).resolve())  # the arms run elsewhere


def _check_runnable(cases: list) -> None:
    """A backend, device or precision that cannot run in this environment is bad input, said
    before any arm starts."""
    from ..backends import availability, case_problem

    seen = set()
    for case in cases:
        if (case.backend, case.device) in seen:
            continue
        seen.add((case.backend, case.device))
        problem = case_problem(replace(case, variant="M0", form="fused"), availability(case.backend))
        if problem:
            raise UsageProblem(f"--backend {case.backend}: {problem[1]}")


def _new_report(plan, count: int) -> dict:
    from ..report.schema import new_report
    from ..system.environment import fingerprint

    report = new_report(fingerprint(command_line()), {"plan": plan.to_dict(), "cases": count})
    report["kind"] = "gate"
    return report


def _run_arms(arms: list, plan, report: dict, path: Path, as_json: bool) -> list[dict]:
    """Gate each pair of arms in turn, writing the record after each; a verdict line each unless JSON."""
    from ..gate.paired import GateError, run_gate
    from ..report.comparison_view import VERDICT_STYLE
    from ..report.schema import write_report

    rows = []
    for index, (base_arm, cand_arm) in enumerate(arms, start=1):
        label = f"[{index}/{len(arms)}] {base_arm.case.label}"
        with err_console.status(escape(label)) as status:
            try:
                record = run_gate(base_arm, cand_arm, plan, on_pair=lambda k, n, label=label, status=status:
                                  status.update(f"{escape(label)}: pair {k} of {n}"))
            except GateError as exc:
                write_report(report, path)
                raise UsageProblem(f"{label}: {exc}") from None
        record["case"] = base_arm.case.label
        report["results"].append(record)
        write_report(report, path)
        rows.append(record)
        if not as_json:
            console.print(f"[{VERDICT_STYLE[record['verdict']]}]{record['verdict']}[/] {escape(record['case'])}: "
                          f"{escape(record['why'])} ({record['duration_s']:.0f} s)", highlight=False)
    return rows


def _arm_text(spec) -> str:
    parts = [f"python {spec.python}", spec.case.label]
    if spec.settings.checkpoint:
        parts.append(f"checkpoint {spec.settings.checkpoint}")
    if spec.slowdown:
        parts.append(f"injected slowdown {spec.slowdown:.0%}")
    return ", ".join(parts)
