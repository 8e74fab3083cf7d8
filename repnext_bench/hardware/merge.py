"""Merging run reports: machines named by their environment, cases lined up, the best
configuration per machine and backend, the gaps, and what to ship."""
from __future__ import annotations

import statistics
from dataclasses import dataclass, field

from ..core.records import Result, read_results
from ..measure.ratios import unpaired_ratio
from ..models import get_variant
from ..run.verify import TOLERANCES
from ..system.identity import complete, distinguishing, identity, runtime_version, same_machine
from ..system.identity import label as identity_label


@dataclass
class Machine:
    label: str
    environment: dict
    identity: dict[str, str]
    commands: list[str] = field(default_factory=list)
    reports: list[str] = field(default_factory=list)


def _machines(reports: list[tuple[str, dict]], labels: list[str] | None) -> tuple[list[Machine], list[str]]:
    """The Machine of each report, and notes. Reports that record every identity field are
    grouped first, by identity (never by label or brand string); an older report that lacks
    some fields joins a machine only when exactly one matches it, else it stands alone. Each
    machine is named by ``labels`` (its first report's) or by its identity, with the field that
    tells it apart where two names would be the same."""
    idents = [identity(report["environment"]) for _, report in reports]
    order = sorted(range(len(reports)), key=lambda i: not complete(idents[i]))
    machines: list[Machine] = []
    owner: dict[int, Machine] = {}
    notes = []
    for index in order:
        name, report = reports[index]
        matches = [m for m in machines if same_machine(m.identity, idents[index])]
        if len(matches) > 1:
            notes.append(f"{name} lacks identity fields that would tell which of {len(matches)} machines it is "
                         "from: shown as a machine of its own")
        if len(matches) == 1:
            machine = matches[0]
            if labels and labels[index] != machine.label:
                notes.append(f"--label {labels[index]!r} of {name}: the report is from machine {machine.label!r}")
        else:
            environment = report["environment"]
            machine = Machine(labels[index] if labels else identity_label(environment), environment, idents[index])
            machines.append(machine)
        owner[index] = machine
    for index, (name, report) in enumerate(reports):  # commands and files in the order given
        owner[index].commands.append(report["environment"].get("command", ""))
        owner[index].reports.append(name)
    _unique_labels(machines)
    return [owner[i] for i in range(len(reports))], notes


def _unique_labels(machines: list[Machine]) -> None:
    """Rename until no two machines share a label: the field that tells them apart, then the
    report files, then a number."""
    for attempt in range(3):
        taken: dict[str, Machine] = {}
        clash = False
        for machine in machines:
            other = taken.get(machine.label)
            if other is not None:
                clash = True
                told = distinguishing(other.identity, machine.identity) if attempt == 0 else None
                machine.label += f" [{told}]" if told else (f" [{', '.join(machine.reports)}]" if attempt < 2
                                                            else f" #{len(taken) + 1}")
            taken[machine.label] = machine
        if not clash:
            return


def merge(reports: list[tuple[str, dict]], labels: list[str] | None = None) -> dict:
    """``reports``: (file name, run report). Returns the machines, every input row (none is
    dropped), the rows combined per machine and case (runs of one case pooled), and notes."""
    owners, notes = _machines(reports, labels)
    machines = {}
    rows = []
    for machine, (name, report) in zip(owners, reports):
        machines[machine.label] = machine
        rows.extend(_row(machine.label, name, result, report["environment"])
                    for result in read_results(report["results"]))
    combined, pooled = combine(rows)
    return {"machines": machines, "rows": combined, "input_rows": rows, "notes": notes + pooled}


def _case_key(row: dict) -> tuple:
    """One case on one machine with one runtime version: runs of it pool, other versions do not."""
    return tuple(row[k] for k in ("machine", "variant", "form", "backend", "device", "asked", "batch", "resolution",
                                  "threads", "mode", "streams", "options", "runtime"))


def combine(rows: list[dict]) -> tuple[list[dict], list[str]]:
    """One row per machine and case: a case measured in several reports of one machine is
    pooled from the raw samples of every run (its CI resamples each run's rounds), with the
    spread between the runs and a flag when two runs' CIs do not overlap."""
    groups: dict[tuple, list[dict]] = {}
    for row in rows:
        groups.setdefault(_case_key(row), []).append(row)
    combined, notes = [], []
    for group in groups.values():
        ok = [r for r in group if r["status"] == "ok" and r["samples_ms"]]
        if len(group) == 1 or len(ok) < 2 or group[0]["mode"] != "latency":  # a queue's latencies do not pool
            finished = [r for r in group if r["status"] == "ok"]
            combined.append(dict(ok[-1] if ok else finished[-1] if finished else group[-1], runs=len(ok) or 1))
            if len(group) > 1:
                reports = ", ".join(r["report"] for r in group)
                notes.append(f"{group[0]['machine']}: {group[0]['case']} is in {reports}; {len(ok)} of them finished, "
                             "shown as is")
            continue
        combined.append(_pooled(ok))
        row = combined[-1]
        notes.append(f"{row['machine']}: {row['case']} is in {len(ok)} reports ({', '.join(r['report'] for r in ok)}):"
                     f" pooled from all their samples; the runs' p50s span {min(row['run_p50s']):.3g}-"
                     f"{max(row['run_p50s']):.3g} ms ({row['run_spread']:.1%})"
                     + ("; the runs disagree beyond their 95% CIs" if row["runs_disagree"] else ""))
    return combined, notes


