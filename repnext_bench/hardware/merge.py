"""Merging run reports: machines named by their environment, cases lined up, the best
configuration per machine and backend, the gaps, and what to ship."""
from __future__ import annotations

from dataclasses import dataclass, field

from ..measure.rounds import unpaired_ratio
from ..models import get_variant
from ..verify import TOLERANCES


@dataclass
class Machine:
    label: str
    environment: dict
    commands: list[str] = field(default_factory=list)
    reports: list[str] = field(default_factory=list)


def _machine_key(environment: dict) -> tuple:
    gpus = tuple(g.get("name", str(g)) if isinstance(g, dict) else str(g) for g in environment.get("gpus") or [])
    return environment.get("cpu", {}).get("model"), gpus, environment.get("hostname")


def default_label(environment: dict) -> str:
    cpu = environment.get("cpu", {}).get("model") or "unknown CPU"
    gpus = _machine_key(environment)[1]
    return cpu + (f" + {', '.join(gpus)}" if gpus else "")


def merge(reports: list[tuple[str, dict]], labels: list[str] | None = None) -> dict:
    """``reports``: (file name, run report). Returns machines, rows (one per ok or failed case),
    and the notes on what was replaced."""
    keys = [_machine_key(report["environment"]) for _, report in reports]
    if labels is None:
        names = {key: default_label(report["environment"]) for key, (_, report) in zip(keys, reports)}
        clashes = {name for name in names.values() if list(names.values()).count(name) > 1}
        labels = [names[key] + (f" ({key[2]})" if names[key] in clashes else "") for key in keys]
    machines: dict[str, Machine] = {}
    rows: dict[tuple, dict] = {}
    notes = []
    for (name, report), label in zip(reports, labels):
        machine = machines.setdefault(label, Machine(label, report["environment"]))
        machine.commands.append(report["environment"].get("command", ""))
        machine.reports.append(name)
        for result in report["results"]:
            row = _row(label, name, result)
            key = tuple(row[k] for k in ("machine", "variant", "form", "backend", "device", "asked", "batch",
                                         "resolution", "threads", "mode", "options"))
            if key in rows:
                notes.append(f"{label}: {row['case']} is in {rows[key]['report']} and {name}; kept {name}")
            rows[key] = row
    return {"machines": machines, "rows": list(rows.values()), "notes": notes}


def _row(machine: str, report_name: str, result: dict) -> dict:
    case = result["case"]
    latency = result.get("latency_ms") or {}
    options = ",".join(k for k, v in sorted((case.get("options") or {}).items()) if v)
    return {
        "machine": machine, "report": report_name, "status": result["status"],
        "variant": case["variant"], "form": case["form"], "backend": case["backend"], "device": case["device"],
        "asked": case["precision"], "precision": result.get("precision_effective") or case["precision"],
        "batch": case["batch"], "resolution": case["resolution"], "threads": case["threads"], "mode": case["mode"],
        "options": options, "p50_ms": latency.get("p50"), "p50_ci": latency.get("ci95_median"),
        "samples_ms": result.get("samples_ms") or [], "samples_round": result.get("samples_round"),
        "paired_speedup": result.get("fused_speedup"),
        "throughput_ips": result.get("throughput_ips"),
        "peak_rss_mb": (result.get("memory") or {}).get("peak_rss_mb"),
        "rel_l2": (result.get("parity") or {}).get("rel_l2"),
        "case": f"{case['variant']} {case['form']} {case['backend']} {case['precision']} b{case['batch']} "
                f"{case['resolution']}px t{case['threads']} {case['mode']}" + (f" {options}" if options else ""),
    }


def _ok_latency(rows: list[dict]) -> list[dict]:
    return [r for r in rows if r["status"] == "ok" and r["p50_ms"] is not None and r["batch"] == 1]


def best_latency(rows: list[dict]) -> list[dict]:
    """Per machine, backend, variant, form and resolution: the fastest batch-1 case, with the
    best throughput of any batch and the peak memory of that fastest case."""
    best: dict[tuple, dict] = {}
    for row in _ok_latency(rows):
        key = (row["machine"], row["backend"], row["variant"], row["form"], row["resolution"])
        if key not in best or row["p50_ms"] < best[key]["p50_ms"]:
            best[key] = dict(row)
    for row in rows:
        key = (row["machine"], row["backend"], row["variant"], row["form"], row["resolution"])
        if key in best and row["status"] == "ok" and row["throughput_ips"]:
            best[key]["best_throughput_ips"] = max(best[key].get("best_throughput_ips") or 0, row["throughput_ips"])
    for row in best.values():
        train = _train_twin(row, rows) if row["form"] == "fused" else None
        row["fused_speedup"] = _fused_speedup(row, train) if train else None
        row["iphone12_ms"] = get_variant(row["variant"]).paper.iphone12_latency_ms
    order = _variant_order()
    return sorted(best.values(), key=lambda r: (order.get(r["variant"], 99), r["form"] != "train", r["resolution"],
                                                r["machine"], r["backend"]))


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
    """(variant-form labels, machine/backend columns, cell text): the gaps between reports."""
    order = _variant_order()
    lines = sorted({(r["variant"], r["form"]) for r in rows}, key=lambda vf: (order.get(vf[0], 99), vf[1] != "train"))
    columns = sorted({f"{r['machine']} / {r['backend']}" for r in rows})
    cells: dict[tuple[str, str], str] = {}
    for row in rows:
        key = (f"{row['variant']} {row['form']}", f"{row['machine']} / {row['backend']}")
        if row["status"] == "ok" or cells.get(key) == "ok":
            cells[key] = "ok"
        else:
            cells[key] = row["status"]
    return [f"{v} {f}" for v, f in lines], columns, cells


def _overlap(a: dict, b: dict) -> bool:
    """Whether two medians' 95% CIs overlap (no CI: only equal medians count as overlapping)."""
    if not (a.get("p50_ci") and b.get("p50_ci")):
        return a["p50_ms"] == b["p50_ms"]
    return a["p50_ci"][0] <= b["p50_ci"][1] and b["p50_ci"][0] <= a["p50_ci"][1]


def _label(row: dict) -> str:
    return f"{row['backend']} {row['form']} {row['precision']} t{row['threads']}"


def ship(rows: list[dict]) -> list[dict]:
    """Per variant and machine: the fastest batch-1 configuration whose output stays within the
    tolerance of its precision, the candidates it cannot be told apart from (their 95% CIs of
    the median overlap its own: a tie), and its speedup over PyTorch eager fp32 train-time."""
    candidates = [r for r in _ok_latency(rows)
                  if r["rel_l2"] is not None and r["rel_l2"] <= TOLERANCES.get(r["precision"], -1)]
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
        answer["speedup_over_baseline"] = (unpaired_ratio(base["samples_ms"], answer["samples_ms"], base["samples_round"],
                                                          answer["samples_round"]) if base else None)
    order = _variant_order()
    return sorted(answers.values(), key=lambda r: (order.get(r["variant"], 99), r["machine"], r["resolution"]))
