"""The report contract: typed records that read back what they write, accept older reports,
reject malformed ones in one line, and a published JSON Schema that every report follows."""
import copy
import dataclasses
import json
import subprocess
import sys
from pathlib import Path

import pytest
from helpers import invalid_reports

from repnext_bench import records
from repnext_bench.core.records import RecordError, Result, read_results
from repnext_bench.report.schema import SCHEMA_PATH, ReportError, read_report, write_report

COMMITTED = sorted(p for p in Path(__file__).parent.parent.joinpath("reports").glob("*.json")
                   if "schema_version" in json.loads(p.read_text()))
RUN_REPORTS = [p for p in COMMITTED if json.loads(p.read_text()).get("kind", "run") == "run"]
SCHEMA = json.loads(SCHEMA_PATH.read_text())


def _report() -> dict:
    return json.loads(RUN_REPORTS[0].read_text())


def test_the_schema_is_valid_json_schema_and_ships_in_the_package():
    jsonschema = pytest.importorskip("jsonschema")
    jsonschema.Draft202012Validator.check_schema(SCHEMA)
    assert SCHEMA_PATH.parent.name == "report" and SCHEMA_PATH.parent.parent.name == "repnext_bench"


@pytest.mark.parametrize("path", COMMITTED, ids=lambda p: p.name)
def test_every_committed_report_follows_the_schema(path, tmp_path):
    (tmp_path / path.name).write_text(path.read_text())
    assert invalid_reports(tmp_path) == []


@pytest.mark.parametrize("path", RUN_REPORTS, ids=lambda p: p.name)
def test_results_read_back_exactly_what_they_wrote(path):
    results = json.loads(path.read_text())["results"]
    typed = read_results(results)
    assert all(isinstance(r, Result) for r in typed)
    assert [r.to_dict() for r in typed] == results


def test_fields_are_typed_not_dicts():
    ok = next(r for r in read_results(_report()["results"]) if r.ok)
    assert isinstance(ok.latency_ms, records.LatencyStats) and ok.p50_ms == ok.latency_ms.p50 > 0
    assert isinstance(ok.parity, records.Parity) and isinstance(ok.memory, records.Memory)
    assert isinstance(ok.cold_start, records.ColdStart) and isinstance(ok.model, records.ModelInfo)
    assert ok.case.variant.startswith("M") and ok.label == ok.case.label
    fused = next(r for r in read_results(_report()["results"]) if r.fused_speedup)
    assert isinstance(fused.fused_speedup, records.Ratio) and fused.fused_speedup.over == "train"


def _schema_properties(name: str) -> set[str]:
    return set(SCHEMA["$defs"][name]["properties"])


@pytest.mark.parametrize("record, definition", [
    (records.Result, "result"), (records.LatencyStats, "latency_stats"), (records.Ratio, "ratio"),
    (records.Parity, "parity"), (records.Memory, "memory"), (records.ColdStart, "cold_start"),
    (records.ModelInfo, "model"), (records.ArtifactRecord, "artifact"), (records.Concurrency, "concurrency"),
    (records.RoundsInfo, "rounds"), (records.ServerRecord, "server")])
def test_the_schema_and_the_records_name_the_same_fields(record, definition):
    named = {f.name for f in dataclasses.fields(record)} - {"extra"}
    assert named == _schema_properties(definition)


def test_an_older_report_without_the_newer_fields_is_read():
    """Reports written before rounds, artifacts, GPU timings and concurrency were recorded."""
    report = _report()
    newer = ("rounds", "samples_round", "artifact", "backend", "device_latency_ms", "concurrency", "fused_speedup",
             "traceback")
    for result in report["results"]:
        for key in newer:
            result.pop(key, None)
    results = read_results(report["results"])
    assert all(r.rounds is None and r.artifact is None and r.converged is None for r in results)
    assert any(r.ok and r.p50_ms for r in results)


def test_unknown_fields_of_a_later_version_are_ignored_and_exporter_facts_kept():
    result = copy.deepcopy(next(r for r in _report()["results"] if r["artifact"]))
    result["a_field_from_the_future"] = {"x": 1}
    result["artifact"]["layers_fused"] = 12
    typed = Result.from_dict(result)
    assert typed.artifact.extra["layers_fused"] == 12
    assert "a_field_from_the_future" not in typed.to_dict()
    assert typed.to_dict()["artifact"]["layers_fused"] == 12