def _pooled(runs: list[dict]) -> dict:
    """The runs' samples together; the CI resamples the runs, then the samples within them, so
    that it widens when the runs disagree."""
    from ..measure.rounds import rounds_ci

    samples, rounds, clusters = [], [], []
    for index, run in enumerate(runs):
        own = run["samples_round"] if run["samples_round"] and len(run["samples_round"]) == len(run["samples_ms"]) \
            else [0] * len(run["samples_ms"])
        samples.extend(run["samples_ms"])
        rounds.extend(index * 100_000 + r for r in own)
        clusters.append(run["samples_ms"])
    p50s = [r["p50_ms"] for r in runs]
    disagree = any(a["p50_ci"] and b["p50_ci"] and not _overlap(a, b) for i, a in enumerate(runs) for b in runs[i + 1:])
    median = statistics.median(samples)
    return dict(runs[-1], report=", ".join(r["report"] for r in runs), runs=len(runs), p50_ms=median,
                p50_ci=list(rounds_ci(clusters)), samples_ms=samples, samples_round=rounds, run_p50s=p50s,
                run_spread=max(p50s) / min(p50s) - 1, runs_disagree=disagree, paired_speedup=None,
                rel_l2=max(r["rel_l2"] for r in runs if r["rel_l2"] is not None) if any(
                    r["rel_l2"] is not None for r in runs) else None,
                peak_rss_mb=max((r["peak_rss_mb"] for r in runs if r["peak_rss_mb"]), default=None))


def _row(machine: str, report_name: str, result: Result, environment: dict) -> dict:
    case = result.case
    options = ",".join(k for k, v in case.options if v)
    return {
        "machine": machine, "report": report_name, "status": result.status,
        "runtime": runtime_version(environment, case.backend),
        "variant": case.variant, "form": case.form, "backend": case.backend, "device": case.device,
        "asked": case.precision, "precision": result.precision_effective or case.precision,
        "batch": case.batch, "resolution": case.resolution, "threads": case.threads, "mode": case.mode,
        "options": options, "p50_ms": result.p50_ms,
        "p50_ci": result.latency_ms.ci95_median if result.latency_ms else None,
        "samples_ms": result.samples, "samples_round": result.samples_round,
        "paired_speedup": result.fused_speedup.to_dict() if result.fused_speedup else None,
        "throughput_ips": result.throughput_ips, "peak_rss_mb": result.peak_rss_mb, "rel_l2": result.rel_l2,
        "case": case.label, "streams": case.streams, "threads_per_stream": case.threads_per_stream,
        "server": result.server.to_dict() if result.server else None,
        "throughput_blocks_ips": result.throughput_blocks_ips or [],
        "calibration": ((result.quantization.calibration or {}).get("source") if result.quantization else None),
    }


def _ok_latency(rows: list[dict]) -> list[dict]:
    """Finished batch-1 latency-mode rows (a server row has latencies too, queueing in them)."""
    return [r for r in rows if r["status"] == "ok" and r["p50_ms"] is not None and r["batch"] == 1
            and r["mode"] == "latency"]


def best_latency(rows: list[dict]) -> list[dict]:
    """Per machine, backend, variant, form and resolution: the fastest batch-1 case, with the
    best throughput of any batch and the peak memory of that fastest case."""
    best: dict[tuple, dict] = {}
    for row in _ok_latency(rows):
        key = _best_key(row)
        if key not in best or row["p50_ms"] < best[key]["p50_ms"]:
            best[key] = dict(row)
    for row in rows:
        key = _best_key(row)
        if key in best and row["status"] == "ok" and row["throughput_ips"]:
            best[key]["best_throughput_ips"] = max(best[key].get("best_throughput_ips") or 0, row["throughput_ips"])
    for row in best.values():
        train = _train_twin(row, rows) if row["form"] == "fused" else None
        row["fused_speedup"] = _fused_speedup(row, train) if train else None
        row["iphone12_ms"] = get_variant(row["variant"]).paper.iphone12_latency_ms
    order = _variant_order()
    return sorted(best.values(), key=lambda r: (order.get(r["variant"], 99), r["form"] != "train", r["resolution"],
                                                r["machine"], r["backend"]))


def _best_key(row: dict) -> tuple:
    """What a best-latency row is the best of: INT8 apart from the float precisions, so that
    quantizing shows beside them rather than in their place."""
    return (row["machine"], row["backend"], row["variant"], row["form"], row["resolution"], row["asked"] == "int8")


