"""`report` tells machines apart by what decides speed and drops no result: reports built to
collide (one brand string, other ISA features; one machine twice; an older report without
the newer fields)."""
import copy
import csv

import pytest

from repnext_bench.cli import main
from repnext_bench.hardware.merge import merge
from repnext_bench.report.schema import read_report, write_report
from repnext_bench.system.identity import identity, isa_summary, label

ARM_FLAGS = ["asimd"]  # no x86 host running these tests records this: always another machine here


@pytest.fixture(scope="module")
def runs(real_runs):
    folder, _, _ = real_runs
    return folder, read_report(folder / "a.json")


def variant_of(report: dict, **cpu) -> dict:
    other = copy.deepcopy(report)
    other["environment"]["cpu"].update(cpu)
    return other


def test_one_brand_string_with_other_features_is_another_machine(runs):
    _, report = runs
    here = report["environment"]["cpu"]
    other = variant_of(report, model=here["model"], features=ARM_FLAGS)
    merged = merge([("here.json", report), ("other.json", other)])
    assert len(merged["machines"]) == 2
    labels = list(merged["machines"])
    assert labels[1] == f"{here['model']} (NEON, {here['usable_cores']} cores)" and labels[0] != labels[1]
    assert {r["machine"] for r in merged["rows"] if r["report"] == "other.json"} == {labels[1]}  # no mixed cell
    from repnext_bench.hardware.render import tables

    (machines_table,) = [t for t in tables(merged) if t[0].startswith("Machines")]
    _, headers, rows = machines_table
    isa = headers.index("ISA")
    assert all(row[isa].startswith("**") for row in rows)  # the field that differs, highlighted
    assert not any(row[headers.index("cpu")].startswith("**") for row in rows)  # the brand does not


