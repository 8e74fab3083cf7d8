"""`repnext-bench compare` on two small real reports, doctored ones, and bad files."""
import copy
import json

import pytest

from repnext_bench.cli import main
from repnext_bench.report.schema import read_report, write_report

FAST = ["--variants", "m0,m1", "--forms", "fused", "--resolution", "64", "--duration", "0.2", "--min-iters", "20",
        "--threads", "1", "--quiet"]


@pytest.fixture(scope="module")
def reports(tmp_path_factory):
    folder = tmp_path_factory.mktemp("compare")
    paths = [folder / "base.json", folder / "new.json"]
    for path in paths:
        assert main(["run", *FAST, "--output", str(path), "--cache-dir", str(folder / "cache")]) == 0
    return folder, [read_report(p) for p in paths]


def compare(capsys, base, new, *args):
    code = main(["compare", str(base), str(new), "--json", *args])
    return code, json.loads(capsys.readouterr().out)


def test_two_real_reports(reports, capsys):
    folder, _ = reports
    code, result = compare(capsys, folder / "base.json", folder / "new.json", "--markdown", str(folder / "c.md"))
    assert len(result["rows"]) == 2 and not result["only_in_baseline"] and not result["only_in_candidate"]
    for row in result["rows"]:
        assert row["verdict"] in ("pass", "inconclusive", "improved", "fail")
        assert row["estimate"]["ci_low"] <= row["estimate"]["change"] <= row["estimate"]["ci_high"]
        assert 0 <= row["estimate"]["p_value"] <= 1
    verdicts = {row["verdict"] for row in result["rows"]}
    assert code == (1 if "fail" in verdicts else 3 if "inconclusive" in verdicts else 0)
    assert "| M0 fused onnxruntime" in (folder / "c.md").read_text()


def test_a_real_regression_and_unmatched_cases(reports, capsys, tmp_path):
    # doctored from the baseline itself, so the change is the one made here and not also
    # the drift between two real runs on a busy machine
    folder, (base, _) = reports
    slower = copy.deepcopy(base)
    m0 = next(r for r in slower["results"] if r["case"]["variant"] == "M0")
    m0["samples_ms"] = [s * 1.5 for s in m0["samples_ms"]]
    m0["latency_ms"]["p50"] *= 1.5
    slower["results"] = [m0]  # M1 only in the baseline
    slower["environment"]["libraries"]["onnxruntime"] = "0.0.1"
    write_report(slower, tmp_path / "slower.json")
    code, result = compare(capsys, folder / "base.json", tmp_path / "slower.json")
    assert code == 1
    assert [(r["case"].split()[0], r["verdict"]) for r in result["rows"]] == [("M0", "fail")]
    assert result["rows"][0]["estimate"]["change"] == pytest.approx(0.5, abs=0.15)
    assert len(result["only_in_baseline"]) == 1 and result["only_in_baseline"][0].startswith("M1 fused onnxruntime")
    assert any(line.startswith("onnxruntime:") and "0.0.1" in line for line in result["environment_differences"])


def test_threshold_option(reports, capsys, tmp_path):
    folder, (base, _) = reports
    slower = copy.deepcopy(base)
    for result in slower["results"]:
        result["samples_ms"] = [s * 1.25 for s in result["samples_ms"]]
    write_report(slower, tmp_path / "slower.json")
    assert compare(capsys, folder / "base.json", tmp_path / "slower.json", "--fail-on", "60")[0] == 0
    assert compare(capsys, folder / "base.json", tmp_path / "slower.json", "--fail-on", "5")[0] == 1


def test_bad_reports_are_one_line(reports, capsys, tmp_path):
    folder, (base, _) = reports
    (tmp_path / "truncated.json").write_text((folder / "base.json").read_text()[:200])
    wrong = copy.deepcopy(base)
    wrong["schema_version"] = 99
    write_report(wrong, tmp_path / "wrong.json")
    (tmp_path / "list.json").write_text("[]")
    for bad, message in [("missing.json", "no such file"), ("truncated.json", "not a JSON report"),
                         ("wrong.json", "schema version 99"), ("list.json", "not a repnext-bench report")]:
        assert main(["compare", str(folder / "base.json"), str(tmp_path / bad)]) == 2
        err = capsys.readouterr().err.strip()
        assert len(err.splitlines()) == 1 and message in err and "Traceback" not in err