_SETTINGS = ("machine", "backend", "variant", "resolution", "device", "asked", "batch", "threads", "mode", "options")


def _same_settings(a: dict, b: dict) -> bool:
    return a["report"] == b["report"] and all(a[k] == b[k] for k in _SETTINGS)


def _train_twin(fused: dict, rows: list[dict]) -> dict | None:
    """The train-time case with every setting of ``fused`` (precision asked, threads, options...):
    the speedup of fusion compares the two forms and nothing else. The same report first."""
    twins = [r for r in _ok_latency(rows) if r["form"] == "train" and all(r[k] == fused[k] for k in _SETTINGS)]
    return next((r for r in twins if r["report"] == fused["report"]), twins[0] if twins else None)


def _fused_speedup(fused: dict, train: dict) -> dict | None:
    """Train over fused with its 95% CI: paired within rounds when both come from one sweep with
    the same settings (the report holds that estimate), else from the two sets of samples."""
    if fused.get("paired_speedup") and _same_settings(fused, train):
        return fused["paired_speedup"]
    return unpaired_ratio(train["samples_ms"], fused["samples_ms"], train["samples_round"], fused["samples_round"])


def _variant_order() -> dict[str, int]:
    from ..models import all_variants

    return {v.name: i for i, v in enumerate(all_variants())}


def coverage(rows: list[dict]) -> tuple[list[str], list[str], dict[tuple[str, str], str]]:
    """(variant-form labels, machine/backend columns, cell text): the gaps between reports, and
    every input row counted in its cell (``ok x2``: two results, ``ok, failed``...)."""
    order = _variant_order()
    lines = sorted({(r["variant"], r["form"]) for r in rows}, key=lambda vf: (order.get(vf[0], 99), vf[1] != "train"))
    columns = sorted({f"{r['machine']} / {r['backend']}" for r in rows})
    counts: dict[tuple[str, str], dict[str, int]] = {}
    for row in rows:
        key = (f"{row['variant']} {row['form']}", f"{row['machine']} / {row['backend']}")
        statuses = counts.setdefault(key, {})
        statuses[row["status"]] = statuses.get(row["status"], 0) + 1
    cells = {key: ", ".join(status + (f" x{n}" if n > 1 else "") for status, n in sorted(
        statuses.items(), key=lambda item: item[0] != "ok")) for key, statuses in counts.items()}
    return [f"{v} {f}" for v, f in lines], columns, cells


def _overlap(a: dict, b: dict) -> bool:
    """Whether two medians' 95% CIs overlap (no CI: only equal medians count as overlapping)."""
    if not (a.get("p50_ci") and b.get("p50_ci")):
        return a["p50_ms"] == b["p50_ms"]
    return a["p50_ci"][0] <= b["p50_ci"][1] and b["p50_ci"][0] <= a["p50_ci"][1]


def _label(row: dict) -> str:
    return f"{row['backend']} {row['form']} {row['precision']} t{row['threads']}"


def ship(rows: list[dict], max_rel_err: float | None = None) -> list[dict]:
    """Per variant and machine: the fastest batch-1 configuration whose output stays within
    ``max_rel_err`` of the fp32 train-time model's (None: the tolerance of its precision, as
    ``verify``), the candidates it cannot be told apart from (their 95% CIs of the median
    overlap its own: a tie), and its speedup over PyTorch eager fp32 train-time."""
    candidates = [r for r in _ok_latency(rows) if r["rel_l2"] is not None
                  and r["rel_l2"] <= (TOLERANCES.get(r["precision"], -1) if max_rel_err is None else max_rel_err)]
    grouped: dict[tuple, list[dict]] = {}
    for row in candidates:
        grouped.setdefault((row["machine"], row["variant"], row["resolution"]), []).append(row)
    answers = {}
    for key, group in grouped.items():
        group.sort(key=lambda r: r["p50_ms"])
        answers[key] = dict(group[0], tied_with=[_label(r) for r in group[1:] if _overlap(group[0], r)])
    for (machine, variant, resolution), answer in answers.items():
        baselines = [r for r in _ok_latency(rows) if r["machine"] == machine and r["variant"] == variant
                     and r["resolution"] == resolution and r["backend"] == "torch" and r["form"] == "train"
                     and r["precision"] == "fp32" and not r["options"]]
        same_threads = [r for r in baselines if r["threads"] == answer["threads"]] or baselines
        base = min(same_threads, key=lambda r: r["p50_ms"]) if same_threads else None
        answer["baseline_ms"] = base["p50_ms"] if base else None
        answer["speedup_over_baseline"] = unpaired_ratio(
            base["samples_ms"], answer["samples_ms"], base["samples_round"], answer["samples_round"]) if base else None
    order = _variant_order()
    return sorted(answers.values(), key=lambda r: (order.get(r["variant"], 99), r["machine"], r["resolution"]))