def steady(report: dict, scale: float) -> dict:
    """The report with steady samples around 10 ms x ``scale`` (this machine's noise is not under test)."""
    steady = copy.deepcopy(report)
    for result in steady["results"]:
        result["samples_ms"] = [scale * (10 + 0.01 * i) for i in range(30)]
        result["samples_round"] = [i // 10 for i in range(30)]
        result["latency_ms"].update(p50=scale * 10.145, ci95_median=[scale * 10.1, scale * 10.2])
    return steady


def test_one_machine_twice_keeps_every_run_and_pools_them(runs, tmp_path):
    _, real = runs
    report, slower = steady(real, 1.0), steady(real, 1.3)
    merged = merge([("first.json", report), ("second.json", slower)])
    assert len(merged["machines"]) == 1 and len(merged["input_rows"]) == 2 * len(report["results"])
    assert len(merged["rows"]) == len(report["results"])
    for row in merged["rows"]:
        assert row["runs"] == 2 and row["report"] == "first.json, second.json"
        assert min(row["run_p50s"]) <= row["p50_ms"] <= max(row["run_p50s"])
        assert row["run_spread"] == pytest.approx(0.3, abs=1e-6) and row["runs_disagree"] is True
        assert row["p50_ci"][0] <= row["p50_ms"] <= row["p50_ci"][1]
        assert len(row["samples_ms"]) == 2 * len(next(r for r in merged["input_rows"]
                                                       if r["case"] == row["case"])["samples_ms"])
    assert sum("pooled from all their samples" in note and "disagree" in note for note in merged["notes"]) == 8
    write_report(slower, tmp_path / "second.json")
    out = tmp_path / "both.csv"
    write_report(report, tmp_path / "first.json")
    assert main(["report", str(tmp_path / "first.json"), str(tmp_path / "second.json"), "--format", "csv",
                 "--output", str(out)]) == 0
    assert len(list(csv.DictReader(out.open()))) == 2 * len(report["results"])  # every input row
    from repnext_bench.hardware.merge import coverage

    _, _, cells = coverage(merged["input_rows"])
    assert set(cells.values()) == {"ok x2"}


def test_an_older_report_without_the_newer_fields_is_the_same_machine(runs):
    _, report = runs
    older = copy.deepcopy(report)
    cpu = older["environment"]["cpu"]
    for key in ("vendor", "family", "model_number", "stepping", "virtual"):
        cpu.pop(key, None)
    cpu["features"].append("avx512_vp2intersect")  # a flag outside the compared set does not split a machine
    merged = merge([("new.json", report), ("old.json", older)])
    assert len(merged["machines"]) == 1
    assert identity(older["environment"])["vendor"] == "unknown"
    mac = copy.deepcopy(older)
    mac["environment"]["cpu"]["features"] = []  # older versions read flags from /proc only: [] off Linux
    assert identity(mac["environment"])["ISA"] == "unknown"
    memory = copy.deepcopy(report)
    memory["environment"]["memory_gib"] = report["environment"]["memory_gib"] * 1.02  # read another way
    assert len(merge([("a.json", report), ("b.json", memory)])["machines"]) == 1


def test_an_older_report_that_fits_two_machines_joins_neither(runs):
    """Grouping does not depend on the order of the files: complete identities first."""
    _, report = runs
    other = variant_of(report, features=ARM_FLAGS)
    older = copy.deepcopy(report)
    for key in ("vendor", "family", "model_number", "stepping", "virtual"):
        older["environment"]["cpu"].pop(key, None)
    older["environment"]["cpu"]["features"] = None  # records no ISA: it fits both
    files = {"old.json": older, "here.json": report, "other.json": other}
    for order in (["old.json", "here.json", "other.json"], ["other.json", "old.json", "here.json"]):
        merged = merge([(name, files[name]) for name in order])
        assert len(merged["machines"]) == 3
        assert any("old.json lacks identity fields" in note for note in merged["notes"])


def test_labels_name_machines_but_never_group_them(runs):
    _, report = runs
    other = variant_of(report, features=ARM_FLAGS)
    same = merge([("a.json", report), ("b.json", copy.deepcopy(report))], labels=["laptop", "desk"])
    assert list(same["machines"]) == ["laptop"]  # one machine: the first report's label names it
    assert any("--label 'desk' of b.json" in note for note in same["notes"])
    clash = merge([("a.json", report), ("b.json", other)], labels=["box", "box"])
    assert list(clash["machines"]) == ["box", "box [ISA asimd]"]


def test_default_names_stay_apart_when_three_machines_share_one(runs):
    """A and B differ in stepping, C has B's stepping and more memory: three names."""
    _, report = runs
    cpu = report["environment"]["cpu"]
    b = variant_of(report, stepping=(cpu.get("stepping") or 0) + 1)
    c = copy.deepcopy(b)
    c["environment"]["memory_gib"] = report["environment"]["memory_gib"] * 2
    merged = merge([("a.json", report), ("b.json", b), ("c.json", c)])
    assert len(merged["machines"]) == 3 and len(set(merged["machines"])) == 3
    assert {r["machine"] for r in merged["rows"]} == set(merged["machines"])


def test_runs_with_other_runtime_versions_are_not_pooled(runs):
    _, report = runs
    newer = copy.deepcopy(report)
    newer["environment"]["libraries"]["onnxruntime"] = "9.9.9"
    merged = merge([("a.json", report), ("b.json", newer)])
    ort = [r for r in merged["rows"] if r["backend"] == "onnxruntime"]
    assert len(ort) == 2 * len([r for r in report["results"] if r["case"]["backend"] == "onnxruntime"])
    assert {r["runs"] for r in ort} == {1} and any("onnxruntime 9.9.9" in r["runtime"] for r in ort)
    torch_rows = [r for r in merged["rows"] if r["backend"] == "torch"]  # torch's version did not change
    assert {r["runs"] for r in torch_rows} == {2}


@pytest.mark.parametrize("features,expected", [
    (["avx2", "fma", "avx512f", "avx512_bf16", "amx_tile", "amx_bf16"], "AMX"),
    (["avx2", "avx512f", "avx512_bf16"], "AVX-512 BF16"), (["avx2", "avx512f"], "AVX-512"), (["avx2"], "AVX2"),
    (["asimd", "bf16"], "NEON BF16"), (["asimd", "sve"], "SVE"), ([], "no AVX2"), (None, "unknown ISA"),
])
def test_isa_summary(features, expected):
    assert isa_summary(features) == expected
    assert label({"cpu": {"model": "X", "features": features, "usable_cores": 4}}) == f"X ({expected}, 4 cores)"
