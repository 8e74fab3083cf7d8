"""``repnext-bench gate`` (paired A/B in one job) and ``repnext-bench compare`` (two stored
reports): verdicts for CI, with exit codes 0 pass, 1 regression, 3 inconclusive, 2 bad input."""
from __future__ import annotations

import json
import sys
from pathlib import Path

import typer
from rich.markup import escape

from . import cli_common as common
from .cli_common import (UsageProblem, parse_percent, check_writable, console, default_output, err_console, parse_backends,
                         parse_forms, parse_option, parse_variant_names)
from .report.comparison_view import VERDICT_STYLE, markdown, verdict_table

ARM_KEYS = ("python", "checkpoint", "threads", "precision", "opset", "resolution", "slowdown")


def _arm_overrides(items: list[str], name: str) -> dict:
    overrides = {}
    for item in items:
        key, sep, value = item.partition("=")
        if not sep or key.strip() not in ARM_KEYS:
            raise UsageProblem(f"--{name} {item!r}: use KEY=VALUE with KEY one of {', '.join(ARM_KEYS)}")
        overrides[key.strip()] = value.strip()
    return overrides


def _arm(name: str, base_case, settings, overrides: dict):
    from dataclasses import replace

    from .cases import PRECISIONS
    from .gate.paired import ArmSpec
    from .models import CheckpointError, create_model, load_checkpoint

    case, python, slowdown = base_case, sys.executable, 0.0
    for key, value in overrides.items():
        if key == "python":
            if not Path(value).exists():
                raise UsageProblem(f"--{name}-python {value}: no such file")
            python = value
        elif key == "slowdown":
            slowdown = parse_percent(value, f"--{name} slowdown=")
        elif key == "precision":
            if value not in PRECISIONS:
                raise UsageProblem(f"--{name} precision={value}: use one of {', '.join(PRECISIONS)}")
            case = replace(case, precision=value)
        elif key == "checkpoint":
            try:
                load_checkpoint(create_model(case.variant), value)
            except CheckpointError as exc:
                raise UsageProblem(f"--{name} checkpoint=: {exc}") from exc
            settings = replace(settings, checkpoint=str(Path(value).resolve()))  # the arms run elsewhere
        else:  # threads, opset, resolution: positive integers
            if not value.isdigit() or int(value) < (32 if key == "resolution" else 1):
                raise UsageProblem(f"--{name} {key}={value}: use a positive integer"
                                   + (" of at least 32" if key == "resolution" else ""))
            if key == "opset":
                settings = replace(settings, opset=int(value))
            else:
                case = replace(case, **{key: int(value)})
    return ArmSpec(name, python, case, settings, slowdown)


def _check_runnable(backends: list[tuple[str, str]], precision: str, batch: int, resolution: int,
                    threads: int) -> None:
    """A backend, device or precision that cannot run in this environment is bad input, said
    before any arm starts."""
    from .backends import availability, case_problem
    from .cases import Case

    for name, device in backends:
        problem = case_problem(Case("M0", "fused", name, device, precision, batch, resolution, threads, "latency"),
                               availability(name))
        if problem:
            raise UsageProblem(f"--backend {name}: {problem[1]}")


