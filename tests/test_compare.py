"""`repnext-bench compare` on two small real reports, doctored ones, and bad files."""
import copy
import json

import pytest
from helpers import unlike

from repnext_bench.cli import main
from repnext_bench.report.schema import read_report, write_report


@pytest.fixture(scope="module")
def reports(real_runs):
    """The shared sweep (conftest) as the baseline, and a second real run of two of its cases
    (plus two at batch 2) as the candidate."""
    folder, _, _ = real_runs
    return folder, [read_report(folder / name) for name in ("a.json", "c.json")]


def compare(capsys, base, new, *args):
    code = main(["compare", str(base), str(new), "--json", *args])
    return code, json.loads(capsys.readouterr().out)


def test_two_real_reports(reports, capsys, tmp_path):
    folder, _ = reports
    code, result = compare(capsys, folder / "a.json", folder / "c.json", "--markdown", str(tmp_path / "c.md"))
    assert [row["case"].split()[:3] for row in result["rows"]] == [["M0", "train", "onnxruntime/cpu"],
                                                                  ["M0", "fused", "onnxruntime/cpu"]]
    assert len(result["only_in_baseline"]) == 6  # M1 on onnxruntime, M0 and M1 on torch
    assert [c.split()[:5] for c in result["only_in_candidate"]] == [["M0", "train", "onnxruntime/cpu", "fp32", "b2"],
                                                                    ["M0", "fused", "onnxruntime/cpu", "fp32", "b2"]]
    for row in result["rows"]:
        assert row["verdict"] in ("pass", "inconclusive", "improved", "fail")
        assert row["estimate"]["ci_low"] <= row["estimate"]["change"] <= row["estimate"]["ci_high"]
        assert 0 <= row["estimate"]["p_value"] <= 1
    verdicts = {row["verdict"] for row in result["rows"]}
    assert code == (1 if "fail" in verdicts else 3 if "inconclusive" in verdicts else 0)
    assert "| M0 fused onnxruntime" in (tmp_path / "c.md").read_text()


def test_a_real_regression_and_unmatched_cases(reports, capsys, tmp_path):
    # doctored from the baseline itself, so the change is the one made here and not also
    # the drift between two real runs on a busy machine; twice as slow, because a shared VM can
    # move between two speeds about 1.5x apart within seconds (docs/sweeps.md), and real samples
    # that hold both make a 1.5x change honestly inconclusive
    _, (shared, _) = reports
    base = copy.deepcopy(shared)
    base["results"] = [r for r in base["results"] if r["case"]["form"] == "fused"
                       and r["case"]["backend"] == "onnxruntime"]  # M0 and M1
    write_report(base, tmp_path / "base.json")
    slower = copy.deepcopy(base)
    m0 = next(r for r in slower["results"] if r["case"]["variant"] == "M0")
    m0["samples_ms"] = [s * 2 for s in m0["samples_ms"]]
    m0["latency_ms"]["p50"] *= 2
    slower["results"] = [m0]  # M1 only in the baseline
    slower["environment"]["libraries"]["onnxruntime"] = "0.0.1"
    write_report(slower, tmp_path / "slower.json")
    code, result = compare(capsys, tmp_path / "base.json", tmp_path / "slower.json", "--cross-machine")
    assert code == 1
    assert [(r["case"].split()[0], r["verdict"]) for r in result["rows"]] == [("M0", "fail")]
    assert result["rows"][0]["estimate"]["change"] == pytest.approx(1.0, abs=0.3)
    assert len(result["only_in_baseline"]) == 1 and result["only_in_baseline"][0].startswith("M1 fused onnxruntime")
    assert any(line.startswith("onnxruntime:") and "0.0.1" in line for line in result["environment_differences"])