@pytest.mark.parametrize("change, message", [
    (lambda r: r["latency_ms"].update(p50="fast"), "results[0].latency_ms.p50 should be a number, not 'fast'"),
    (lambda r: r.update(status="done"), "results[0]: status 'done' is not one of ok, failed, skipped, unavailable"),
    (lambda r: r["case"].pop("backend"), "results[0].case should be a case with variant, form, backend"),
    (lambda r: r["case"].update(batch="1"), "results[0].case.batch should be an integer, not '1'"),
    (lambda r: r.update(samples_ms=[1.0, None]), "results[0].samples_ms[1] is missing (null)"),
    (lambda r: r["parity"].pop("rel_l2"), "results[0].parity.rel_l2 is missing"),
    (lambda r: r.update(memory=[]), "results[0].memory should be an object, not list"),
])
def test_a_malformed_result_is_one_line_naming_the_field(change, message):
    report = _report()
    change(report["results"][0])
    with pytest.raises(RecordError) as caught:
        read_results(report["results"])
    assert str(caught.value).startswith(message) and "\n" not in str(caught.value)


@pytest.mark.malformed_reports
def test_read_report_rejects_malformed_and_future_reports(tmp_path):
    report = _report()
    report["results"][0]["parity"] = {"rel_l2": "tiny"}
    (tmp_path / "bad.json").write_text(json.dumps(report))
    with pytest.raises(ReportError, match=r"bad.json: results\[0\].parity.rel_l2 should be a number"):
        read_report(tmp_path / "bad.json")
    assert invalid_reports(tmp_path)  # the schema says so too
    future = dict(_report(), schema_version=2)
    (tmp_path / "future.json").write_text(json.dumps(future))
    with pytest.raises(ReportError, match="schema version 2; this version reads 1"):
        read_report(tmp_path / "future.json")


@pytest.mark.malformed_reports
def test_commands_refuse_a_malformed_report_in_one_line(tmp_path):
    report = _report()
    report["results"][1]["latency_ms"]["n"] = 2.5
    (tmp_path / "bad.json").write_text(json.dumps(report))
    for command in (["report", str(tmp_path / "bad.json")], ["compare", str(tmp_path / "bad.json"), RUN_REPORTS[0]]):
        done = subprocess.run([sys.executable, "-m", "repnext_bench", *map(str, command)], capture_output=True,
                              text=True, env={"COLUMNS": "300", "PATH": "/usr/bin:/bin"})
        assert done.returncode == 2, done.stderr
        lines = done.stderr.strip().splitlines()
        assert len(lines) == 1 and "results[1].latency_ms.n should be an integer, not 2.5" in lines[0], lines


def test_infinite_numbers_are_written_as_null(tmp_path):
    report = _report()
    report["results"][0]["rounds"]["ci95_half_width"] = float("inf")
    report["results"][0]["latency_ms"]["ci95_half_width"] = float("nan")
    write_report(report, tmp_path / "r.json")
    text = (tmp_path / "r.json").read_text()
    assert "Infinity" not in text and "NaN" not in text
    from repnext_bench.report.schema import to_json  # what --json prints, too

    assert "Infinity" not in to_json(report) and "NaN" not in to_json(report)
    back = read_report(tmp_path / "r.json")
    assert back["results"][0]["rounds"]["ci95_half_width"] is None
    assert invalid_reports(tmp_path) == []


@pytest.mark.malformed_reports
def test_the_schema_check_of_the_tests_catches_a_broken_report(tmp_path):
    """The check every test's reports go through is not a check that cannot fail."""
    report = _report()
    del report["results"][0]["status"]
    report["results"][1]["case"]["form"] = "folded"
    write_report(report, tmp_path / "broken.json")
    problems = invalid_reports(tmp_path)
    assert any("'status' is a required property" in p for p in problems)
    assert any("results/1/case/form" in p for p in problems)


def test_an_older_result_written_back_still_follows_the_schema(tmp_path):
    """Fields a report of an earlier release lacks stay absent when it is read and written again
    (not null where the schema wants a number)."""
    report = _report()
    for result in report["results"]:
        for key in ("round_medians", "rounds", "ci95_method", "ci95_half_width"):
            (result["latency_ms"] or {}).pop(key, None)
        for key in ("n", "method"):
            (result.get("fused_speedup") or {}).pop(key, None)
        for key in ("rounds", "samples_round"):
            result.pop(key, None)
    rewritten = dict(report, results=[r.to_dict() for r in read_results(report["results"])])
    measured = [r for r in rewritten["results"] if r["latency_ms"]]
    assert measured and all("round_medians" not in r["latency_ms"] and "rounds" not in r for r in measured)
    write_report(rewritten, tmp_path / "rewritten.json")
    assert invalid_reports(tmp_path) == []