def gate(
    selector: str = typer.Option("m0", "--variants", "-v", help="Variants to gate, e.g. m0 or m0-m2."),
    backend: str = typer.Option("onnxruntime", "--backend", "-b", help="Backends, comma-separated: torch, onnxruntime, openvino, cuda, tensorrt (coreml cannot be timed off macOS)."),
    device: str = typer.Option("", "--device", "-d", help="Devices, as for run (default: each backend's first)."),
    forms: str = typer.Option("fused", "--form", "--forms", "-f", help="Forms, comma-separated."),
    batch: int = typer.Option(1, "--batch", help="Batch size."),
    resolution: int = typer.Option(224, "--resolution", "-r", help="Input side in pixels (at least 32)."),
    threads: int = typer.Option(1, "--threads", "-t", help="Threads per arm; each arm is pinned to that many CPUs."),
    precision: str = typer.Option("fp32", "--precision", "-p", help="fp32, bf16, fp16 or auto."),
    opset: int = typer.Option(17, "--opset", help="ONNX opset of the export."),
    baseline_python: Path | None = typer.Option(None, "--baseline-python", help="Python of the baseline arm (another venv)."),
    candidate_python: Path | None = typer.Option(None, "--candidate-python", help="Python of the candidate arm."),
    baseline: list[str] = typer.Option([], "--baseline", help="What the baseline arm changes, KEY=VALUE (repeatable): "
                                       + ", ".join(ARM_KEYS) + "."),
    candidate: list[str] = typer.Option([], "--candidate", help="What the candidate arm changes, KEY=VALUE (repeatable)."),
    pairs: int = typer.Option(50, "--pairs", help="Paired samples per case."),
    rounds: int = typer.Option(5, "--rounds", help="Rounds, each with both arms started afresh (rounds - 1 restarts)."),
    block: float = typer.Option(0.1, "--block", help="Seconds of inferences in one sample."),
    fail_above: str = typer.Option("3", "--fail-above", help="Fail when the change is above this (percent)..."),
    ci_above: str = typer.Option("2", "--ci-above", help="... and its 95% CI's lower bound above this (percent)."),
    pass_below: str = typer.Option("5", "--pass-below", help="Pass when the CI's upper bound is below this (percent)."),
    seed: int = typer.Option(0, "--seed", help="Seed of the AB/BA order and the bootstrap."),
    output: Path | None = typer.Option(None, "--output", "-o", help="Gate record (default: reports/gate-<UTC time>.json)."),
    markdown_path: Path | None = typer.Option(None, "--markdown", help="Also write the verdicts as Markdown (CI job summary)."),
    as_json: bool = typer.Option(False, "--json", help="Print the gate record as JSON instead of the table."),
) -> None:
    """Paired, interleaved A/B timing of a baseline and a candidate in one job, with a verdict."""
    from .cases import PRECISIONS, Case, parse_choices
    from .environment import fingerprint
    from .gate.compare import exit_code
    from .gate.paired import GateError, GatePlan, run_gate
    from .gate.stats import Thresholds
    from .measure.timing import TimingPlan
    from .report.schema import new_report, write_report
    from .lifecycle import Settings

    variants = parse_variant_names(selector)
    backends = parse_backends(backend, device)
    form_list = parse_forms(forms, "--form")
    precision = parse_option(parse_choices, precision, "--precision", PRECISIONS)[0]
    if batch < 1 or resolution < 32 or threads < 1 or opset < 7:
        raise UsageProblem("--batch and --threads must be >= 1, --resolution >= 32 and --opset >= 7")
    try:
        plan = GatePlan(pairs=pairs, rounds=rounds, block_s=block, seed=seed, thresholds=Thresholds(
            parse_percent(fail_above, "--fail-above"), parse_percent(ci_above, "--ci-above"), parse_percent(pass_below, "--pass-below")))
    except ValueError as exc:
        raise UsageProblem(str(exc)) from exc
    base_overrides = _arm_overrides(baseline, "baseline")
    cand_overrides = _arm_overrides(candidate, "candidate")
    if baseline_python:
        base_overrides["python"] = str(baseline_python)
    if candidate_python:
        cand_overrides["python"] = str(candidate_python)
    path = output or default_output("gate")
    check_writable(path)
    if markdown_path:
        check_writable(markdown_path, "--markdown")
    settings = Settings(plan=TimingPlan(warmup_s=0.3, warmup_iters=3, min_duration_s=0, min_iters=1), opset=opset)
    if "python" not in base_overrides or "python" not in cand_overrides:  # an arm runs in this environment
        _check_runnable(backends, precision, batch, resolution, threads)
    arms = []
    for variant in variants:
        for name, device in backends:
            for form in form_list:
                case = Case(variant, form, name, device, precision, batch, resolution, threads, "latency")
                arms.append((_arm("baseline", case, settings, base_overrides),
                             _arm("candidate", case, settings, cand_overrides)))
    report = new_report(fingerprint(["repnext-bench", *common.ARGV]), {"plan": plan.to_dict(), "cases": len(arms)})
    report["kind"] = "gate"
    rows = []
    for index, (base_arm, cand_arm) in enumerate(arms, start=1):
        label = f"[{index}/{len(arms)}] {base_arm.case.label}"
        with err_console.status(escape(label)) as status:
            try:
                record = run_gate(base_arm, cand_arm, plan, on_pair=lambda k, n: status.update(
                    f"{escape(label)}: pair {k} of {n}"))
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
    title = "Gate: candidate vs baseline, paired and interleaved"
    notes = [f"{r['case']}: {r['why']}" for r in rows] + [
        f"baseline: {_arm_text(arms[0][0])}; candidate: {_arm_text(arms[0][1])}",
        f"{plan.pairs} pairs in {plan.rounds} rounds, {plan.block_s:g} s per sample, threads pinned per arm"]
    _emit(report, rows, title, notes, path, markdown_path, as_json)
    raise typer.Exit(exit_code(rows))