def test_threshold_option(reports, capsys, tmp_path):
    _, (shared, _) = reports
    base = copy.deepcopy(shared)
    base["results"] = [r for r in base["results"] if r["case"]["form"] == "fused"
                       and r["case"]["backend"] == "onnxruntime"]
    for result in base["results"]:  # steady samples: the threshold is under test here, not this machine's noise
        result["samples_ms"] = [10 + 0.01 * i for i in range(30)]
    write_report(base, tmp_path / "base.json")
    slower = copy.deepcopy(base)
    for result in slower["results"]:
        result["samples_ms"] = [s * 1.25 for s in result["samples_ms"]]
    write_report(slower, tmp_path / "slower.json")
    assert compare(capsys, tmp_path / "base.json", tmp_path / "slower.json", "--fail-on", "60")[0] == 0
    assert compare(capsys, tmp_path / "base.json", tmp_path / "slower.json", "--fail-on", "5")[0] == 1


@pytest.mark.malformed_reports
def test_bad_reports_are_one_line(reports, capsys, tmp_path):
    folder, (base, _) = reports
    (tmp_path / "truncated.json").write_text((folder / "a.json").read_text()[:200])
    wrong = copy.deepcopy(base)
    wrong["schema_version"] = 99
    write_report(wrong, tmp_path / "wrong.json")
    (tmp_path / "list.json").write_text("[]")
    for bad, message in [("missing.json", "no such file"), ("truncated.json", "not a JSON report"),
                         ("wrong.json", "schema version 99"), ("list.json", "not a repnext-bench report")]:
        assert main(["compare", str(folder / "a.json"), str(tmp_path / bad)]) == 2
        err = capsys.readouterr().err.strip()
        assert len(err.splitlines()) == 1 and message in err and "Traceback" not in err


def test_reports_from_different_machines_get_no_timing_verdict(reports, capsys, tmp_path):
    """Same brand string, other ISA features (whatever this machine's are): compare says so at the top, withholds
    its verdicts (exit 3) and records the differences; --cross-machine compares all the same."""
    folder, (base, _) = reports
    other = copy.deepcopy(base)
    features = unlike(base["environment"]["cpu"]["features"])
    other["environment"]["cpu"]["features"] = features
    other["environment"]["libraries"]["openvino"] = "2024.0.0"
    write_report(other, tmp_path / "other.json")
    code = main(["compare", str(folder / "a.json"), str(tmp_path / "other.json")])
    err = capsys.readouterr().err
    assert code == 3 and "different machines or runtimes" in err and "ISA:" in err and "openvino:" in err
    code, result = compare(capsys, folder / "a.json", tmp_path / "other.json")
    assert code == 3 and {row["verdict"] for row in result["rows"]} == {"inconclusive"}
    assert any(d.startswith("ISA: ") and d.endswith("-> " + ", ".join(features)) for d in result["machine_differences"])
    assert result["verdict_withheld"] == "8 of 8 cases: different machines or runtimes"
    assert all("no verdict" in r["why"] and "--cross-machine" in r["why"] for r in result["rows"])
    code, crossed = compare(capsys, folder / "a.json", tmp_path / "other.json", "--cross-machine")
    assert crossed["cross_machine"] is True and crossed["verdict_withheld"] is None
    assert crossed["machine_differences"] == result["machine_differences"]
    assert crossed["rows"] and not any("no verdict" in r["why"] for r in crossed["rows"])


def test_a_runtime_upgrade_withholds_only_its_backends_verdicts(reports, capsys, tmp_path):
    folder, (base, _) = reports
    newer = copy.deepcopy(base)
    newer["environment"]["libraries"]["onnxruntime"] = "9.9.9"
    write_report(newer, tmp_path / "newer.json")
    code, result = compare(capsys, folder / "a.json", tmp_path / "newer.json")
    assert result["machine_differences"] == [f"onnxruntime: {base['environment']['libraries']['onnxruntime']} -> 9.9.9"]
    withheld = {row["case"].split()[2]: "no verdict" in row["why"] for row in result["rows"]}
    assert withheld == {"onnxruntime/cpu": True, "torch/cpu": False}
    assert result["verdict_withheld"] == "4 of 8 cases: different machines or runtimes" and code == 3