def _arm_text(spec) -> str:
    parts = [f"python {spec.python}", spec.case.label]
    if spec.settings.checkpoint:
        parts.append(f"checkpoint {spec.settings.checkpoint}")
    if spec.slowdown:
        parts.append(f"injected slowdown {spec.slowdown:.0%}")
    return ", ".join(parts)


def _emit(report: dict, rows: list[dict], title: str, notes: list[str], path: Path | None,
          markdown_path: Path | None, as_json: bool) -> None:
    if markdown_path:
        markdown_path.write_text(markdown(rows, title, notes))
    if as_json:
        console.out(json.dumps(report, indent=1))
        return
    console.print(verdict_table(rows, title))
    for note in notes[len(rows):]:
        console.print(escape(note), highlight=False)
    if path:
        console.print(f"record: {path}")


def compare(
    base: Path = typer.Argument(..., help="The baseline report (a run report, JSON)."),
    new: Path = typer.Argument(..., help="The candidate report."),
    fail_on: str = typer.Option("10", "--fail-on", help="Regression threshold in percent: fail when the change and "
                                "its whole 95% CI are above it."),
    markdown_path: Path | None = typer.Option(None, "--markdown", help="Also write the verdicts as Markdown (CI job summary)."),
    as_json: bool = typer.Option(False, "--json", help="Print the comparison as JSON instead of the table."),
    cross_machine: bool = typer.Option(False, "--cross-machine", help="Give verdicts even when the reports come from "
                                       "different machines or runtime versions (by default: inconclusive, exit 3)."),
) -> None:
    """Compare two stored reports case by case, from their raw samples."""
    from .gate.compare import compare_reports, exit_code
    from .report.schema import ReportError, read_report

    threshold = parse_percent(fail_on, "--fail-on")
    if threshold <= 0:
        raise UsageProblem("--fail-on must be above 0")
    try:
        reports = [read_report(base), read_report(new)]
    except ReportError as exc:
        raise UsageProblem(str(exc)) from None
    if markdown_path:
        check_writable(markdown_path, "--markdown")
    result = compare_reports(*reports, threshold=threshold, cross_machine=cross_machine)
    if result["machine_differences"] and not as_json:
        verb = "compared anyway (--cross-machine)" if cross_machine else "no verdict on timing (--cross-machine to compare)"
        err_console.print(f"[yellow]different machines or runtimes[/]: {escape('; '.join(result['machine_differences']))}"
                          f" - {verb}", highlight=False)
    notes = [f"{row['case']}: {row['why']}" for row in result["rows"]]  # shown in the table, listed in Markdown
    notes += [f"different machines or runtimes: {line}" for line in result["machine_differences"]]
    notes += [f"environment differs: {line}" for line in result["environment_differences"]]
    notes += [f"only in the baseline: {label}" for label in result["only_in_baseline"]]
    notes += [f"only in the candidate: {label}" for label in result["only_in_candidate"]]
    notes += [f"not compared: {item['case']} ({item['why']})" for item in result["not_compared"]]
    notes.append(f"threshold {threshold:.0%}: reports from two jobs carry noise no statistic inside one report can "
                 "see; the gate command measures both sides in one job")
    if not result["rows"]:
        err_console.print("[yellow]no case is in both reports with latency samples[/]")
    title = f"Compare: {new} vs {base}" + (" (different machines or runtimes)" if result["machine_differences"] else "")
    _emit(result, result["rows"], title, notes, None, markdown_path, as_json)
    raise typer.Exit(exit_code(result["rows"]) if result["rows"] else 3)
